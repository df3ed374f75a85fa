"""One forward pass of training, as a module (DistributedDataParallel wraps exactly this)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.paper import PaperModel
from models.stylegan2 import NoiseMode


class TransferStep(nn.Module):
    """Reconstruction ŷ = G(M(w_A ‖ E_m(x))), transfer ŷ₁ = G(M(w_B ‖ E_m(x))), identity target G(w_B).

    Images come back average-pooled to the input size (the losses' resolution). With `cosface`,
    E_m also encodes ŷ, ŷ₁ and x₁.
    """

    def __init__(self, model: PaperModel, noise: NoiseMode, cosface: bool) -> None:
        super().__init__()
        self.model, self.noise, self.cosface = model, noise, cosface

    def render(self, w_plus: torch.Tensor, size: int, seed: int) -> torch.Tensor:
        """G(W+) with this step's noise, pooled to size x size. [B, n, D] → [B, 3, size, size]."""
        image = self.model.decoder.synthesize(w_plus, self.noise, seed=seed)
        return image if image.shape[-1] == size else F.adaptive_avg_pool2d(image, (size, size))

    def forward(self, x: torch.Tensor, w_id: torch.Tensor, x1: torch.Tensor, w_id1: torch.Tensor,
                seed: int) -> dict[str, torch.Tensor]:
        """x, x1 [B, 3, S, S]; w_id, w_id1 [B, n, D]; seed: the step's noise seed → outputs for TransferLoss."""
        size, b = x.shape[-1], x.shape[0]
        code = self.model.encoder(x)  # [B, n, D]
        w = self.model.mapping_net(torch.cat([w_id, w_id1]), torch.cat([code, code]))  # [2B, n, D]
        y_hat, y_hat1 = self.render(w, size, seed).split(b)  # one G pass for both outputs
        with torch.no_grad():
            target1 = self.render(w_id1, size, seed + 1)
        out = {"x": x, "y_hat": y_hat, "y_hat1": y_hat1, "target1": target1, "code": code}
        if self.cosface:
            encode = self.model.encoder  # separate calls: each batch gets its own BatchNorm statistics, as in the paper
            out.update(code_rec=encode(y_hat), code_cross=encode(y_hat1), code_other=encode(x1))
        return out
