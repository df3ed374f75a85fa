"""IR-SE ResNet body (InsightFace / pSp `bottleneck_IR_SE`), shared by E_m, E_i and ArcFace."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class IRSEConfig:
    units: tuple[int, ...] = (3, 4, 14, 3)  # bottleneck units per stage (IR-SE50)
    channels: tuple[int, ...] = (64, 128, 256, 512)  # width of each stage; the input layer outputs channels[0]
    in_channels: int = 3  # 3 (an image) or 6 (image ‖ current reconstruction, ReStyle)

    @property
    def out_channels(self) -> int:
        return self.channels[-1]


class SEModule(nn.Module):
    """Squeeze-and-excitation: x · σ(fc2(relu(fc1(avgpool(x))))), 1x1 convs without bias."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))


class BottleneckIRSE(nn.Module):
    """BN → conv3x3 → PReLU → conv3x3(stride) → BN → SE, plus a shortcut (subsample or 1x1 conv + BN)."""

    def __init__(self, in_ch: int, depth: int, stride: int) -> None:
        super().__init__()
        if in_ch == depth:
            self.shortcut_layer: nn.Module = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(in_ch, depth, 1, stride, bias=False), nn.BatchNorm2d(depth))
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_ch),
            nn.Conv2d(in_ch, depth, 3, 1, 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            nn.BatchNorm2d(depth),
            SEModule(depth, 16),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


def input_layer(config: IRSEConfig) -> nn.Sequential:
    """conv3x3 (no bias) → BN → PReLU: [B, in, S, S] → [B, channels[0], S, S]."""
    c = config.channels[0]
    return nn.Sequential(nn.Conv2d(config.in_channels, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.PReLU(c))


def body(config: IRSEConfig) -> nn.Sequential:
    """The stages; the first unit of each halves the resolution: [B, c0, S, S] → [B, c_last, S/16, S/16]."""
    units = []
    in_ch = config.channels[0]
    for depth, n in zip(config.channels, config.units):
        units.append(BottleneckIRSE(in_ch, depth, 2))
        units += [BottleneckIRSE(depth, depth, 1) for _ in range(n - 1)]
        in_ch = depth
    return nn.Sequential(*units)
