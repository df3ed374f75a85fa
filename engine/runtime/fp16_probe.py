"""The fp16 safety probe: do the weights actually loaded survive fp16?

Random weights prove the mechanism (benchmarks/fp16_headroom.py); a real checkpoint can still have
activations past fp16's 65504 (NVIDIA's own StyleGAN2 clamps at 256 for that reason; the paper's
rosinality-trained generator has no clamp). So the first use of a pack in fp16 runs G — and E_m's
features — in fp16 and in fp32 on a few inputs from the pack's own distribution (W+ from G's own
mapping network: shared w, and W+ mixing several w; for E_m noise and the range's extremes), on the
device they will run on, and passes only with
- no inf/NaN anywhere (output or any layer),
- G's image at PSNR ≥ MIN_PSNR_DB against fp32 (worst input), E_m's features within MAX_FEATURE_ERROR,
- every layer's largest |activation| at most fp16's max / MIN_HEADROOM (room for inputs the probe
  did not see).
The verdict is kept as JSON beside the compiled graphs (cache_dir()/compiled), keyed by the weights,
the code, torch and the device, so later starts read it. On the CPU (tests) the fp16 convolutions run
through half_numerics.CpuHalfConvolutions.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from engine.runtime.graph_cache import architecture_digest, weights_digest
from engine.runtime.half_numerics import (FP16_MAX, ActivationPeaks, CpuHalfConvolutions, ImageDifference,
                                          image_difference, worst)
from models.precision import to_precision

log = logging.getLogger(__name__)

MIN_PSNR_DB = 40.0  # G's fp16 image against fp32, worst probe input
MAX_FEATURE_ERROR = 1e-2  # E_m's fp16 features: largest |difference| / largest |f|
MIN_HEADROOM = 2.0  # every layer's peak at most 65504 / this
PROBE_LATENTS = 4  # W+ samples: half one w per image, half a different w per layer
PROBE_VERSION = 1  # bump when the probe's inputs or thresholds change (invalidates cached verdicts)


@dataclass(frozen=True)
class Fp16Verdict:
    passed: bool
    reason: str  # one line, for the runtime line and the log
    psnr_db: float | None  # G's worst image PSNR (None: identical)
    max_levels: int
    nonfinite: int  # inf/NaN values over every output and layer
    peak: float  # largest |activation| of any layer in fp16
    feature_error: float | None = None  # E_m's relative error (None: not probed)
    seconds: float = 0.0

    @property
    def headroom(self) -> float:
        return FP16_MAX / max(self.peak, 1e-30)


def probe(generator: nn.Module, encoder: nn.Module | None = None, device: str = "cpu", encoder_size: int = 256,
          seed: int = 0) -> Fp16Verdict:
    """Run the probe now (the networks are not changed: fp16 copies are made); `encoder_size`: E_m's input side."""
    t0 = time.perf_counter()
    generator = generator.eval()
    gen = torch.Generator().manual_seed(seed)
    n, d = generator.config.n_latent, generator.config.style_dim
    n_shared = PROBE_LATENTS // 2
    n_mixed = PROBE_LATENTS - n_shared
    with torch.no_grad():
        w = generator.map(torch.randn(n_shared + n_mixed * n, d, generator=gen).to(_device_of(generator)))  # [k, D]
        shared = w[:n_shared, None].expand(-1, n, -1)  # one w per image
        mixed = w[n_shared:].reshape(n_mixed, n, d)  # a w per layer
    latents = [x.to(device) for x in torch.cat([shared, mixed]).split(1)]
    diffs, g_peak, g_bad = _compare(generator, latents, device, _image)
    feature_error, e_peak, e_bad = None, 0.0, 0
    if encoder is not None:
        size = encoder_size
        images = [torch.rand(1, 3, size, size, generator=gen) * 2 - 1, torch.ones(1, 3, size, size),
                  -torch.ones(1, 3, size, size)]
        errors, e_peak, e_bad = _compare(_Features(encoder), [x.to(device) for x in images], device, _features)
        feature_error = max(errors)
    image = worst(diffs)
    peak, nonfinite = max(g_peak, e_peak), image.nonfinite + g_bad + e_bad
    psnr = None if math.isinf(image.psnr_db) else round(image.psnr_db, 2)
    seconds = round(time.perf_counter() - t0, 2)
    if nonfinite:
        return Fp16Verdict(False, f"{nonfinite} inf/NaN values in fp16", psnr, image.max_levels, nonfinite, peak,
                           feature_error, seconds)
    if FP16_MAX / max(peak, 1e-30) < MIN_HEADROOM:
        return Fp16Verdict(False, f"activations reach {peak:.0f}, within {MIN_HEADROOM:g}x of fp16's 65504", psnr,
                           image.max_levels, 0, peak, feature_error, seconds)
    if psnr is not None and psnr < MIN_PSNR_DB:
        return Fp16Verdict(False, f"fp16 image {psnr:.1f} dB from fp32 (< {MIN_PSNR_DB:g} dB)", psnr,
                           image.max_levels, 0, peak, feature_error, seconds)
    if feature_error is not None and feature_error > MAX_FEATURE_ERROR:
        return Fp16Verdict(False, f"E_m's fp16 features off by {feature_error:.1%}", psnr, image.max_levels, 0,
                           peak, feature_error, seconds)
    shown = "identical" if psnr is None else f"{psnr:.1f} dB"
    return Fp16Verdict(True, f"probe passed: {shown} vs fp32, headroom {FP16_MAX / max(peak, 1e-30):.0f}x",
                       psnr, image.max_levels, 0, peak, feature_error, seconds)


