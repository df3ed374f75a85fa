"""StyleGAN2 generator (Karras et al. 2020), state-dict compatible with rosinality/stylegan2-pytorch.

Plain PyTorch (no custom CUDA ops), export-friendly (static shapes, no Python-side data
dependence), and formulated for speed:

- modulation is applied to the activations, not the weights (x·s → conv with the shared
  weight → ·d, with the demodulation d computed from (W²)·(s²)): exact, and the convolution
  weights stay constant, so compilers can pre-pack them;
- FIR filters are depthwise convolutions, the upsampling ones transposed (no zeros inserted).

Half precision (fp16 on CUDA, bf16): styles and demodulation are computed in fp32 (the style affines
are fp32 islands, models/precision.py), each style vector is divided by its largest |entry| before it
scales the activations (the factor comes back exactly, through demodulation or in fp32, while x·s and
conv(x·s) stay as small as x), and the ToRGB outputs and skip sum are fp32. Measured at the paper's
1024 config in benchmarks/fp16_headroom.py (docs/gpu.md).
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.layers import EqualLinear, PixelNorm, fir_filter, fir_kernel, fused_leaky_relu, upsample2x
from models.precision import keep_fp32


def seeded_z(seed: int, style_dim: int) -> torch.Tensor:
    """z ~ N(0, I) [1, style_dim] from a seed (NumPy's RandomState: the seeds the official scripts use)."""
    return torch.from_numpy(np.random.RandomState(seed).randn(1, style_dim)).float()


class NoiseMode(enum.Enum):
    CONST = "const"  # the checkpoint's stored noise buffers (reference: randomize_noise=False)
    RANDOM = "random"  # fresh Gaussian noise, reproducible with a seed
    NONE = "none"  # no noise


@dataclass(frozen=True)
class GeneratorConfig:
    size: int = 1024  # output resolution (a power of two, 8 … 1024)
    style_dim: int = 512  # width of z, w and every style vector
    n_mlp: int = 8  # layers of the mapping network
    channel_multiplier: int = 2  # config-f uses 2
    lr_mlp: float = 0.01  # learning-rate multiplier of the mapping network
    channel_max: int = 512  # cap on every layer's width (512 in all published models; tiny test configs use less)
    conv_clamp: float | None = None  # clamp activations to ±conv_clamp (NVIDIA-trained weights: 256)

    @property
    def log_size(self) -> int:
        return int(math.log2(self.size))

    @property
    def n_latent(self) -> int:
        return 2 * self.log_size - 2

    def channels(self, resolution: int) -> int:
        cm = self.channel_multiplier
        widths = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * cm, 128: 128 * cm, 256: 64 * cm, 512: 32 * cm, 1024: 16 * cm}
        return min(widths[resolution], self.channel_max)


