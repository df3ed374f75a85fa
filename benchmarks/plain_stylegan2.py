"""A plain, straightforward StyleGAN2 synthesis written from rosinality's state dict.

This is the *baseline* of the benchmarks and an independent cross-check of models.stylegan2:
it computes the generator the way the reference code does on a CPU without its CUDA ops —
per-sample modulated weights applied with a grouped convolution, and upfirdn2d done by
zero-insertion upsampling, padding and a convolution with the flipped FIR kernel — reading
parameters by their published names only. Slow on purpose; never used by the app.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SQRT2 = math.sqrt(2.0)


def _fir_kernel(taps=(1.0, 3.0, 3.0, 1.0)) -> torch.Tensor:
    k = torch.tensor(taps, dtype=torch.float32)
    k = k[None, :] * k[:, None]
    return k / k.sum()


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, pad: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Upsample by zero insertion, pad, FIR-filter (true convolution), as the reference's native op."""
    b, c, h, w = x.shape
    if up > 1:
        x = x.reshape(b, c, h, 1, w, 1)
        x = F.pad(x, (0, up - 1, 0, 0, 0, up - 1))
        x = x.reshape(b, c, h * up, w * up)
    x = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    k = torch.flip(kernel, [0, 1]).to(x)[None, None].repeat(c, 1, 1, 1)
    return F.conv2d(x, k, groups=c)


def fused_lrelu(x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return F.leaky_relu(x + bias.view(shape), 0.2) * SQRT2


def equal_linear(x: torch.Tensor, sd: dict, name: str, lr_mul: float = 1.0, activate: bool = False) -> torch.Tensor:
    weight, bias = sd[f"{name}.weight"], sd[f"{name}.bias"]
    scale = lr_mul / math.sqrt(weight.shape[1])
    if activate:
        return fused_lrelu(F.linear(x, weight * scale), bias * lr_mul)
    return F.linear(x, weight * scale, bias * lr_mul)


def modulated_conv(x: torch.Tensor, style: torch.Tensor, sd: dict, name: str, demodulate: bool = True,
                   upsample: bool = False) -> torch.Tensor:
    weight = sd[f"{name}.weight"]  # [1, out, in, k, k]
    _, out_ch, in_ch, k, _ = weight.shape
    b, _, h, w = x.shape
    s = equal_linear(style, sd, f"{name}.modulation")  # [B, in]
    wgt = weight * (1 / math.sqrt(in_ch * k * k)) * s.view(b, 1, in_ch, 1, 1)
    if demodulate:
        wgt = wgt * torch.rsqrt(wgt.pow(2).sum([2, 3, 4]) + 1e-8).view(b, out_ch, 1, 1, 1)
    if upsample:
        wgt = wgt.view(b, out_ch, in_ch, k, k).transpose(1, 2).reshape(b * in_ch, out_ch, k, k)
        out = F.conv_transpose2d(x.reshape(1, b * in_ch, h, w), wgt, padding=0, stride=2, groups=b)
        out = out.view(b, out_ch, out.shape[-2], out.shape[-1])
        return upfirdn2d(out, _fir_kernel() * 4, pad=(1, 1))
    out = F.conv2d(x.reshape(1, b * in_ch, h, w), wgt.view(b * out_ch, in_ch, k, k), padding=k // 2, groups=b)
    return out.view(b, out_ch, h, w)


def styled_conv(x, style, noise, sd, name, upsample=False):
    out = modulated_conv(x, style, sd, f"{name}.conv", upsample=upsample)
    out = out + sd[f"{name}.noise.weight"] * noise
    return fused_lrelu(out, sd[f"{name}.activate.bias"])


def to_rgb(x, style, skip, sd, name):
    out = modulated_conv(x, style, sd, f"{name}.conv", demodulate=False) + sd[f"{name}.bias"]
    if skip is not None:
        out = out + upfirdn2d(skip, _fir_kernel() * 4, up=2, pad=(2, 1))
    return out


def map_z(z: torch.Tensor, sd: dict, n_mlp: int = 8, lr_mlp: float = 0.01) -> torch.Tensor:
    """z [B, D] → w [B, D]: PixelNorm then n_mlp EqualLinear + fused leaky ReLU."""
    x = z * torch.rsqrt(z.pow(2).mean(1, keepdim=True) + 1e-8)
    for i in range(1, n_mlp + 1):
        x = equal_linear(x, sd, f"style.{i}", lr_mul=lr_mlp, activate=True)
    return x


@torch.no_grad()
def synthesize(w_plus: torch.Tensor, sd: dict) -> torch.Tensor:
    """W+ [B, n_latent, D] → image [B, 3, S, S] with the stored (constant) noise buffers."""
    n_levels = len([k for k in sd if k.startswith("to_rgbs.") and k.count(".") == 2 and k.endswith(".bias")])
    noise = [sd[f"noises.noise_{i}"] for i in range(2 * n_levels + 1)]
    x = sd["input.input"].repeat(w_plus.shape[0], 1, 1, 1)
    x = styled_conv(x, w_plus[:, 0], noise[0], sd, "conv1")
    skip = to_rgb(x, w_plus[:, 1], None, sd, "to_rgb1")
    for level in range(n_levels):
        i = 2 * level + 1
        x = styled_conv(x, w_plus[:, i], noise[i], sd, f"convs.{2 * level}", upsample=True)
        x = styled_conv(x, w_plus[:, i + 1], noise[i + 1], sd, f"convs.{2 * level + 1}")
        skip = to_rgb(x, w_plus[:, i + 2], skip, sd, f"to_rgbs.{level}")
    return skip


class PlainSynthesis(torch.nn.Module):
    """nn.Module wrapper so the baseline can be timed like the engine's graphs."""

    def __init__(self, state_dict: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.sd = {k: v.detach().float() for k, v in state_dict.items()}

    def forward(self, w_plus: torch.Tensor) -> torch.Tensor:
        return synthesize(w_plus, self.sd)
