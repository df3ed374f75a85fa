"""`python -m app gui` (also the default without a sub-command): the live window."""
from __future__ import annotations

import argparse
from pathlib import Path

from engine import values


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "gui",
        help="the live window (default)",
        description="Animate a portrait with your face, live. Settings from the last session are restored.",
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument("--source", type=Path, metavar="FILE", help="a video file to use as the camera (looped)")
    group.add_argument("--camera", type=values.CAMERA_INDEX, metavar="N", help="camera index (0 = the first camera)")
    p.add_argument("--weights", type=Path, metavar="PACK", help="Mimic model pack; default: the last one used, "
                   "else the weights-free landmark warp")
    p.add_argument("--target", type=Path, metavar="FILE", help="portrait image or latent (.npy/.pkl) to start with")
    p.add_argument("--runtime", default="auto", help="auto, eager, compile, onnx, tensorrt (model packs only)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda (model packs only)")
    p.add_argument("--precision", default="auto", help="auto, fp32, bf16 (CPU), fp16 (CUDA)")
    p.add_argument("--no-cuda-graphs", action="store_true", help="do not capture the steady frame in CUDA graphs "
                   "(the default for --runtime compile on CUDA)")
    p.add_argument("--audio", metavar="DEVICE|none", help="sound for recordings: a microphone (name, part of it, "
                   "index or 'default'), 'source' (the --source video's own track) or 'none'; default: the last "
                   "one used, else the default microphone")
    p.add_argument("--remote", metavar="URL", help="animate on a Mimic server (python -m app serve) instead of "
                   "this machine; its token from --token-file or $MIMIC_SERVER_TOKEN")
    p.add_argument("--token-file", type=Path, metavar="FILE", help="with --remote: the file holding the server's token")
    p.add_argument("--screenshot", type=Path, metavar="PNG", help="save the window as PNG once the output is "
                   "live (or the driver, without a target), then quit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from app.gui.app import run_gui
    from app.gui.main_window import LaunchOptions, reenactor_factory_for
    from engine.errors import MediaError
    from engine.runtime.threads import reserve_cpu_for_live

    if args.source is not None and not args.source.is_file():
        raise MediaError(f"source video not found: {args.source}")
    if args.weights is not None and not args.weights.is_file():
        raise MediaError(f"model pack not found: {args.weights}")
    reserve_cpu_for_live()  # before torch loads: the camera, face tracking and window keep a CPU
    source = str(args.source) if args.source is not None else str(args.camera) if args.camera is not None else None
    factory = reenactor_factory_for(args.runtime, args.device, args.precision, not args.no_cuda_graphs)
    if args.remote is not None:
        from engine.server.remote_reenactor import RemoteFactory

        factory = RemoteFactory(args.remote, _remote_token(args), local=factory)
    elif args.token_file is not None:
        raise MediaError("--token-file goes with --remote URL")
    return run_gui(LaunchOptions(source=source, weights=args.weights, target=args.target,
                                 screenshot=args.screenshot, audio=args.audio), factory)


def _remote_token(args: argparse.Namespace) -> str:
    from engine.errors import MimicError
    from engine.server.security import TOKEN_ENV, read_token

    if args.weights is not None:
        raise MimicError("--remote and --weights exclude each other: the server runs the model")
    if not args.remote.startswith(("http://", "https://")):
        raise MimicError(f"--remote takes the server's address, e.g. http://127.0.0.1:8443 (got {args.remote!r})")
    token, generated = read_token(args.token_file)
    if generated:
        raise MimicError(f"--remote needs the server's token: --token-file FILE or ${TOKEN_ENV}")
    return token
