"""Small building blocks shared by the generator and the encoders.

Equalized learning rate (Karras et al.): parameters are stored unscaled and multiplied by
their He constant at run time, so the state dicts match the published checkpoints.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SQRT2 = math.sqrt(2.0)


def fused_leaky_relu(x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """leaky_relu(x + bias, 0.2) · √2 — StyleGAN2's activation with gain (bias per channel, dim 1)."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return F.leaky_relu(x + bias.view(shape), 0.2) * SQRT2


class EqualLinear(nn.Module):
    """Linear layer with equalized lr: y = x·(W·lr_mul/√in)ᵀ + b·lr_mul, optional fused leaky ReLU."""

    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0, lr_mul: float = 1.0,
                 activate: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)  # [out, in]
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.activate:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), self.bias * self.lr_mul)
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class PixelNorm(nn.Module):
    """x / sqrt(mean(x²) + 1e-8) over the feature dimension."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


def fir_kernel(taps: tuple[float, ...] = (1, 3, 3, 1), gain: float = 1.0) -> torch.Tensor:
    """Separable 2-D FIR kernel, normalised to sum to `gain`: [k, k]."""
    k = torch.tensor(taps, dtype=torch.float32)
    k = torch.outer(k, k)
    return k / k.sum() * gain


def fir_filter(x: torch.Tensor, kernel: torch.Tensor, pad: tuple[int, int]) -> torch.Tensor:
    """Pad (before, after) on both spatial axes, then convolve every channel with `kernel` [k, k].

    The reference upfirdn2d with up=down=1, as one depthwise convolution (a symmetric pad goes into
    the convolution itself, so nothing is copied first). oneDNN runs it near memory speed; written as
    shifted sums instead, Inductor fuses it with its neighbours into a kernel of 16 bounds-checked
    loads per value, measured 4x slower at 1024² (docs/runtimes.md, "Where the generator's time goes").
    """
    c, k = x.shape[1], kernel.shape[-1]
    weight = torch.flip(kernel, [0, 1]).to(x.dtype)[None, None].expand(c, 1, k, k)  # true convolution
    if pad[0] == pad[1]:
        return F.conv2d(x, weight, padding=pad[0], groups=c)
    return F.conv2d(F.pad(x, (pad[0], pad[1], pad[0], pad[1])), weight, groups=c)


def upsample2x(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Reference upfirdn2d(x, kernel [4, 4], up=2, pad=(2, 1)): [B, C, H, W] → [B, C, 2H, 2W].

    Zero insertion followed by the FIR is a depthwise transposed convolution with stride 2 (the
    inserted zeros are never multiplied); its padding 1 is the reference's pad (2, 1).
    """
    c, k = x.shape[1], kernel.shape[-1]
    if k != 4:
        raise ValueError("upsample2x takes the 4x4 FIR kernel")
    weight = kernel.to(x.dtype)[None, None].expand(c, 1, k, k)
    return F.conv_transpose2d(x, weight, stride=2, padding=1, groups=c)


class AdaptiveAvgPool2d(nn.Module):
    """torch's adaptive average pooling written as two small matrix products (same numbers).

    ONNX has no adaptive pooling for output sizes that do not divide the input (pSp pools 16x16 → 7x7),
    so the pooling windows are built as averaging matrices: out = P_h · x · P_wᵀ.
    """

    def __init__(self, output_size: tuple[int, int]) -> None:
        super().__init__()
        self.output_size = output_size

    @staticmethod
    def _matrix(n_in: int, n_out: int) -> torch.Tensor:
        """[n_out, n_in] averaging windows (built in numpy: a constant for tracers and exporters)."""
        p = np.zeros((n_out, n_in), np.float32)
        for i in range(n_out):
            start, end = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
            p[i, start:end] = 1.0 / (end - start)
        return torch.from_numpy(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ph = self._matrix(x.shape[-2], self.output_size[0]).to(x)
        pw = self._matrix(x.shape[-1], self.output_size[1]).to(x)
        return ph @ x @ pw.T  # [oh, H] · [B, C, H, W] · [W, ow]
