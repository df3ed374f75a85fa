"""The paper's mapping network M: one linear layer on concat(identity W+, motion code)."""
from __future__ import annotations

import torch
from torch import nn


class MappingNet(nn.Module):
    """w = A · [vec(w_id) ‖ vec(m)] + b, reshaped to W+ [B, n, D]. Identity FIRST, as the paper's code."""

    def __init__(self, n_latent: int = 18, style_dim: int = 512) -> None:
        super().__init__()
        self.n_latent, self.style_dim = n_latent, style_dim
        nd = n_latent * style_dim
        self.linear_relu = nn.Sequential(nn.Linear(2 * nd, nd))  # the checkpoint's name; there is no ReLU
        # the paper initialises to small constants (weight 1e-5, bias 1e-3)
        nn.init.constant_(self.linear.weight, 1e-5)
        nn.init.constant_(self.linear.bias, 1e-3)

    @property
    def linear(self) -> nn.Linear:
        return self.linear_relu[0]

    def forward(self, w_id: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
        """w_id [B, n, D], motion [B, n, D] → [B, n, D]."""
        x = torch.cat([w_id.flatten(1), motion.flatten(1)], dim=1)
        return self.linear(x).view(-1, self.n_latent, self.style_dim)
