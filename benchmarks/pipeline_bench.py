"""Per-stage speed of the paper pipeline on every runtime available here (`python -m app bench`).

For each model config (the paper's 1024 model, and a 256 one) with random weights:
- the *baseline*: plain eager, unfolded — E_m, then the full 18432→9216 mapping on
  concat(w_id, E_m(x)), then the plain reference-formulation generator (benchmarks.plain_stylegan2);
- the engine on each runtime (eager fp32, eager bf16, torch.compile, ONNX Runtime; TensorRT on CUDA):
  E_m features, folded mapping, generator, as the live pipeline runs them.
Reports median ms per stage, FPS, speed-up over the baseline, and achieved GFLOP/s.
"""
from __future__ import annotations

import contextlib
import copy
import json
import os
import logging
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)


@dataclass
class StageTimes:
    runtime: str
    config: str
    ms: dict[str, float]  # median per stage: align, E_m, map, G, total
    fps: float
    speedup: float | None = None  # baseline total / this total
    gflops: dict[str, float] = field(default_factory=dict)  # achieved GFLOP/s per stage
    build_s: float = 0.0  # compile / export time (cold: the bench runs with an empty cache dir)
    psnr_db: float | None = None  # output image against the first fp32 runtime's (same weights and input)
    max_levels: int | None = None  # largest difference of any pixel channel, in 8-bit levels
    note: str = ""


def median_ms(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def count_flops(module: torch.nn.Module, *inputs: torch.Tensor) -> float:
    """FLOPs of one forward (2 per multiply-add), counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(*inputs)
    return float(counter.get_total_flops())


def paper_configs(names: list[str]):
    from models.irse import IRSEConfig
    from models.paper import PaperConfig
    from models.stylegan2 import GeneratorConfig

    table = {
        "paper-1024": PaperConfig.paper(),
        "256": PaperConfig(generator=GeneratorConfig(size=256, channel_multiplier=2), encoder=IRSEConfig()),
        "tiny": PaperConfig.tiny(),
    }
    unknown = set(names) - set(table)
    if unknown:
        raise ValueError(f"unknown config(s) {sorted(unknown)}; choose from {sorted(table)}")
    return [(n, table[n]) for n in names]


def bench_config(name: str, config, runtimes: list[str], repeats: int) -> tuple[list[StageTimes], dict[str, float]]:
    """The per-stage rows of one config, and G's 3x3 convolutions alone (ms, channels-last) per precision."""
    from benchmarks.plain_stylegan2 import PlainSynthesis
    from engine.runtime.runtimes import select_runtime
    from engine.stylegan.pipeline import StyleGANReenactor
    from models.paper import PaperModel

    torch.manual_seed(0)
    model = PaperModel(config).eval().requires_grad_(False)
    g = model.decoder
    n, d, s = g.config.n_latent, g.config.style_dim, config.input_size
    x = torch.randn(1, 3, s, s).clamp(-1, 1)
    w_id = g.mean_latent(256).repeat(1, n, 1) if hasattr(g, "mean_latent") else torch.randn(1, n, d)

    flops_em = count_flops(model.encoder, x)
    flops_g = count_flops(g, w_id)
    flops_map_full = 2.0 * (2 * n * d) * (n * d)
    flops_map_folded = 2.0 * d * (n * d)
    results: list[StageTimes] = []
    reference: np.ndarray | None = None  # the first fp32 runtime's image

    # Baseline: plain eager, unfolded.
    plain_g = PlainSynthesis(g.state_dict())
    with torch.no_grad():
        codes = model.encoder(x)
        t_em = median_ms(lambda: model.encoder(x), repeats)
        t_map = median_ms(lambda: model.mapping_net(w_id, codes), repeats)
        w = model.mapping_net(w_id, codes)
        t_g = median_ms(lambda: plain_g(w), repeats)
    base = {"E_m": t_em, "map": t_map, "G": t_g}
    base["total"] = sum(base.values())
    results.append(StageTimes("baseline (plain eager, unfolded)", name, base, 1000 / base["total"], 1.0,
                              _gflops(base, flops_em, flops_map_full, flops_g)))
    log.info("%s baseline: %s", name, base)

    for rt in runtimes:
        runtime, _, precision = rt.partition(":")
        try:
            choice = select_runtime(runtime, "auto", precision or "auto")
        except Exception as exc:  # unavailable here: reported, not fatal
            results.append(StageTimes(rt, name, {}, 0.0, note=str(exc)))
            continue
        t0 = time.perf_counter()
        try:
            own = copy.deepcopy(model)  # runtimes convert dtype/device in place
            reenactor = StyleGANReenactor(own, _NoInverter(own.decoder), f"bench-{name}", choice)
        except Exception as exc:
            log.warning("%s on %s failed to build: %s", name, rt, exc)
            results.append(StageTimes(rt, name, {}, 0.0, note=f"build failed: {exc}"))
            continue
        build_s = time.perf_counter() - t0
        reenactor.set_identity(w_id[0].numpy())
        stage_runs: dict[str, list[float]] = {}
        reenactor.render(x)  # warm-up
        for _ in range(repeats):
            timings: dict[str, float] = {}
            reenactor.render(x, timings)
            for k, v in timings.items():
                stage_runs.setdefault(k, []).append(v)
        ms = {k: statistics.median(v) for k, v in stage_runs.items()}
        ms["total"] = ms["E_m"] + ms["map"] + ms["G"] + ms.get("post", 0.0)
        image = reenactor.render(x)
        if reference is None and choice.precision == "fp32":
            reference = image
        psnr, max_levels = image_difference(image, reference) if reference is not None else (None, None)
        results.append(StageTimes(f"{choice.name}:{choice.precision}", name, ms, 1000 / ms["total"],
                                  base["total"] / ms["total"], _gflops(ms, flops_em, flops_map_folded, flops_g), build_s,
                                  psnr, max_levels))
        log.info("%s %s: %s", name, rt, ms)
    for r in results:
        r.note = r.note or f"E_m {flops_em / 1e9:.1f} GFLOP, G {flops_g / 1e9:.1f} GFLOP per frame"
    convs = g_convolutions_ms(g, w_id, repeats)
    log.info("%s: G's 3x3 convolutions alone (channels-last): %s ms", name, convs)
    return results, convs


class _NoInverter(torch.nn.Module):
    """The benchmark sets identities directly; inversion is not part of the per-frame cost."""

    def __init__(self, decoder: torch.nn.Module) -> None:
        super().__init__()
        self.decoder = decoder


def image_difference(image: np.ndarray, reference: np.ndarray) -> tuple[float, int]:
    """(PSNR in dB, largest difference in 8-bit levels) of two uint8 images; PSNR is inf when equal."""
    diff = image.astype(np.float64) - reference.astype(np.float64)
    mse = float(np.mean(diff**2))
    psnr = float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)
    return psnr, int(np.abs(diff).max())


