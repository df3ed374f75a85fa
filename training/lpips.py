"""LPIPS with the AlexNet backbone (Zhang et al. 2018, "v0.1 alex"), as pSp and the paper use it.

LPIPS(x, y) = Σ_l mean_hw Σ_c w_lc (x̂_l − ŷ_l)²_c, where x_l are AlexNet's ReLU outputs after
conv1..conv5 of the shifted and scaled input, x̂_l is x_l divided by its norm over channels at
each pixel, and w_l ≥ 0 are the five learned 1x1 "linear" heads. Mean over the batch.

Weights come from two files users download (read without running code):
- ImageNet AlexNet, torchvision's `alexnet-owt-7be5be79.pth` (keys `features.{0,3,6,8,10}.*`);
- the LPIPS heads, `alex.pth` of richzhang/PerceptualSimilarity `lpips/weights/v0.1/` (keys `lin{0..4}.model.1.weight`).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from models.checkpoints.errors import CheckpointError
from models.checkpoints.torch_file import read_pickled

CHANNELS = (64, 192, 384, 256, 256)  # conv1..conv5
FEATURE_CONVS = (0, 3, 6, 8, 10)  # their indices in torchvision's alexnet.features
SHIFT = (-0.030, -0.088, -0.188)  # LPIPS' ScalingLayer: inputs in [-1, 1] → ImageNet statistics
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10


class AlexFeatures(nn.Module):
    """torchvision AlexNet `features` up to the last ReLU; forward returns the 5 ReLU outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(),  # 0, 1
            nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, 1, 2), nn.ReLU(),  # 3, 4
            nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, 1, 1), nn.ReLU(),  # 6, 7
            nn.Conv2d(384, 256, 3, 1, 1), nn.ReLU(),  # 8, 9
            nn.Conv2d(256, 256, 3, 1, 1), nn.ReLU(),  # 10, 11
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i - 1 in FEATURE_CONVS:  # the ReLU right after each conv
                out.append(x)
        return out


class LPIPS(nn.Module):
    """LPIPS-Alex distance, [B, 3, H, W] × [B, 3, H, W] in [-1, 1] → scalar (batch mean). H, W ≥ 32."""

    def __init__(self) -> None:
        super().__init__()
        self.net = AlexFeatures()
        self.lin = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in CHANNELS)
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))
        self.requires_grad_(False).eval()

    def distance(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-sample LPIPS [B]."""
        fx = self.net((x - self.shift) / self.scale)
        fy = self.net((y - self.shift) / self.scale)
        total = x.new_zeros(x.shape[0])
        for a, b, lin in zip(fx, fy, self.lin):
            diff = (_unit(a) - _unit(b)).square()  # [B, C, h, w]
            total = total + lin(diff).mean(dim=(1, 2, 3))
        return total

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.distance(x, y).mean()


def _unit(x: torch.Tensor) -> torch.Tensor:
    """x divided by its norm over channels (the ε inside the root keeps the gradient finite at 0)."""
    return x / (x.square().sum(dim=1, keepdim=True) + EPS**2).sqrt()


def random_lpips(seed: int = 0) -> LPIPS:
    """LPIPS with a random AlexNet and random non-negative heads: for tests and the toy world only."""
    gen = torch.Generator().manual_seed(seed)
    lpips = LPIPS()
    with torch.no_grad():
        for conv in lpips.net.features:
            if isinstance(conv, nn.Conv2d):
                fan_in = conv.weight[0].numel()
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * (2 / fan_in) ** 0.5)
                conv.bias.copy_(torch.randn(conv.bias.shape, generator=gen) * 0.1)
        for lin in lpips.lin:
            lin.weight.copy_(torch.rand(lin.weight.shape, generator=gen) * 2 / lin.weight.shape[1])
    return lpips


def load_lpips(alexnet: Path, linear: Path) -> LPIPS:
    """LPIPS-Alex from the ImageNet AlexNet file and the LPIPS v0.1 heads file (both read safely)."""
    lpips = LPIPS()
    alex = _state(alexnet, "the ImageNet AlexNet weights (alexnet-owt-7be5be79.pth)")
    for i, c_in in zip(FEATURE_CONVS, (3, *CHANNELS[:-1])):
        conv = lpips.net.features[i]
        _assign(conv.weight, alex, f"features.{i}.weight", alexnet)
        _assign(conv.bias, alex, f"features.{i}.bias", alexnet)
    heads = _state(linear, "the LPIPS v0.1 AlexNet heads (alex.pth)")
    for i, lin in enumerate(lpips.lin):
        _assign(lin.weight, heads, f"lin{i}.model.1.weight", linear)
    return lpips


def _state(path: Path, what: str) -> dict[str, torch.Tensor]:
    content = read_pickled(Path(path))
    if isinstance(content, dict) and isinstance(content.get("state_dict"), dict):
        content = content["state_dict"]
    if not isinstance(content, dict) or not any(isinstance(v, torch.Tensor) for v in content.values()):
        raise CheckpointError(f"{Path(path).name}: expected {what}, a state dict of tensors")
    return {str(k).removeprefix("module."): v for k, v in content.items() if isinstance(v, torch.Tensor)}


def _assign(target: torch.Tensor, state: dict[str, torch.Tensor], key: str, path: Path) -> None:
    value = state.get(key)
    if value is None:
        raise CheckpointError(f"{Path(path).name}: no tensor {key}; expected "
                              + ("torchvision's ImageNet AlexNet" if key.startswith("features") else "LPIPS' alex.pth"))
    if tuple(value.shape) != tuple(target.shape):
        raise CheckpointError(f"{Path(path).name}: {key} has shape {list(value.shape)}; expected {list(target.shape)}")
    with torch.no_grad():
        target.copy_(value.float())
