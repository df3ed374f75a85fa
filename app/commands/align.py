"""`python -m app align`: FFHQ-align a portrait (the quality path) and write the crop quad."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from engine import values


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("align", help="FFHQ-align a portrait", description="Crop and rotate a portrait the way "
                       "FFHQ / StyleGAN encoders expect (MediaPipe landmarks, FFHQ recipe); with several "
                       "faces, the largest; small faces are found by MediaPipe's full-range detector.")
    p.add_argument("image", type=Path, help="portrait image")
    p.add_argument("-o", "--output", required=True, type=Path, help="aligned image (.png)")
    p.add_argument("--size", type=values.ALIGN_SIZE, default=1024,
                   help="output size in pixels, 16–4096 (default 1024)")
    p.add_argument("--json", type=Path, help="write the crop quad (4 corners in input pixels: TL, BL, BR, TR)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.face.align import align_face
    from engine.errors import NoFaceError
    from engine.output_file import IMAGE_OUTPUT_SUFFIXES, check_output, write_bytes
    from engine.media.video_io import read_image, write_image

    check_output(args.output, IMAGE_OUTPUT_SUFFIXES, "image")  # before the work: a wrong type, a device, no folder
    if args.json:
        check_output(args.json, what="crop quad")
    image = read_image(args.image)
    try:
        aligned = align_face(image, size=args.size, ffhq_landmarks=True)
    except NoFaceError:
        raise NoFaceError(f"no face found in {args.image}") from None
    write_image(args.output, aligned.image)
    if args.json:
        quad = {"image": str(args.image), "size": args.size,
                "quad": [[round(float(v), 3) for v in c] for c in aligned.quad]}
        write_bytes(args.json, json.dumps(quad, indent=2).encode(), what="crop quad")
    print(f"wrote {args.output}" + (f" and {args.json}" if args.json else "") + f" (landmarks: {aligned.source})")
    return 0