def g_convolutions_ms(g: torch.nn.Module, w: torch.Tensor, repeats: int) -> dict[str, float]:
    """G's 3x3 convolutions alone — each as a plain F.conv2d / conv_transpose2d in channels-last at its
    own shape, nothing else — summed per precision: what the generator would cost if only they counted.

    fp32 and bf16 alternate and the fastest of `repeats` rounds counts (a shared machine's load then
    disturbs the comparison least).
    """
    from models.stylegan2 import ModulatedConv2d

    shapes: list[tuple[tuple[int, ...], ModulatedConv2d]] = []
    hooks = [m.register_forward_pre_hook(lambda mod, args: shapes.append((tuple(args[0].shape), mod)))
             for m in g.modules() if isinstance(m, ModulatedConv2d) and m.weight.shape[-1] == 3]
    with torch.no_grad():
        g(w)
    for h in hooks:
        h.remove()
    totals = {"fp32": 0.0, "bf16": 0.0}
    for shape, conv in shapes:
        calls = {p: _conv_call(shape, conv, dtype) for p, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
        best = {p: float("inf") for p in calls}
        for _ in range(repeats + 1):
            for p, call in calls.items():
                t = time.perf_counter()
                call()
                best[p] = min(best[p], (time.perf_counter() - t) * 1000)
        for p in totals:
            totals[p] += best[p]
    return totals


def _conv_call(shape: tuple[int, ...], conv: torch.nn.Module, dtype: torch.dtype) -> Callable[[], object]:
    cl = torch.channels_last
    x = torch.randn(shape).to(dtype).contiguous(memory_format=cl)
    weight = conv.weight[0].detach().to(dtype)
    if conv.upsample:
        weight = weight.transpose(0, 1).contiguous(memory_format=cl)
        return lambda: F.conv_transpose2d(x, weight, stride=2)
    weight = weight.contiguous(memory_format=cl)
    return lambda: F.conv2d(x, weight, padding=1)


def _gflops(ms: dict[str, float], em: float, mapping: float, g: float) -> dict[str, float]:
    out = {}
    for stage, flops in (("E_m", em), ("map", mapping), ("G", g)):
        if ms.get(stage):
            out[stage] = flops / (ms[stage] / 1000) / 1e9
    return out


def bench_alignment(repeats: int) -> dict[str, float] | None:
    """Median ms to align a 640x480 frame on the fast path (mesh + smoothing + warp)."""
    from engine.face.align import LiveAligner
    from engine.media.video_io import VideoReader

    clip = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "video" / "carphone_pristine.mp4"
    if not clip.exists():
        log.warning("alignment bench skipped: %s not found", clip)
        return None
    import cv2

    with VideoReader(clip) as video:
        frames = [cv2.resize(f, (640, 480), interpolation=cv2.INTER_LINEAR) for f in video]
    aligner = LiveAligner(size=256)
    times = []
    for i in range(max(repeats, len(frames))):
        t = time.perf_counter()
        aligner.align(frames[i % len(frames)])
        times.append((time.perf_counter() - t) * 1000)
    return {"median_ms": statistics.median(times[5:]), "p90_ms": float(np.percentile(times[5:], 90))}


def run(configs: list[str], runtimes: list[str], repeats: int, json_path: Path | None, plot_path: Path | None,
        startup: list[str] = (), threads: int | None = None) -> dict:
    """The per-stage table for each config; with `startup` (runtime:precision list) also cold/warm starts.

    Runs with an empty cache dir of its own, so `build s` is the cold cost of compiled runtimes.
    """
    from engine.runtime.cpu_precision import cpu_model, native_bf16

    torch.set_grad_enabled(False)
    if threads:
        torch.set_num_threads(threads)
    align = bench_alignment(repeats=60)
    rows: list[StageTimes] = []
    convs: dict[str, dict[str, float]] = {}
    starts: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="mimic-bench-") as cache, _cache_dir(cache):
        for name, cfg in paper_configs(configs):
            config_rows, convs[name] = bench_config(name, cfg, runtimes, repeats)
            rows += config_rows
            if startup:
                starts[name] = bench_startup(cfg, startup, Path(cache))
    for r in rows:
        if align and r.ms:
            r.ms = {"align": align["median_ms"], **r.ms}
    report = {
        "machine": {"cpu": cpu_model(), "native_bf16": native_bf16(), "threads": torch.get_num_threads(),
                    "load_average_1min": os.getloadavg()[0], "torch": torch.__version__,
                    "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
        "alignment_640x480": align,
        "rows": [asdict(r) for r in rows],
        "g_convolutions_ms": convs,
        "startup": starts,
    }
    if json_path:
        json_path.write_text(json.dumps(report, indent=2))
    if plot_path:
        plot(rows, plot_path)
    return report


def bench_startup(config, runtimes: list[str], folder: Path) -> list[dict]:
    """Cold and warm starts (fresh processes) of a random-weight pack of `config` on each runtime."""
    from benchmarks.startup_bench import measure, render_inputs, write_random_pack

    pack = write_random_pack(config, folder)
    driving, target = render_inputs(config, folder)
    try:
        return [measure(pack, *(rt.split(":") + ["auto"])[:2], driving, target) for rt in runtimes]
    finally:
        pack.unlink()


@contextlib.contextmanager
def _cache_dir(path: str):
    old = os.environ.get("MIMIC_CACHE_DIR")
    os.environ["MIMIC_CACHE_DIR"] = path
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MIMIC_CACHE_DIR")
        else:
            os.environ["MIMIC_CACHE_DIR"] = old


def format_table(report: dict) -> str:
    lines = ["| config | runtime | align | E_m | map | G | total ms | FPS | speed-up | G GFLOP/s | build s (cold) "
             "| image vs fp32: PSNR dB, max levels |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        ms = r["ms"]
        if not ms:
            lines.append(f"| {r['config']} | {r['runtime']} | – | – | – | – | – | – | – | – | {r['note']} | – |")
            continue
        f = lambda k: f"{ms[k]:.1f}" if k in ms else "–"  # noqa: E731
        lines.append(
            f"| {r['config']} | {r['runtime']} | {f('align')} | {f('E_m')} | {f('map')} | {f('G')} | {ms['total']:.0f} | "
            f"{r['fps']:.2f} | {r['speedup']:.2f}x | {r['gflops'].get('G', 0):.0f} | {r['build_s']:.0f} | {_diff(r)} |"
        )
    for config, convs in report.get("g_convolutions_ms", {}).items():
        ratios = ", ".join(f"{r['runtime']} {r['ms']['G'] / convs[r['runtime'].rpartition(':')[2]]:.2f}x"
                           for r in report["rows"] if r["config"] == config and r["ms"] and ":" in r["runtime"]
                           and r["runtime"].rpartition(":")[2] in convs)
        lines.append(f"\n{config}: G's 3x3 convolutions alone (plain, channels-last): fp32 {convs['fp32']:.0f} ms, "
                     f"bf16 {convs['bf16']:.0f} ms; G / its convolutions in the same precision: {ratios}")
    return "\n".join(lines)


def _diff(row: dict) -> str:
    if row.get("psnr_db") is None:
        return "–"
    psnr = "identical" if row["psnr_db"] == float("inf") else f"{row['psnr_db']:.1f} dB"
    return f"{psnr}, {row['max_levels']}"


def plot(rows: list[StageTimes], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r.ms]
    configs = sorted({r.config for r in rows}, key=[r.config for r in rows].index)
    fig, axes = plt.subplots(1, len(configs), figsize=(6 * len(configs), 4), squeeze=False)
    for ax, cfg in zip(axes[0], configs):
        sub = [r for r in rows if r.config == cfg]
        left = np.zeros(len(sub))
        for stage, color in (("E_m", "#4c72b0"), ("map", "#dd8452"), ("G", "#55a868")):
            vals = np.array([r.ms.get(stage, 0.0) for r in sub])
            ax.barh([r.runtime for r in sub], vals, left=left, label=stage, color=color)
            left += vals
        ax.set_title(f"{cfg}: ms per frame (lower is better)")
        ax.invert_yaxis()
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
