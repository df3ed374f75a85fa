"""The GPU report: every runtime × precision × batch of the paper pipeline on this machine, as one JSON.

    python -m app bench --report OUT.json [--configs paper-1024,256] [--runtimes …] [--precisions …]
                        [--batches 1,2,4,8] [--plot chart.png]

Made for a machine that has torch (CUDA), numpy and maybe onnxruntime, and nothing else of the app:
this path imports torch, numpy and the project's engine/models/benchmarks modules only (no MediaPipe,
Qt, PyAV, sounddevice, OpenCV; matplotlib only for --plot). Random weights (seeded) at each config.

Per config:
- `fp16`: the fp16-vs-fp32 check of the loaded weights (engine.runtime.fp16_probe: W+ from G's own
  mapping, E_m on noise and the range's extremes) → `fp16_psnr_db`, `fp16_max_levels`, `fp16_nonfinite`,
  headroom and verdict;
- `rows`: for each runtime (eager, compile, onnx, tensorrt where installed) and precision (fp32, fp16,
  bf16) at batch 1, and at batches 2/4/8 for eager and compile at the precision `auto` would run
  (`--batched`): median ms of E_m, the folded map, G and the whole frame, frames per second
  (batch / frame time), with CUDA graphs off and — on CUDA, eager and compile — on
  (engine.runtime.cuda_graphs, the whole frame captured); the image against eager fp32's (PSNR, max
  levels); achieved TFLOP/s of G; build seconds. A combination that cannot run here is a row with
  its one-line reason.
The JSON is rewritten after every row, so a run cut short keeps what it measured.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

from engine.runtime.cpu_precision import cpu_model

log = logging.getLogger(__name__)

RUNTIMES = ("eager", "compile", "onnx", "tensorrt")
PRECISIONS = ("fp32", "fp16", "bf16")
BATCHES = (1, 2, 4, 8)


def machine_info(device: str) -> dict:
    """Device name, driver, versions: what the figures depend on."""
    info = {"python": platform.python_version(), "torch": torch.__version__, "device": device,
            "cuda_runtime": torch.version.cuda, "cudnn": None, "driver": None, "gpu": None,
            "cpu": cpu_model(), "threads": torch.get_num_threads(), "numpy": _version("numpy"),
            "onnxruntime": _version("onnxruntime"), "torch_tensorrt": _version("torch_tensorrt"),
            "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=torch.cuda.get_device_name(0), gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    compute_capability=f"{props.major}.{props.minor}", bf16_supported=torch.cuda.is_bf16_supported(),
                    cudnn=torch.backends.cudnn.version(), driver=_nvidia_driver())
    return info


def _version(module: str) -> str | None:
    try:
        from importlib.metadata import PackageNotFoundError, version
        return version({"onnxruntime": "onnxruntime", "torch_tensorrt": "torch-tensorrt"}.get(module, module))
    except PackageNotFoundError:
        if module == "onnxruntime":
            try:
                return version("onnxruntime-gpu")
            except PackageNotFoundError:
                return None
        return None


def _nvidia_driver() -> str | None:
    smi = shutil.which("nvidia-smi")
    if not smi:
        return None
    try:
        out = subprocess.run([smi, "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.SubprocessError):
        return None


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def median_ms(fn: Callable[[], object], device: str, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


@dataclasses.dataclass
class Row:
    config: str
    runtime: str
    precision: str
    batch: int
    cuda_graphs: bool = False
    ms: dict[str, float] = dataclasses.field(default_factory=dict)  # E_m, map, G, frame (median)
    fps: float | None = None  # batch · 1000 / frame ms
    g_tflops: float | None = None  # achieved by G alone
    psnr_db: float | None = None  # the batch's first image against eager fp32 (None: identical)
    max_levels: int | None = None
    nonfinite: int | None = None
    build_s: float | None = None
    error: str | None = None  # why this combination did not run


class MotionFeatures(torch.nn.Module):
    """E_m up to its features f [B, D] (engine.stylegan.reenactor's graph, without that module's imports:
    it aligns faces with OpenCV and MediaPipe, which the report must not need)."""

    def __init__(self, encoder: torch.nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder.features(x)


class Pipeline:
    """E_m features → folded map → G on one runtime, precision and batch (as the live pipeline runs them)."""

    def __init__(self, model: torch.nn.Module, mapping: torch.nn.Module, choice, batch: int, label: str) -> None:
        from engine.runtime.runtimes import build_graph

        cfg = model.decoder.config
        s = model.config.input_size
        self.device = choice.device
        self.mapping = mapping
        self.features = build_graph(MotionFeatures(model.encoder), (torch.zeros(batch, 3, s, s),), choice,
                                    cache_key=f"{label}:E_m-b{batch}")
        self.generate = build_graph(model.decoder, (torch.zeros(batch, cfg.n_latent, cfg.style_dim),), choice,
                                    cache_key=f"{label}:G-b{batch}")

    def map(self, f: torch.Tensor, constant: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.mapping(f.float(), constant)

    def frame(self, x: torch.Tensor, constant: torch.Tensor) -> torch.Tensor:
        return self.generate(self.map(self.features(x), constant))


def bench_config(name: str, config, runtimes: list[str], precisions: list[str], batches: list[int],
                 batched: list[str], device: str, repeats: int, cuda_graphs: bool,
                 emit: Callable[[Row], None]) -> dict:
    """All rows of one config (emitted as they are measured) and its fp16 check."""
    from benchmarks.pipeline_bench import count_flops
    from engine.runtime.fp16_probe import probe
    from engine.runtime.half_numerics import image_difference
    from engine.runtime.runtimes import runtime_status, select_runtime
    from engine.stylegan.folding import FoldedMapping
    from models.paper import PaperModel

    torch.manual_seed(0)
    model = PaperModel(config).eval().requires_grad_(False)
    g, cfg, s = model.decoder, model.decoder.config, config.input_size
    log.info("%s: folding the mapping…", name)
    mapping = FoldedMapping(model.encoder.linear, model.mapping_net.linear, cfg.n_latent, cfg.style_dim).to(device)
    w_id = g.mean_latent(256).repeat(1, cfg.n_latent, 1)
    gen = torch.Generator().manual_seed(1)
    x_all = (torch.rand(max(batches), 3, s, s, generator=gen) * 2 - 1)
    constant_all = mapping.identity_constant(w_id.to(device)).expand(max(batches), -1)

    log.info("%s: fp16 check of the weights…", name)
    verdict = probe(g, model.encoder, device, s)
    fp16 = {"fp16_psnr_db": verdict.psnr_db, "fp16_max_levels": verdict.max_levels,
            "fp16_nonfinite": verdict.nonfinite, "fp16_headroom": round(verdict.headroom, 1),
            "fp16_feature_error": verdict.feature_error, "fp16_passed": verdict.passed, "fp16_reason": verdict.reason}
    log.info("%s: %s", name, verdict.reason)

    on_device = model.to(device)
    flops_g = count_flops(on_device.decoder, w_id.to(device))
    status = runtime_status()
    auto_precision = ("fp16" if verdict.passed else "bf16" if torch.cuda.is_bf16_supported() else "fp32") \
        if device == "cuda" else select_runtime("eager", "cpu", "auto").precision
    reference: torch.Tensor | None = None
    plan = [(rt, p, 1) for rt in runtimes for p in precisions]
    plan += [(rt, auto_precision, b) for rt in batched if rt in runtimes for b in batches if b > 1]
    for runtime, precision, batch in plan:
        row = Row(name, runtime, precision, batch)
        if status.get(runtime) is not None:
            row.error = status[runtime]
            emit(row)
            continue
        if runtime == "onnx" and precision != "fp32":  # it would run the fp32 export and mislabel the row
            row.error = "the ONNX runtime runs the fp32 export (its fp16/bf16 is not built)"
            emit(row)
            continue
        try:
            choice = select_runtime(runtime, device, precision)
        except Exception as exc:  # e.g. fp16 on the CPU, bf16 on ONNX: reported, not fatal
            row.error = str(exc).splitlines()[0]
            emit(row)
            continue
        x, constant = x_all[:batch].to(device), constant_all[:batch]
        t0 = time.perf_counter()
        try:
            pipe = Pipeline(on_device, mapping, choice, batch, f"report-{name}")
            row.build_s = round(time.perf_counter() - t0, 1)
            f = pipe.features(x)
            w = pipe.map(f, constant)
            row.ms = {"E_m": median_ms(lambda: pipe.features(x), device, repeats),
                      "map": median_ms(lambda: pipe.map(f, constant), device, repeats),
                      "G": median_ms(lambda: pipe.generate(w), device, repeats),
                      "frame": median_ms(lambda: pipe.frame(x, constant), device, repeats)}
            image = pipe.frame(x, constant)[:1].float().cpu()
        except Exception as exc:  # a runtime that fails here is a finding, not the end of the report
            log.warning("%s %s:%s batch %d failed: %s", name, runtime, precision, batch, exc)
            row.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
            emit(row)
            continue
        if reference is None and runtime == "eager" and precision == "fp32":
            reference = image
        if reference is not None:
            diff = image_difference(image, reference).as_dict()
            row.psnr_db, row.max_levels, row.nonfinite = diff["psnr_db"], diff["max_levels"], diff["nonfinite"]
        _rates(row, batch, flops_g)
        emit(row)
        if cuda_graphs and device == "cuda" and runtime in ("eager", "compile"):
            emit(_with_cuda_graphs(row, pipe, x, constant, device, repeats, flops_g, reference))
    return {"fp16": fp16, "flops": {"G": flops_g, "E_m": count_flops(on_device.encoder, x_all[:1].to(device))},
            "auto_precision": auto_precision}


def _rates(row: Row, batch: int, flops_g: float) -> None:
    row.fps = round(batch * 1000 / row.ms["frame"], 2)
    row.g_tflops = round(flops_g * batch / (row.ms["G"] / 1000) / 1e12, 3)
    row.ms = {k: round(v, 3) for k, v in row.ms.items()}


def _with_cuda_graphs(plain: Row, pipe: Pipeline, x: torch.Tensor, constant: torch.Tensor, device: str,
                      repeats: int, flops_g: float, reference: torch.Tensor | None) -> Row:
    """The same pipeline with the whole frame (E_m → map → G) captured in one CUDA graph, and G alone."""
    from engine.runtime.cuda_graphs import CapturedGraph
    from engine.runtime.half_numerics import image_difference

    row = dataclasses.replace(plain, cuda_graphs=True, ms={}, psnr_db=None, max_levels=None, nonfinite=None)
    try:
        frame = CapturedGraph(pipe.frame, name="frame")
        generate = CapturedGraph(pipe.generate, name="G")
        w = pipe.map(pipe.features(x), constant)
        row.ms = {"G": median_ms(lambda: generate(w), device, repeats, warmup=3),
                  "frame": median_ms(lambda: frame(x, constant), device, repeats, warmup=3)}
        row.ms["E_m"], row.ms["map"] = plain.ms["E_m"], plain.ms["map"]  # not captured alone
        image = frame(x, constant)[:1].float().cpu()
        if reference is not None:
            diff = image_difference(image, reference).as_dict()
            row.psnr_db, row.max_levels, row.nonfinite = diff["psnr_db"], diff["max_levels"], diff["nonfinite"]
        _rates(row, plain.batch, flops_g)
    except Exception as exc:
        row.error = f"CUDA graph: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
    return row


def run(out: Path, configs: list[str], runtimes: list[str] = list(RUNTIMES), precisions: list[str] = list(PRECISIONS),
        batches: list[int] = list(BATCHES), batched: list[str] = ("eager", "compile"), device: str = "auto",
        repeats: int = 10, cuda_graphs: bool = True, plot_path: Path | None = None) -> dict:
    """Measure and write the report to `out` (rewritten after every row); returns it."""
    from benchmarks.pipeline_bench import paper_configs

    torch.set_grad_enabled(False)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    report: dict = {"machine": machine_info(device), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "settings": {"configs": configs, "runtimes": list(runtimes), "precisions": list(precisions),
                                 "batches": list(batches), "batched": list(batched), "repeats": repeats,
                                 "cuda_graphs": cuda_graphs},
                    "configs": {}, "rows": []}

    def write() -> None:
        tmp = out.with_name(f".{out.name}.partial")
        tmp.write_text(json.dumps(report, indent=1))
        os.replace(tmp, out)

    def emit(row: Row) -> None:
        report["rows"].append(dataclasses.asdict(row))
        shown = row.error or f"{row.ms.get('frame', 0):.1f} ms/frame, {row.fps} fps, G {row.g_tflops} TFLOP/s"
        log.info("%s %s:%s b%d%s: %s", row.config, row.runtime, row.precision, row.batch,
                 " +CUDA graphs" if row.cuda_graphs else "", shown)
        write()

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mimic-report-") as cache:
        old = os.environ.get("MIMIC_CACHE_DIR")
        os.environ["MIMIC_CACHE_DIR"] = cache  # cold builds, and nothing left in the user's cache
        try:
            for name, config in paper_configs(configs):
                report["configs"][name] = {}
                report["configs"][name] = bench_config(name, config, list(runtimes), list(precisions), list(batches),
                                                       list(batched), device, repeats, cuda_graphs, emit)
                report.update({k: {**report.get(k, {}), name: v}
                               for k, v in report["configs"][name]["fp16"].items()})
                write()
        finally:
            if old is None:
                os.environ.pop("MIMIC_CACHE_DIR", None)
            else:
                os.environ["MIMIC_CACHE_DIR"] = old
    report["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    write()
    if plot_path is not None:
        plot(report, plot_path)
    return report


def format_report(report: dict) -> str:
    m = report["machine"]
    where = f"{m['gpu']} (driver {m['driver']}, CUDA {m['cuda_runtime']})" if m.get("gpu") else f"CPU {m['cpu']}"
    lines = [f"{where}; torch {m['torch']}, {m['threads']} threads",
             "| config | runtime | precision | batch | CUDA graphs | frame ms | FPS | G TFLOP/s | vs fp32 | note |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        if r["error"]:
            lines.append(f"| {r['config']} | {r['runtime']} | {r['precision']} | {r['batch']} | "
                         f"{'on' if r['cuda_graphs'] else 'off'} | – | – | – | – | {r['error']} |")
            continue
        diff = "–" if r["max_levels"] is None else (
            f"{'identical' if r['psnr_db'] is None else str(r['psnr_db']) + ' dB'}, {r['max_levels']} lv")
        lines.append(f"| {r['config']} | {r['runtime']} | {r['precision']} | {r['batch']} | "
                     f"{'on' if r['cuda_graphs'] else 'off'} | {r['ms']['frame']:.1f} | {r['fps']} | {r['g_tflops']} | "
                     f"{diff} | |")
    for name, c in report["configs"].items():
        f = c.get("fp16", {})
        if f:
            lines.append(f"\n{name}: fp16 vs fp32: {f['fp16_psnr_db']} dB, max {f['fp16_max_levels']} levels, "
                         f"{f['fp16_nonfinite']} inf/NaN, headroom {f['fp16_headroom']}x → "
                         f"{'passes' if f['fp16_passed'] else 'fails'} ({f['fp16_reason']})")
    return "\n".join(lines)


def _has(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def plot(report: dict, path: Path) -> None:
    """Frames per second per runtime/precision/batch, one panel per config (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["rows"] if not r["error"]]
    configs = list(dict.fromkeys(r["config"] for r in rows)) or ["(none)"]
    fig, axes = plt.subplots(1, len(configs), figsize=(7 * len(configs), 0.5 + 0.32 * max(len(rows), 4)),
                             squeeze=False)
    colors = {"fp32": "#4c72b0", "bf16": "#dd8452", "fp16": "#55a868"}
    for ax, name in zip(axes[0], configs):
        sub = [r for r in rows if r["config"] == name]
        labels = [f"{r['runtime']} {r['precision']} b{r['batch']}{' +graphs' if r['cuda_graphs'] else ''}" for r in sub]
        ax.barh(labels, [r["fps"] for r in sub], color=[colors.get(r["precision"], "grey") for r in sub])
        for i, r in enumerate(sub):
            ax.text(r["fps"], i, f" {r['fps']:.1f}", va="center", fontsize=8)
        ax.set_title(f"{name}: frames/s of E_m + map + G (higher is better)")
        ax.invert_yaxis()
    m = report["machine"]
    fig.suptitle(m.get("gpu") or f"CPU: {m['cpu']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """`python -m benchmarks.gpu_report OUT.json …` — the same as `python -m app bench --report`."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--configs", default="paper-1024,256", help="comma list of: paper-1024, 256, tiny")
    parser.add_argument("--runtimes", default=",".join(RUNTIMES), help="comma list of eager, compile, onnx, tensorrt")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per figure (median reported)")
    parser.add_argument("--plot", type=Path, help="write the chart PNG (needs matplotlib)")
    parser.add_argument("--replot", type=Path, metavar="CHART.png",
                        help="only draw the chart of an existing report OUT.json (made elsewhere) into CHART.png")
    add_arguments(parser)
    args = parser.parse_args(argv)
    if args.replot is not None:
        plot(json.loads(args.out.read_text()), args.replot)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run_from_args(args, args.out, args.runtimes)


