"""Images ↔ the networks' tensors: RGB uint8 [H, W, 3] ↔ [1, 3, H, W] in [-1, 1]. The one conversion each way."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def to_tensor(image: np.ndarray, size: int) -> torch.Tensor:
    """RGB uint8 [H, W, 3] → [1, 3, size, size] in [-1, 1].

    Resized like the official code (torchvision Resize on a PIL image = PIL bilinear with antialias).
    """
    if image.shape[:2] != (size, size):
        image = np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))
    image = np.ascontiguousarray(image) if image.flags.writeable else image.copy()
    x = torch.from_numpy(image).permute(2, 0, 1).float().div(255)
    return x.sub(0.5).div(0.5).unsqueeze(0)


def to_image(x: torch.Tensor) -> np.ndarray:
    """[1, 3, H, W] in ≈[-1, 1] → RGB uint8 [H, W, 3]: clamped, scaled by 127.5, rounded to nearest
    (the official tensor2im truncates instead: at most 1 lower)."""
    y = ((x[0].detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round()
    return y.to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
