"""`python -m app bench`: per-stage speed of every runtime on this machine against a plain baseline."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure per-stage speed per runtime (random weights)",
                       description="Median ms per stage (align, E_m, map, G) and FPS for each runtime, "
                       "against a plain eager unfolded baseline in the same run.")
    p.add_argument("--configs", default="paper-1024,256", help="comma list of: paper-1024, 256, tiny")
    p.add_argument("--runtimes", default="eager:fp32,eager:bf16,compile:fp32,onnx:fp32",
                   help="comma list of runtime[:precision] (eager, compile, onnx, tensorrt)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per stage (median reported)")
    p.add_argument("--json", type=Path, help="write the figures as JSON")
    p.add_argument("--plot", type=Path, help="write a bar chart PNG")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from benchmarks.pipeline_bench import format_table
    from benchmarks.pipeline_bench import run as run_bench

    report = run_bench(
        configs=[c for c in args.configs.split(",") if c],
        runtimes=[r for r in args.runtimes.split(",") if r],
        repeats=args.repeats,
        json_path=args.json,
        plot_path=args.plot,
    )
    print(format_table(report))
    if report["alignment_640x480"]:
        print(f"alignment of a 640x480 frame: {report['alignment_640x480']['median_ms']:.1f} ms median")
    return 0
