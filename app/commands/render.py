"""`python -m app render`: reenact a driving video or image offline."""
from __future__ import annotations

import argparse
from pathlib import Path

from engine import values
from engine.face.framing import FRAMINGS
from engine.stylegan.motion import MOTION_MODES

# landmark-warp retargeting flags: flag → (Retargeting field, metavar, help); ranges: engine.values.RETARGETING.
# --expression is shared with the StyleGAN reenactor (one flag, one meaning: expression strength).
WARP_FLAGS = {
    "--head": ("head", "H", "landmark warp: head-motion strength, 0 (holds its pose) … 2 (default 1)"),
    "--eyes": ("eyes", "E", "landmark warp: eye openness offset, -1 (shut) … 1 (wide) (default 0)"),
    "--mouth": ("mouth", "M", "landmark warp: mouth openness gain, 0 (closed) … 2 (default 1)"),
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
    p.add_argument("--aligned", action="store_true", help="inputs are already FFHQ-aligned: the paper's script "
                   "exactly (absolute motion, the official crop, no paste-back, no smoothing)")
    p.add_argument("--seed", type=values.SEED, default=0, help="seed for --target random (0 … 2^32 − 1)")
    p.add_argument("--runtime", default="auto", help="auto, eager, compile, onnx, tensorrt (model packs only)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda (model packs only)")
    p.add_argument("--precision", default="auto", help="auto, fp32, bf16 (CPU), fp16 (CUDA)")
    p.add_argument("--no-cuda-graphs", action="store_true", help="do not capture the steady frame in CUDA graphs "
                   "(the default for --runtime compile on CUDA)")
    p.add_argument("-o", "--output", required=True, type=Path, help="OUT.mp4 (video driver) or OUT.png (image driver)")
    look = p.add_argument_group("output and motion (both reenactors unless noted)")
    look.add_argument("--framing", choices=FRAMINGS, help="a square around the face (default) "
                      "or the whole portrait")
    look.add_argument("--size", type=values.OUTPUT_SIZE, help="output pixels, 64 … 4096: the square's side or the "
                      "portrait's longer side (default 512; the generated crop's width with --no-paste-back and for "
                      "latent/random targets)")
    look.add_argument("--expression", type=values.EXPRESSION, metavar="G", help="expression strength, 0 (the target "
                      "at rest) … 1 (as driven, default) … 2")
    look.add_argument("--smoothing", type=values.SMOOTHING, help="temporal smoothing 0 (off) … 1 (strong); "
                      "default: the reenactor's own")
    look.add_argument("--motion", choices=MOTION_MODES, help="model packs: relative to the "
                      "driver's first frames (default) or the paper's absolute motion")
    look.add_argument("--no-paste-back", action="store_true", help="model packs: write the generated aligned "
                      "crop instead of pasting the face back into the portrait")
    for flag, (name, metavar, text) in WARP_FLAGS.items():
        look.add_argument(flag, dest=name, type=values.RETARGETING[name], metavar=metavar, help=text)
    look.add_argument("--eye-contact", action="store_true",
                      help="landmark warp: the portrait keeps looking into the camera whatever the driver's gaze")
    p.set_defaults(func=run)


def reenactor_setup(args: argparse.Namespace):
    """The reenactor's setup for the parsed flags: a WarpConfig, or a StyleGANSetup with --weights
    (one-line errors for flags that conflict)."""
    from engine.errors import MimicError
    from engine.stylegan.options import StyleGANOptions

    given = {name: getattr(args, name) for name in ("framing", "size", "expression", "smoothing", "motion")
             if getattr(args, name) is not None}
    if args.no_paste_back:
        given["no_paste_back"] = True
    if args.weights is None:
        wrong = [f"--{n.replace('_', '-')}" for n in ("motion", "no_paste_back") if n in given]
        if wrong:
            raise MimicError(f"{' and '.join(wrong)} need a model pack (--weights); the landmark warp always "
                             "moves relative to the driver's first frames and animates the portrait itself")
        return _warp_config(args, given)
    warp_only = [flag for flag, (name, _, _) in WARP_FLAGS.items() if getattr(args, name) is not None]
    warp_only += ["--eye-contact"] if args.eye_contact else []
    if warp_only:
        raise MimicError(f"{', '.join(warp_only)} apply to the landmark warp only (render without --weights)")
    if args.aligned:
        if given:
            flags = ", ".join(f"--{n.replace('_', '-')}" for n in given)
            raise MimicError(f"--aligned keeps the paper's semantics exactly (absolute motion, the official crop, "
                             f"no paste-back, no smoothing): drop {flags}")
        return _stylegan_setup(args, StyleGANOptions.paper())

    options = {"framing": args.framing, "output_size": args.size, "expression": args.expression,
               "smoothing": args.smoothing, "motion": args.motion}
    options = {k: v for k, v in options.items() if v is not None}
    if args.no_paste_back:
        options["paste_back"] = False
    if args.size is not None:  # the portrait's output size, and the crop's width (no paste-back, latent targets)
        options["output_width"] = args.size
    return _stylegan_setup(args, StyleGANOptions(**options))


def _stylegan_setup(args: argparse.Namespace, options):
    from engine.factory import StyleGANSetup

    return StyleGANSetup(args.weights, args.runtime, args.device, args.precision, options,
                         cuda_graphs=not args.no_cuda_graphs)


def _warp_config(args: argparse.Namespace, given: dict):
    """The landmark warp's WarpConfig from the shared flags and its retargeting flags."""
    from engine.warp import WarpConfig
    from engine.warp.retarget import Retargeting

    controls = {name: getattr(args, name) for name, _, _ in WARP_FLAGS.values() if getattr(args, name) is not None}
    if "expression" in given:
        controls["expression"] = given["expression"]
    names = {"framing": "framing", "size": "output_size", "smoothing": "smoothing"}
    config = {names[k]: v for k, v in given.items() if k in names}
    return WarpConfig(retargeting=Retargeting(eye_contact=args.eye_contact, **controls), **config)


def run(args: argparse.Namespace) -> int:
    from engine.errors import MediaError
    from engine.factory import create_reenactor
    from engine.render import check_render_output

    if not args.driving.is_file():
        raise MediaError(f"driving video/image not found: {args.driving}")
    check_render_output(args.driving, args.output)  # docs/rendering.md: a bad output is refused before any work
    reenactor = create_reenactor(reenactor_setup(args))
    print(f"reenactor: {reenactor.describe()}", flush=True)
    try:
        report = _render(reenactor, args)
    finally:
        reenactor.close()  # its MediaPipe graphs and threads end before the interpreter does
    stages = ", ".join(f"{k} {v:.1f} ms" for k, v in report.stage_ms.items())
    print(f"wrote {report.output} ({report.frames} frame(s)); median per frame: {stages}")
    if report.no_face_frames:
        print(f"{report.no_face_frames} frame(s) had no face: the last output was held")
    return 0


def _render(reenactor, args: argparse.Namespace):
    """Set the target, then reenact the driving file into the output, with progress bars."""
    from tqdm import tqdm

    from engine.errors import MimicError
    from engine.render import parse_target, render

    target = parse_target(args.target, seed=args.seed)
    with tqdm(total=100, desc="target", unit="%", leave=False) as bar:
        def on_target(fraction: float, message: str) -> None:
            bar.set_postfix_str(message)
            bar.update(round(fraction * 100) - bar.n)

        try:
            reenactor.set_target(target, progress=on_target)
        except MimicError as exc:  # "astronaut.png: no face found in the target image; …" (as the app says it)
            name = Path(args.target).name
            if args.target == "random" or name in str(exc):
                raise
            raise type(exc)(f"{name}: {exc}") from exc

    with tqdm(desc="render", unit="frame") as bar:
        def on_frame(done: int, total: int | None) -> None:
            if total and bar.total != total:
                bar.total = total
            bar.update(done - bar.n)

        return render(reenactor, args.driving, args.output, progress=on_frame)