class ModulatedConv2d(nn.Module):
    """Style-modulated convolution: y = conv(x·s, W/√fan_in) · d, d = 1/√(Σ (W/√fan_in)²·s² + ε)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, style_dim: int, demodulate: bool = True,
                 upsample: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, out_ch, in_ch, kernel_size, kernel_size))
        self.modulation = keep_fp32(EqualLinear(style_dim, in_ch, bias_init=1.0))  # styles in fp32
        self.scale = 1 / math.sqrt(in_ch * kernel_size**2)
        self.demodulate = demodulate
        self.upsample = upsample
        if upsample:
            if kernel_size != 3:
                raise ValueError("upsampling convolutions are 3x3")
            self.blur = Blur(gain=4.0)  # FIR after the transposed conv, padded (1, 1)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """x [B, in, H, W], w [B, D] → [B, out, H', W'] (H' = 2H when upsampling): x's dtype with
        demodulation, float32 without (ToRGB).

        s is first divided by its peak p = max|s| (per sample), so that x·s and conv(x·s) stay within x's
        range (fp16 headroom, docs/gpu.md); the peak comes back exactly: through d (which grows by p)
        with demodulation, else as a float32 factor after the convolution.
        """
        style = self.modulation(w.to(self.modulation.weight.dtype)).float()  # [B, in], fp32
        peak = style.abs().amax(1, keepdim=True).clamp_min(1e-8)  # [B, 1]
        style = style / peak
        weight = self.weight[0] * self.scale  # [out, in, k, k]
        x = x * style.to(x.dtype)[:, :, None, None]
        if self.upsample:
            x = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)  # [B, out, 2H+1, 2W+1]
            x = self.blur(x, pad=(1, 1))  # [B, out, 2H, 2W]
        else:
            x = F.conv2d(x, weight, padding=weight.shape[-1] // 2)
        if not self.demodulate:
            return x.float() * peak[:, :, None, None]
        demod = torch.rsqrt(style.square() @ weight.float().square().sum((2, 3)).T + 1e-8 / peak.square())  # [B, out]
        return x * demod.to(x.dtype)[:, :, None, None]


class Blur(nn.Module):
    """FIR low-pass [1,3,3,1]⊗[1,3,3,1] (buffer `kernel`, as in the checkpoints)."""

    def __init__(self, gain: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("kernel", fir_kernel(gain=gain))

    def forward(self, x: torch.Tensor, pad: tuple[int, int]) -> torch.Tensor:
        return fir_filter(x, self.kernel, pad)


class Upsample(nn.Module):
    """2x upsampling with the FIR kernel (used on the RGB skip path)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("kernel", fir_kernel(gain=4.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upsample2x(x, self.kernel)


class NoiseInjection(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        return x if noise is None else x + self.weight * noise


class FusedBiasActivation(nn.Module):
    """Per-channel bias, leaky ReLU(0.2) with gain √2, optional clamp."""

    def __init__(self, channels: int, clamp: float | None) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))
        self.clamp = clamp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = fused_leaky_relu(x, self.bias)
        return x if self.clamp is None else x.clamp(-self.clamp, self.clamp)


class StyledConv(nn.Module):
    """Modulated conv → noise → bias + activation."""

    def __init__(self, in_ch: int, out_ch: int, style_dim: int, upsample: bool = False, clamp: float | None = None) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, out_ch, 3, style_dim, upsample=upsample)
        self.noise = NoiseInjection()
        self.activate = FusedBiasActivation(out_ch, clamp)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        return self.activate(self.noise(self.conv(x, w), noise))


class ToRGB(nn.Module):
    """1x1 modulated conv (no demodulation) to RGB, added to the upsampled skip image."""

    def __init__(self, in_ch: int, style_dim: int, upsample: bool = True, clamp: float | None = None) -> None:
        super().__init__()
        if upsample:
            self.upsample = Upsample()
        self.conv = ModulatedConv2d(in_ch, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))
        self.clamp = clamp

    def forward(self, x: torch.Tensor, w: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        """→ the RGB image so far, always float32 (the skip sum accumulates every level's colours)."""
        rgb = self.conv(x, w).float() + self.bias.float()
        if self.clamp is not None:
            rgb = rgb.clamp(-self.clamp, self.clamp)
        return rgb if skip is None else rgb + self.upsample(skip)


class ConstantInput(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, 4, 4))

    def forward(self, batch: int) -> torch.Tensor:
        return self.input.expand(batch, -1, -1, -1)