def add_arguments(parser) -> None:
    parser.add_argument("--precisions", default=",".join(PRECISIONS), help="comma list of fp32, fp16, bf16")
    parser.add_argument("--batches", default=",".join(map(str, BATCHES)), help="batch sizes (1 for every row)")
    parser.add_argument("--batched", default="eager,compile",
                        help="runtimes also measured at the batches > 1 (at the precision auto picks)")
    parser.add_argument("--device", default="auto", help="auto, cuda or cpu")
    parser.add_argument("--no-cuda-graphs", action="store_true", help="do not measure with CUDA graphs")


def run_from_args(args, out: Path, runtimes: str | None = None) -> int:
    if args.plot is not None and not _has("matplotlib"):  # before the long run, not after it
        from engine.errors import MimicError

        raise MimicError("--plot needs matplotlib (pip install matplotlib); or plot the JSON later on another "
                         "machine with `python -m benchmarks.gpu_report OUT.json --replot chart.png`")
    split = lambda text: [s for s in text.split(",") if s]  # noqa: E731
    names = list(dict.fromkeys(r.partition(":")[0] for r in split(runtimes))) if runtimes else list(RUNTIMES)
    report = run(out, split(args.configs), names, split(args.precisions),
                 [int(b) for b in split(args.batches)], split(args.batched), args.device, args.repeats,
                 not args.no_cuda_graphs, args.plot)
    print(format_report(report))
    print(f"report written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
