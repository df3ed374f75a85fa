"""Measuring a network in half precision against float32: image difference, activation peaks, and fp16
convolutions on the CPU at fp32 speed.

Used by the fp16 safety probe (engine.runtime.fp16_probe), the headroom measurement
(benchmarks/fp16_headroom.py) and the GPU report (benchmarks/gpu_report.py). Needs torch only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

FP16_MAX = 65504.0  # the largest finite float16


@dataclass(frozen=True)
class ImageDifference:
    """A half-precision image against the float32 one, both [B, 3, H, W] in ≈[-1, 1]."""

    psnr_db: float  # over 8-bit levels; inf when equal
    max_levels: int  # largest difference of any pixel channel, in 8-bit levels
    nonfinite: int  # inf/NaN values in the half-precision output

    def as_dict(self) -> dict[str, float | int | None]:
        return {"psnr_db": None if math.isinf(self.psnr_db) else round(self.psnr_db, 2),
                "max_levels": self.max_levels, "nonfinite": self.nonfinite}


def to_levels(image: torch.Tensor) -> torch.Tensor:
    """[-1, 1] → 8-bit levels 0…255 (as float64; non-finite values count as 0)."""
    x = torch.nan_to_num(image.detach().double().cpu(), nan=-1.0, posinf=-1.0, neginf=-1.0)
    return ((x.clamp(-1, 1) + 1) * 127.5).round()


def image_difference(half: torch.Tensor, reference: torch.Tensor) -> ImageDifference:
    nonfinite = int((~torch.isfinite(half.float())).sum())
    diff = to_levels(half) - to_levels(reference)
    mse = float(diff.square().mean())
    psnr = math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)
    return ImageDifference(psnr, int(diff.abs().max()), nonfinite)


def worst(differences: list[ImageDifference]) -> ImageDifference:
    """The worst of several: lowest PSNR, largest max levels, all non-finite values."""
    return ImageDifference(min(d.psnr_db for d in differences), max(d.max_levels for d in differences),
                           sum(d.nonfinite for d in differences))


class ActivationPeaks:
    """Largest |value| (and any inf/NaN) of every submodule's tensor output while active (a context)."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.peaks: dict[str, float] = {}
        self.nonfinite: dict[str, int] = {}
        self._hooks: list = []

    def __enter__(self) -> "ActivationPeaks":
        for name, sub in self.module.named_modules():
            if name:
                self._hooks.append(sub.register_forward_hook(self._recorder(name)))
        return self

    def __exit__(self, *exc: object) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()

    def _recorder(self, name: str):
        def record(module: nn.Module, args: tuple, out: object) -> None:
            if not isinstance(out, torch.Tensor) or not out.is_floating_point():
                return
            finite = torch.isfinite(out)
            bad = int((~finite).sum())
            peak = float(torch.where(finite, out, torch.zeros((), dtype=out.dtype)).abs().max()) if out.numel() else 0.0
            self.peaks[name] = max(self.peaks.get(name, 0.0), peak)
            if bad:
                self.nonfinite[name] = self.nonfinite.get(name, 0) + bad
        return record

    @property
    def overall(self) -> float:
        return max(self.peaks.values(), default=0.0)


class CpuHalfConvolutions(TorchFunctionMode):
    """fp16 convolutions on the CPU the way a GPU computes them, at fp32 speed.

    PyTorch's own fp16 convolutions on a CPU without AVX512-FP16 are 4-50x slower than fp32 (measured:
    docs/gpu.md). Inside this mode an fp16 conv2d / conv_transpose2d takes its fp16 operands (already
    rounded to fp16), convolves them in fp32 and rounds the result to fp16 — a value past 65504 becomes
    inf exactly as in fp16 storage. That is the numerics of cuDNN's fp16 convolutions (fp16 in and out,
    fp32 accumulation); every other op runs in real fp16.
    """

    OPS = ("conv2d", "conv_transpose2d")

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") in self.OPS and args and isinstance(args[0], torch.Tensor) and args[0].dtype == torch.float16:
            up = [a.float() if isinstance(a, torch.Tensor) else a for a in args]
            kw = {k: v.float() if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
            return func(*up, **kw).half()
        return func(*args, **kwargs)