class Generator(nn.Module):
    """Mapping network z → w and synthesis network W+ → image."""

    def __init__(self, config: GeneratorConfig = GeneratorConfig()) -> None:
        super().__init__()
        self.config = config
        d, clamp = config.style_dim, config.conv_clamp
        self.style = nn.Sequential(
            PixelNorm(), *[EqualLinear(d, d, lr_mul=config.lr_mlp, activate=True) for _ in range(config.n_mlp)]
        )
        c4 = config.channels(4)
        self.input = ConstantInput(c4)
        self.conv1 = StyledConv(c4, c4, d, clamp=clamp)
        self.to_rgb1 = ToRGB(c4, d, upsample=False, clamp=clamp)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        n_noise = 2 * (config.log_size - 2) + 1
        for i in range(n_noise):
            res = 2 ** ((i + 5) // 2)
            self.noises.register_buffer(f"noise_{i}", torch.randn(1, 1, res, res))
        in_ch = c4
        for log_res in range(3, config.log_size + 1):
            out_ch = config.channels(2**log_res)
            self.convs.append(StyledConv(in_ch, out_ch, d, upsample=True, clamp=clamp))
            self.convs.append(StyledConv(out_ch, out_ch, d, clamp=clamp))
            self.to_rgbs.append(ToRGB(out_ch, d, clamp=clamp))
            in_ch = out_ch
        self.n_noise = n_noise

    def map(self, z: torch.Tensor) -> torch.Tensor:
        """z [B, D] → w [B, D]."""
        return self.style(z)

    @torch.no_grad()
    def mean_latent(self, n: int = 4096, seed: int = 0) -> torch.Tensor:
        """Mean of w over n samples of z: [1, D] (the truncation centre)."""
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.config.style_dim, generator=gen).to(self.input.input.device)
        return self.map(z).mean(0, keepdim=True)

    def _noise(self, mode: NoiseMode, seed: int | None) -> list[torch.Tensor | None]:
        buffers = [getattr(self.noises, f"noise_{i}") for i in range(self.n_noise)]
        if mode is NoiseMode.CONST:
            return buffers
        if mode is NoiseMode.NONE:
            return [None] * self.n_noise
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        return [torch.randn(b.shape, generator=gen).to(b) for b in buffers]

    def synthesize(self, w_plus: torch.Tensor, noise: NoiseMode = NoiseMode.CONST, seed: int | None = None) -> torch.Tensor:
        """W+ [B, n_latent, D] → image [B, 3, size, size] (≈ [-1, 1])."""
        n_latent = self.config.n_latent
        if w_plus.ndim != 3 or w_plus.shape[1] != n_latent or w_plus.shape[2] != self.config.style_dim:
            raise ValueError(f"expected W+ of shape [B, {n_latent}, {self.config.style_dim}], got {tuple(w_plus.shape)}")
        noises = self._noise(noise, seed)
        x = self.input(w_plus.shape[0])
        x = self.conv1(x, w_plus[:, 0], noises[0])
        skip = self.to_rgb1(x, w_plus[:, 1], None)
        for level, to_rgb in enumerate(self.to_rgbs):
            i = 2 * level + 1
            x = self.convs[2 * level](x, w_plus[:, i], noises[i])
            x = self.convs[2 * level + 1](x, w_plus[:, i + 1], noises[i + 1])
            skip = to_rgb(x, w_plus[:, i + 2], skip)
        return skip

    def forward(self, w_plus: torch.Tensor) -> torch.Tensor:
        """W+ → image with the stored noise (the export path)."""
        return self.synthesize(w_plus, NoiseMode.CONST)

    def w_plus(self, z: torch.Tensor, truncation: float = 1.0, truncation_latent: torch.Tensor | None = None
               ) -> torch.Tensor:
        """z [B, D] → W+ [B, n_latent, D]: w = map(z), truncated towards `truncation_latent` (default:
        mean_latent()) as w ← centre + truncation·(w − centre), repeated over the layers."""
        w = self.map(z.to(self.input.input.device))
        if truncation != 1.0:
            centre = self.mean_latent() if truncation_latent is None else truncation_latent
            w = centre + truncation * (w - centre)
        return w.unsqueeze(1).repeat(1, self.config.n_latent, 1)

    def sample(self, z: torch.Tensor, truncation: float = 1.0, truncation_latent: torch.Tensor | None = None,
               noise: NoiseMode = NoiseMode.CONST, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """z [B, D] → (image, W+), through w_plus (the one z → W+ sampler)."""
        w_plus = self.w_plus(z, truncation, truncation_latent)
        return self.synthesize(w_plus, noise, seed), w_plus
