"""`python -m app render`: reenact a driving video or image offline."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from engine.warp.retarget import Retargeting

# retargeting flags (landmark warp): flag → (Retargeting field, metavar, help); ranges: engine.warp.retarget.RANGES
RETARGET_FLAGS = {
    "--expression": ("expression", "G", "expression strength, 0 (rest face) … 2 (default 1)"),
    "--head": ("head", "H", "head-motion strength, 0 (holds its pose) … 2 (default 1)"),
    "--eyes": ("eyes", "E", "eye openness offset, -1 (shut) … 1 (wide) (default 0)"),
    "--mouth": ("mouth", "M", "mouth openness gain, 0 (closed) … 2 (default 1)"),
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "render",
        help="reenact a driving video/image into an MP4/PNG",
        description="Animate TARGET with the head pose and expression of DRIVING. "
        "Without --weights the weights-free landmark warp runs.",
    )
    p.add_argument("--driving", required=True, type=Path, help="driving video (.mp4, ...) or image")
    p.add_argument("--target", required=True, help="target portrait image, latent file (.npy/.pkl) or 'random'")
    p.add_argument("--weights", type=Path, help="Mimic model pack (python -m app import-weights); default: no weights")
    p.add_argument("--aligned", action="store_true", help="inputs are already FFHQ-aligned: skip alignment")
    p.add_argument("--seed", type=int, default=0, help="seed for --target random")
    p.add_argument("--runtime", default="auto", help="auto, eager, compile, onnx, tensorrt (model packs only)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda (model packs only)")
    p.add_argument("--precision", default="auto", help="auto, fp32, bf16 (CPU), fp16 (CUDA)")
    for flag, (name, metavar, text) in RETARGET_FLAGS.items():
        p.add_argument(flag, dest=name, type=_in_range(name), metavar=metavar, help=text)
    p.add_argument("--eye-contact", action="store_true",
                   help="the portrait keeps looking into the camera whatever the driver's gaze")
    p.add_argument("-o", "--output", required=True, type=Path, help="OUT.mp4 (video driver) or OUT.png (image driver)")
    p.set_defaults(func=run)


def _in_range(name: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        from engine.warp.retarget import RANGES  # only when the flag is used: the warp's imports are heavy

        lo, hi = RANGES[name]
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be within {lo:g} … {hi:g} (got {value:g})")
        return value

    return parse


def _retargeting(args: argparse.Namespace) -> Retargeting | None:
    """The warp's Retargeting from the flags, or None when none was given."""
    given = {name: getattr(args, name) for name, _, _ in RETARGET_FLAGS.values() if getattr(args, name) is not None}
    if not given and not args.eye_contact:
        return None
    from engine.warp.retarget import Retargeting

    return Retargeting(eye_contact=args.eye_contact, **given)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from engine.errors import MediaError
    from engine.render import parse_target, render
    from engine.factory import create_reenactor

    if not args.driving.is_file():
        raise MediaError(f"driving video/image not found: {args.driving}")
    reenactor = create_reenactor(args.weights, runtime=args.runtime, device=args.device,
                                 precision=args.precision, aligned=args.aligned, retargeting=_retargeting(args))
    print(f"reenactor: {reenactor.describe()}")
    target = parse_target(args.target, seed=args.seed)
    with tqdm(total=100, desc="target", unit="%", leave=False) as bar:
        def on_target(fraction: float, message: str) -> None:
            bar.set_postfix_str(message)
            bar.update(round(fraction * 100) - bar.n)

        reenactor.set_target(target, progress=on_target)

    with tqdm(desc="render", unit="frame") as bar:
        def on_frame(done: int, total: int | None) -> None:
            if total and bar.total != total:
                bar.total = total
            bar.update(done - bar.n)

        report = render(reenactor, args.driving, args.output, progress=on_frame)
    stages = ", ".join(f"{k} {v:.1f} ms" for k, v in report.stage_ms.items())
    print(f"wrote {report.output} ({report.frames} frame(s)); median per frame: {stages}")
    if report.no_face_frames:
        print(f"{report.no_face_frames} frame(s) had no face: the last output was held")
    return 0
