"""fp16 headroom of G and E_m: per-layer peaks against fp16's 65504, and fp16 images against fp32.

    python -m benchmarks.fp16_headroom [--config paper-1024|256|tiny] [--json OUT.json]

Random weights (seeded) at the paper's config, stressed inputs:
- G: W from the mapping (ψ = 1), truncation ψ = 2 and ψ = 3 (further from the average than sampling
  ever goes), W+ with each layer its own w at ψ = 3, and W+ whose every entry sits at the edge of
  the range seen in 4096 samples;
- E_m: uniform noise in [-1, 1], all +1, all −1, and a ±1 one-pixel checkerboard (range extremes).
For each input: the fp32 run and the fp16 run (the network converted as the runtimes convert it,
fp32 islands kept: models/precision.py), then PSNR / max levels / inf-NaN of the fp16 image and the
largest |activation| of every layer in both. For each modulated convolution it also reports what a
naive fp16 formulation would have had to hold: x·s, Σ W²·s² (the demodulation's sum) and conv(x·s)
before demodulation, computed in fp32 from the same run — the figures that name the fp32 islands.

On the CPU fp16 convolutions run through engine.runtime.half_numerics.CpuHalfConvolutions (fp16
operands and results, fp32 accumulation: cuDNN's numerics, at fp32 speed); `--native` uses PyTorch's
own fp16 CPU kernels instead (very slow). Figures: docs/gpu.md.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from engine.runtime.half_numerics import FP16_MAX, ActivationPeaks, CpuHalfConvolutions, image_difference, worst

log = logging.getLogger(__name__)


@dataclass
class ModConvPeaks:
    """Per modulated convolution, the largest values of the naive formulation and of ours (fp32 figures)."""

    naive_x_times_s: float = 0.0  # max |x·s| with the raw style s
    naive_demod_sum: float = 0.0  # max Σ W²·s² (the demodulation's sum of squares) with the raw s
    naive_conv: float = 0.0  # max |conv(x·s)| before demodulation (or the ToRGB's raw output)
    ours_conv: float = 0.0  # max |conv(x·s/max|s|)| before demodulation: what fp16 holds here


class ModConvRecorder:
    """Forward hooks on every ModulatedConv2d recording ModConvPeaks (a context)."""

    def __init__(self, generator: nn.Module) -> None:
        from models.stylegan2 import ModulatedConv2d

        self.convs = {n: m for n, m in generator.named_modules() if isinstance(m, ModulatedConv2d)}
        self.peaks: dict[str, ModConvPeaks] = {n: ModConvPeaks() for n in self.convs}
        self._hooks: list = []

    def __enter__(self) -> "ModConvRecorder":
        self._hooks = [m.register_forward_hook(self._hook(n)) for n, m in self.convs.items()]
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._hooks:
            h.remove()

    def _hook(self, name: str):
        def record(conv: nn.Module, args: tuple, y: torch.Tensor) -> None:
            x, w = args
            style = conv.modulation(w.to(conv.modulation.weight.dtype)).float()  # [B, in]
            peak = style.abs().amax(1, keepdim=True)  # [B, 1]
            wsq = (conv.weight[0].float() * conv.scale).square().sum((2, 3))  # [out, in]
            p = self.peaks[name]
            p.naive_x_times_s = max(p.naive_x_times_s, float((x.float().abs().amax((2, 3)) * style.abs()).max()))
            raw_sum = style.square() @ wsq.T  # [B, out]
            p.naive_demod_sum = max(p.naive_demod_sum, float(raw_sum.max()))
            y = y.float()
            if conv.demodulate:
                d = torch.rsqrt((style / peak).square() @ wsq.T + 1e-8 / peak.square())  # ours
                pre = y / d[:, :, None, None]
                p.ours_conv = max(p.ours_conv, float(pre.abs().max()))
                p.naive_conv = max(p.naive_conv, float((pre * peak[:, :, None, None]).abs().max()))
            else:
                p.naive_conv = max(p.naive_conv, float(y.abs().max()))
                p.ours_conv = max(p.ours_conv, float((y / peak[:, :, None, None]).abs().max()))
        return record


@dataclass
class NetworkCheck:
    name: str
    inputs: dict[str, dict] = field(default_factory=dict)  # per input: psnr_db, max_levels, nonfinite
    layers: list[dict] = field(default_factory=list)  # per layer: fp32 / fp16 peaks, headroom
    seconds: float = 0.0

    def summary(self) -> dict:
        runs = self.inputs.values()
        out = {"nonfinite": sum(v["nonfinite"] for v in runs),
               "min_headroom": round(min(row["headroom"] for row in self.layers), 1),
               "tightest_layer": min(self.layers, key=lambda r: r["headroom"])["layer"]}
        if all("psnr_db" in v for v in runs):
            psnr = min((v["psnr_db"] if v["psnr_db"] is not None else float("inf")) for v in runs)
            out["worst_psnr_db"] = None if psnr == float("inf") else psnr
            out["worst_max_levels"] = max(v["max_levels"] for v in runs)
        else:
            out["worst_relative_error"] = max(v["relative_error"] for v in runs)
        return out


def generator_inputs(g: nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """The stressed W+ set of the module docstring, each [1, n, D]."""
    gen = torch.Generator().manual_seed(seed)
    n, d = g.config.n_latent, g.config.style_dim
    with torch.no_grad():
        sample = g.map(torch.randn(4096, d, generator=gen))  # [4096, D]
        centre = sample.mean(0, keepdim=True)
        w = sample[:n]  # n different w
        low, high = sample.min(0).values, sample.max(0).values
        edge = torch.where(torch.rand(n, d, generator=gen) < 0.5, low, high)
    far = centre + 3 * (w - centre)
    return {
        "W, psi=1": w[:1].expand(n, d)[None],
        "W, psi=2": (centre + 2 * (w[:1] - centre)).expand(n, d)[None],
        "W, psi=3": (centre + 3 * (w[:1] - centre)).expand(n, d)[None],
        "W+ mixed, psi=3": far[None],
        "W+ at range edges": edge[None],
    }


def encoder_inputs(size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    board = ((yy + xx) % 2 * 2 - 1).float().expand(1, 3, size, size)
    return {"uniform noise": torch.rand(1, 3, size, size, generator=gen) * 2 - 1,
            "all +1": torch.ones(1, 3, size, size), "all -1": -torch.ones(1, 3, size, size),
            "checkerboard +-1": board.contiguous()}


def check_network(name: str, module: nn.Module, inputs: dict[str, torch.Tensor], layer_rows: list[str],
                  native: bool = False, mod_convs: bool = False, image: bool = True) -> NetworkCheck:
    """Run every input in fp32 and fp16; per layer in `layer_rows` the largest |output| (over the
    layer's whole subtree) in each, and its fp16 headroom. `image`: the output is an image in [-1, 1]
    (PSNR, max levels), else features (relative error)."""
    from models.precision import to_precision

    module = module.eval().requires_grad_(False)
    half = to_precision(copy.deepcopy(module), torch.float16)
    check = NetworkCheck(name)
    t0 = time.perf_counter()
    naive: dict[str, ModConvPeaks] = {}
    peaks32: dict[str, float] = {}
    peaks16: dict[str, float] = {}
    nonfinite16: dict[str, int] = {}
    for label, x in inputs.items():
        t = time.perf_counter()
        with torch.no_grad():
            recorder = ModConvRecorder(module) if mod_convs else contextlib.nullcontext()
            with ActivationPeaks(module) as p32, recorder:
                ref = module(x)
            conv_mode = contextlib.nullcontext() if native else CpuHalfConvolutions()
            with ActivationPeaks(half) as p16, conv_mode:
                out = half(x.half())
        if image:
            result = image_difference(out, ref).as_dict()
        else:  # features: relative error against the largest fp32 value
            err = float((out.float() - ref).abs().max() / ref.abs().max().clamp_min(1e-30))
            result = {"relative_error": err, "nonfinite": int((~torch.isfinite(out)).sum())}
        check.inputs[label] = result
        for k, v in p32.peaks.items():
            peaks32[k] = max(peaks32.get(k, 0.0), v)
        for k, v in p16.peaks.items():
            peaks16[k] = max(peaks16.get(k, 0.0), v)
        for k, v in p16.nonfinite.items():
            nonfinite16[k] = nonfinite16.get(k, 0) + v
        if mod_convs:
            for k, v in recorder.peaks.items():
                acc = naive.setdefault(k, ModConvPeaks())
                for f in vars(v):
                    setattr(acc, f, max(getattr(acc, f), getattr(v, f)))
        log.info("%s · %s: %s (%.0f s)", name, label, result, time.perf_counter() - t)
    for row in layer_rows:
        def subtree(table: dict[str, float]) -> float:
            return max((v for k, v in table.items() if k == row or k.startswith(row + ".")), default=0.0)
        entry = {"layer": row, "fp32_peak": subtree(peaks32), "fp16_peak": subtree(peaks16),
                 "fp16_nonfinite": sum(v for k, v in nonfinite16.items() if k == row or k.startswith(row + "."))}
        if mod_convs:
            for conv_name, conv_peaks in naive.items():
                if conv_name.startswith(row + "."):
                    entry.setdefault("naive", {})[conv_name[len(row) + 1:]] = {k: round(v, 3) for k, v in
                                                                            vars(conv_peaks).items()}
        entry["headroom"] = FP16_MAX / max(entry["fp16_peak"], 1e-30)
        check.layers.append(entry)
    check.seconds = round(time.perf_counter() - t0, 1)
    return check


class _Synthesis(nn.Module):
    """G's synthesis as a module of W+ (the hooks see G's own layer names under `g.`)."""

    def __init__(self, g: nn.Module) -> None:
        super().__init__()
        self.g = g

    def forward(self, w_plus: torch.Tensor) -> torch.Tensor:
        return self.g(w_plus)


class _Features(nn.Module):
    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.e = encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.e.features(x)


def run(config_name: str = "paper-1024", native: bool = False, seed: int = 0,
        networks: tuple[str, ...] = ("G", "E_m")) -> dict:
    from benchmarks.pipeline_bench import paper_configs
    from models.paper import PaperModel

    torch.manual_seed(seed)
    (_, config), = paper_configs([config_name])
    model = PaperModel(config).eval().requires_grad_(False)
    g, e = model.decoder, model.encoder
    report: dict = {"config": config_name, "fp16_max": FP16_MAX, "torch": torch.__version__,
                    "fp16_convolutions": "native" if native else "fp16 operands, fp32 accumulation (CpuHalfConvolutions)",
                    "networks": {}}
    if "G" in networks:
        rows = ["g.input", "g.conv1", "g.to_rgb1"]
        for level in range(len(g.to_rgbs)):
            rows += [f"g.convs.{2 * level}", f"g.convs.{2 * level + 1}", f"g.to_rgbs.{level}"]
        check = check_network("G", _Synthesis(g), generator_inputs(g, seed), rows, native, mod_convs=True)
        report["networks"]["G"] = {**vars(check), "summary": check.summary()}
    if "E_m" in networks:
        rows = ["e.input_layer"] + [f"e.body.{i}" for i in range(len(e.body))] + ["e.output_layer_2"]
        check = check_network("E_m", _Features(e), encoder_inputs(config.input_size, seed), rows, native, image=False)
        report["networks"]["E_m"] = {**vars(check), "summary": check.summary()}
    return report


def format_report(report: dict) -> str:
    lines = [f"config {report['config']}, torch {report['torch']}; fp16 convolutions: {report['fp16_convolutions']}"]
    for name, net in report["networks"].items():
        s = net["summary"]
        quality = (f"worst PSNR {s['worst_psnr_db']} dB, worst max levels {s['worst_max_levels']}"
                   if "worst_psnr_db" in s else f"worst relative error of f {s['worst_relative_error']:.2g}")
        lines.append(f"\n{name}: {quality}, inf/NaN {s['nonfinite']}, smallest headroom {s['min_headroom']}x "
                     f"({s['tightest_layer']}), {net['seconds']:.0f} s")
        for label, d in net["inputs"].items():
            quality = (f"PSNR {d['psnr_db']} dB, max {d['max_levels']} levels" if "psnr_db" in d
                       else f"relative error {d['relative_error']:.2g}")
            lines.append(f"  {label:<22} {quality}, inf/NaN {d['nonfinite']}")
        lines.append(f"  {'layer':<18} {'fp32 peak':>10} {'fp16 peak':>10} {'headroom':>9}  naive fp16: max |x·s|, Σ W²s², |conv(x·s)|")
        for row in net["layers"]:
            naive = "; ".join(f"{k}: {v['naive_x_times_s']:.3g}, {v['naive_demod_sum']:.3g}, {v['naive_conv']:.3g}"
                              for k, v in row.get("naive", {}).items())
            lines.append(f"  {row['layer']:<18} {row['fp32_peak']:>10.3g} {row['fp16_peak']:>10.3g} "
                         f"{row['headroom']:>8.0f}x  {naive}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="paper-1024", help="paper-1024, 256 or tiny")
    parser.add_argument("--networks", default="G,E_m", help="comma list of G, E_m")
    parser.add_argument("--native", action="store_true", help="PyTorch's own fp16 CPU convolutions (very slow)")
    parser.add_argument("--json", type=Path, help="write the figures as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    report = run(args.config, args.native, networks=tuple(n for n in args.networks.split(",") if n))
    print(format_report(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
