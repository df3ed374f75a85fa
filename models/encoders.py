"""The three IR-SE50 encoders: E_m (motion, pSp), E_i (identity, ReStyle-pSp) and ArcFace."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from models.irse import IRSEConfig, body, input_layer
from models.layers import AdaptiveAvgPool2d, EqualLinear
from models.precision import keep_fp32


class MotionEncoder(nn.Module):
    """E_m — pSp "backbone encoder using last layer into W+": image → motion code [B, n, D]."""

    def __init__(self, irse: IRSEConfig = IRSEConfig(), n_latent: int = 18, style_dim: int = 512) -> None:
        super().__init__()
        self.n_latent, self.style_dim = n_latent, style_dim
        c = irse.out_channels
        self.input_layer = input_layer(irse)
        self.body = body(irse)
        self.output_layer_2 = nn.Sequential(
            nn.BatchNorm2d(c), AdaptiveAvgPool2d((7, 7)), nn.Flatten(), keep_fp32(nn.Linear(c * 7 * 7, style_dim))
        )  # the last linear stays fp32 in half precision (models/precision.py): f feeds the folded mapping
        self.linear = EqualLinear(style_dim, style_dim * n_latent, lr_mul=1)  # affine, no activation

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """[B, in, S, S] in [-1, 1] → f [B, D] (float32), the input of the last (linear) layer."""
        *pooling, linear = self.output_layer_2
        h = self.body(self.input_layer(x))
        for layer in pooling:
            h = layer(h)
        return linear(h.to(linear.weight.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.features(x)).view(-1, self.n_latent, self.style_dim)


class GradualStyleBlock(nn.Module):
    """log2(spatial) stride-2 conv3x3 + LeakyReLU(0.01) down to 1x1, then EqualLinear: → [B, out]."""

    def __init__(self, in_ch: int, out_ch: int, spatial: int) -> None:
        super().__init__()
        self.out_ch = out_ch
        layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, 3, 2, 1), nn.LeakyReLU()]
        for _ in range(int(math.log2(spatial)) - 1):
            layers += [nn.Conv2d(out_ch, out_ch, 3, 2, 1), nn.LeakyReLU()]
        self.convs = nn.Sequential(*layers)
        self.linear = EqualLinear(out_ch, out_ch, lr_mul=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.convs(x).view(-1, self.out_ch))


class ReStyleEncoder(nn.Module):
    """E_i — ReStyle-pSp BackboneEncoder: [image ‖ current reconstruction] (6 ch) → W+ residual [B, n, D]."""

    def __init__(self, irse: IRSEConfig = IRSEConfig(in_channels=6), n_latent: int = 18, style_dim: int = 512,
                 input_size: int = 256) -> None:
        super().__init__()
        self.input_layer = input_layer(irse)
        self.body = body(irse)
        spatial = input_size // 16  # the body's output resolution
        self.styles = nn.ModuleList(GradualStyleBlock(irse.out_channels, style_dim, spatial) for _ in range(n_latent))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body(self.input_layer(x))
        return torch.stack([style(x) for style in self.styles], dim=1)


class ArcFace(nn.Module):
    """ArcFace IR-SE50 (InsightFace_Pytorch `Backbone(50, 0.6, 'ir_se')`): [B, 3, 112, 112] in [-1, 1] → unit [B, 512]."""

    def __init__(self, irse: IRSEConfig = IRSEConfig(), embedding: int = 512) -> None:
        super().__init__()
        c = irse.out_channels
        self.input_layer = input_layer(irse)
        self.body = body(irse)
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(c), nn.Dropout(0.6), nn.Flatten(), nn.Linear(c * 7 * 7, embedding), nn.BatchNorm1d(embedding)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.output_layer(self.body(self.input_layer(x))), dim=1)