def cached_verdict(generator: nn.Module, encoder: nn.Module | None, device: str, cache: Path,
                   encoder_size: int = 256) -> Fp16Verdict:
    """The probe's verdict for these weights on this device: read from `cache` (a folder), else run and kept."""
    path = cache / f"fp16-probe-{probe_key(generator, encoder, device)}.json"
    try:
        return Fp16Verdict(**json.loads(path.read_text()))
    except FileNotFoundError:
        pass
    except (OSError, ValueError, TypeError) as exc:
        log.warning("fp16 probe: cached verdict %s unreadable (%s); probing again", path.name, exc)
    log.info("fp16 probe: first use of these weights in fp16 on %s; comparing against fp32…", device)
    verdict = probe(generator, encoder, device, encoder_size)
    log.info("fp16 probe: %s (%.1f s)", verdict.reason, verdict.seconds)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
        tmp.write_text(json.dumps(asdict(verdict)))
        os.replace(tmp, path)
    except OSError as exc:  # only costs the probe again next start
        log.warning("fp16 probe: could not keep the verdict in %s: %s", cache, exc)
    return verdict


def probe_key(generator: nn.Module, encoder: nn.Module | None, device: str) -> str:
    """Weights, code, torch, device and probe version: what the verdict depends on."""
    where = torch.cuda.get_device_name(0) if device == "cuda" and torch.cuda.is_available() else device
    parts = [str(PROBE_VERSION), torch.__version__, where, weights_digest(generator), architecture_digest(generator)]
    if encoder is not None:
        parts += [weights_digest(encoder), architecture_digest(encoder)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


class _Features(nn.Module):
    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder.features(x)


def _device_of(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def _image(half: torch.Tensor, ref: torch.Tensor) -> ImageDifference:
    return image_difference(half, ref)


def _features(half: torch.Tensor, ref: torch.Tensor) -> float:
    return float((half.float() - ref).abs().max() / ref.abs().max().clamp_min(1e-30))


def _compare(module: nn.Module, inputs: list[torch.Tensor], device: str, measure) -> tuple[list, float, int]:
    """[measure(fp16 out, fp32 out) per input], the largest |activation| in fp16, inf/NaN inside the layers."""
    full = copy.deepcopy(module).to(device)  # the caller's module stays where and as it is
    half = to_precision(copy.deepcopy(full), torch.float16)
    results = []
    with ActivationPeaks(half) as peaks, torch.no_grad():
        emulate = CpuHalfConvolutions() if device == "cpu" else contextlib.nullcontext()
        for x in inputs:
            ref = full(x).float()
            with emulate:
                out = half(x.half())
            results.append(measure(out, ref))
    return results, peaks.overall, sum(peaks.nonfinite.values())
