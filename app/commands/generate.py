"""`python -m app generate`: one image from a StyleGAN2 generator, for a stored latent or a seed."""
from __future__ import annotations

import argparse
from pathlib import Path

from engine import values

NOISE_MODES = ("const", "none", "random")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="render one image from a generator (latent file or seed)",
        description="Render one image with the StyleGAN2 generator in FILE: a Mimic pack, the paper's "
        "best_model.pt, ReStyle's checkpoint, a rosinality .pt or an NVIDIA .pkl (read without running its code). "
        "With --seed: z ~ N(0, I) → w → truncation toward the mean w → repeated over the W+ layers.",
    )
    p.add_argument("--weights", required=True, type=Path, metavar="FILE", help="generator weights or Mimic pack")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--latent", type=Path, metavar="FILE", help="W+ latent (.npy / pickled NumPy array, n x 512)")
    source.add_argument("--seed", type=values.SEED, metavar="N", help="random latent from this seed (0 … 2^32 − 1)")
    p.add_argument("--truncation", type=values.TRUNCATION, metavar="T",
                   help="with --seed: 1 = none (default), 0 = the mean face (0 … 2)")
    p.add_argument("--noise", choices=NOISE_MODES, default="const",
                   help="const: the weights' stored noise (default, deterministic); none; random (from --seed)")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="OUT.png", help="image to write")
    p.set_defaults(func=run, parser=p)


def run(args: argparse.Namespace) -> int:
    if args.truncation is not None and args.latent is not None:
        args.parser.error("--truncation applies to --seed only")
    from engine.output_file import IMAGE_OUTPUT_SUFFIXES, check_output
    from engine.media.video_io import write_image
    from engine.stylegan.generate import generate

    truncation = 1.0 if args.truncation is None else args.truncation
    check_output(args.output, IMAGE_OUTPUT_SUFFIXES, "image")  # before the work: a wrong type, a folder, a device, no folder
    image = generate(args.weights, latent=args.latent, seed=args.seed, truncation=truncation,
                     noise=args.noise)
    write_image(args.output, image)
    source = f"latent {args.latent.name}" if args.latent is not None else f"seed {args.seed}, truncation {truncation:g}"
    print(f"wrote {args.output} ({image.shape[1]}x{image.shape[0]}, {source}, noise {args.noise})")
    return 0
