"""Half precision with fp32 islands: a network converted to fp16/bf16 except the parts that need fp32.

A module marks itself with `keep_fp32(module)`; `to_precision` converts everything else. The islands
are small and cheap, placed where a value's range follows the latent rather than the activations
(per-layer figures: benchmarks/fp16_headroom.py, docs/gpu.md):
- StyleGAN2's style affines, whose outputs feed the demodulation coefficients d = 1/√(Σ W²·s²):
  Σ W²·s² grows like |s|², past fp16's 65504 for styles far from the average;
- E_m's last pooled linear (25088 → 512), whose output f feeds the folded mapping (computed in fp32).
The ToRGB skip sum is kept in fp32 by the generator itself (models/stylegan2.py).
"""
from __future__ import annotations

import torch
from torch import nn

FP32_MARK = "keep_fp32"


def keep_fp32(module: nn.Module) -> nn.Module:
    """Mark `module` to stay float32 when its network is converted by `to_precision`."""
    setattr(module, FP32_MARK, True)
    return module


def to_precision(module: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Convert `module` in place to `dtype`, leaving the marked islands in float32; returns it."""
    module.to(dtype)
    if dtype != torch.float32:
        for sub in module.modules():
            if getattr(sub, FP32_MARK, False):
                sub.float()
    return module


def fp32_islands(module: nn.Module) -> list[str]:
    """Names of the submodules that `to_precision` keeps in float32."""
    return [name for name, sub in module.named_modules() if getattr(sub, FP32_MARK, False)]
