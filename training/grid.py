"""Validation grids: one row per sample, columns driver | target | output | reconstruction."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from engine.media.video_io import write_image

GAP = 2  # white pixels between images


def save_grid(path: Path, rows: list[torch.Tensor]) -> np.ndarray:
    """rows: [columns, 3, S, S] tensors in [-1, 1] → RGB uint8 grid written as PNG, and returned."""
    images = torch.stack(rows).float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8).cpu()  # [R, C, 3, S, S]
    r, c, _, s, _ = images.shape
    grid = np.full((r * (s + GAP) - GAP, c * (s + GAP) - GAP, 3), 255, np.uint8)
    for i in range(r):
        for j in range(c):
            grid[i * (s + GAP):i * (s + GAP) + s, j * (s + GAP):j * (s + GAP) + s] = images[i, j].permute(1, 2, 0).numpy()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_image(path, grid)
    return grid
