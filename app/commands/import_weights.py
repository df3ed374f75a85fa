"""`python -m app import-weights`: check the original checkpoints and write them as one Mimic pack."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import-weights",
        help="turn the paper's original checkpoints into a Mimic model pack",
        description="Read the original checkpoints (safely: no code in them runs), check every tensor against "
        "Mimic's networks and write one .safetensors pack with a manifest (configs, sources, sha256). "
        "--paper and --restyle make the pack the app uses; --stylegan alone makes a generator-only pack.",
    )
    p.add_argument("--paper", type=Path, metavar="FILE", help="the paper's best_model.pt (E_m, M, G)")
    p.add_argument("--restyle", type=Path, metavar="FILE", help="restyle_psp_ffhq_encode.pt (E_i, latent_avg)")
    p.add_argument("--stylegan", type=Path, metavar="FILE",
                   help="a StyleGAN2 generator to render with instead of the paper's decoder "
                   "(rosinality stylegan2-ffhq-config-f.pt, NVIDIA stylegan2-ffhq-1024x1024.pkl)")
    p.add_argument("--arcface", type=Path, metavar="FILE", help="model_ir_se50.pth (identity metric), optional")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="PACK", help="pack to write (.safetensors)")
    p.set_defaults(func=run, parser=p)


def run(args: argparse.Namespace) -> int:
    if (args.paper is None) != (args.restyle is None):
        args.parser.error("--paper and --restyle go together")
    if args.paper is None and args.stylegan is None:
        args.parser.error("give --paper and --restyle (the app's pack), or --stylegan (a generator-only pack)")
    if args.paper is None and args.arcface is not None:
        args.parser.error("--arcface goes with --paper and --restyle")
    from tqdm import tqdm

    from engine.runtime.weights import check_pack_output, import_generator, import_weights

    check_pack_output(args.output)  # before any reading: never over a device, folder or FIFO
    if args.paper is None:
        report = import_generator(args.stylegan, args.output)
    else:
        with tqdm(total=100, desc="import", unit="%") as bar:
            def on_progress(fraction: float, message: str) -> None:
                bar.set_postfix_str(message)
                bar.update(round(fraction * 100) - bar.n)

            report = import_weights(args.paper, args.restyle, args.stylegan, args.arcface, out=args.output,
                                    progress=on_progress)
    manifest = report.manifest
    size_mb = report.path.stat().st_size / 1e6
    print(f"wrote {report.path} ({size_mb:.1f} MB): {', '.join(manifest['components'])}")
    print(f"content hash {manifest['content_hash'][:16]}…; manifest copy: {report.sidecar}")
    for note in report.notes:
        print(f"note: {note}")
    return 0
