"""`python -m app bench`: per-stage speed of every runtime on this machine against a plain baseline."""
from __future__ import annotations

import argparse
from pathlib import Path

from engine import values


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure per-stage speed per runtime (random weights)",
                       description="Median ms per stage (align, E_m, map, G) and FPS for each runtime, "
                       "against a plain eager unfolded baseline in the same run; each image against the first "
                       "fp32 runtime's (PSNR, max levels); G's 3x3 convolutions alone; with --startup also "
                       "load, build and first-frame times of cold and warm starts.")
    p.add_argument("--configs", default="paper-1024,256", help="comma list of: paper-1024, 256, tiny")
    p.add_argument("--runtimes", default=None,
                   help=f"comma list of runtime[:precision] (eager, compile, onnx, tensorrt; default {STAGE_RUNTIMES}); "
                   "with --report runtime names, each run at every --precisions")
    p.add_argument("--repeats", type=values.REPEATS, default=None, help="timed runs per stage (median reported; default 3, "
                   "with --report 10)")
    p.add_argument("--startup", default="", metavar="RUNTIMES",
                   help="comma list of runtime[:precision] whose cold (empty cache) and warm (second) starts are "
                   "timed, each in a fresh process with a random-weight pack (e.g. compile:fp32,compile:bf16)")
    p.add_argument("--threads", type=values.THREADS,
                   help="CPU threads for torch and OpenMP (default: torch's own choice); "
                   "on a machine shared with other work, 1 thread gives steadier ratios")
    p.add_argument("--json", type=Path, help="write the figures as JSON")
    p.add_argument("--plot", type=Path, help="write a bar chart PNG")
    report = p.add_argument_group("GPU report (--report): imports only torch and numpy (onnxruntime optional); "
                                  "docs/gpu.md")
    report.add_argument("--report", type=Path, metavar="OUT.json",
                        help="every runtime x precision x batch with CUDA graphs on/off, image differences, "
                        "TFLOP/s, fp16 check, device and driver, as JSON (rewritten after every row)")
    report.add_argument("--precisions", default="fp32,fp16,bf16", help="--report: comma list of fp32, fp16, bf16")
    report.add_argument("--batches", default="1,2,4,8", help="--report: batch sizes")
    report.add_argument("--batched", default="eager,compile",
                        help="--report: runtimes measured at the batches > 1 (at the precision auto picks)")
    report.add_argument("--device", default="auto", help="--report: auto, cuda or cpu")
    report.add_argument("--no-cuda-graphs", action="store_true", help="--report: skip the CUDA-graph rows")
    p.set_defaults(func=run)


STAGE_RUNTIMES = "eager:fp32,eager:bf16,compile:fp32,compile:bf16,onnx:fp32"


def run(args: argparse.Namespace) -> int:
    if args.report is not None:
        return run_report(args)
    args.runtimes = args.runtimes or STAGE_RUNTIMES
    args.repeats = args.repeats or 3
    if args.threads:
        import os

        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # also for the --startup child processes
    from benchmarks.pipeline_bench import format_table
    from benchmarks.pipeline_bench import run as run_bench
    from benchmarks.startup_bench import format_startup

    report = run_bench(
        threads=args.threads,
        configs=[c for c in args.configs.split(",") if c],
        runtimes=[r for r in args.runtimes.split(",") if r],
        repeats=args.repeats,
        json_path=args.json,
        plot_path=args.plot,
        startup=[r for r in args.startup.split(",") if r],
    )
    machine = report["machine"]
    print(f"CPU: {machine['cpu']} ({machine['threads']} threads, native bf16: {machine['native_bf16'] or 'none'}, "
          f"load average {machine['load_average_1min']:.1f}); torch {machine['torch']}")
    print(format_table(report))
    for config, rows in report["startup"].items():
        print(f"\n{config}: starts (fresh processes; cold = empty cache)\n{format_startup(rows)}")
    if report["alignment_640x480"]:
        print(f"alignment of a 640x480 frame: {report['alignment_640x480']['median_ms']:.1f} ms median")
    return 0


def run_report(args: argparse.Namespace) -> int:
    """The GPU report (benchmarks/gpu_report.py): nothing here may need more than torch and numpy."""
    if args.threads:
        import os

        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    from benchmarks.gpu_report import run_from_args

    args.repeats = args.repeats or 10
    return run_from_args(args, args.report, args.runtimes)
