"""Exact algebraic folding of the per-frame mapping (README "The networks").

M is one linear map of concat(vec(w_id), vec(m)):  w = A_id·w_id + A_m·m + b.
E_m ends in an affine EqualLinear with no activation:  m = W_e·f + b_e, f ∈ R^D.
So per frame  w = K·f + c(w_id)  with  K = A_m·W_e  ([n·D, D]) and
c(w_id) = A_id·w_id + A_m·b_e + b  (once per target).  Per frame the mapping costs
n·D·D MACs (4.7 M at the paper size) instead of n·D·2n·D (170 M).
"""
from __future__ import annotations

import torch
from torch import nn


def affine_of(layer: nn.Module, in_features: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(W, b) in float64 with layer(x) == x @ W.T + b, read off by probing (exact for any affine layer).

    Probing instead of reading `.weight` keeps equalized-lr scales and lr multipliers in, whatever the layer.
    """
    probe = torch.cat([torch.zeros(1, in_features), torch.eye(in_features)]).double()
    weight = next(layer.parameters())
    layer64 = layer.to(torch.float64)
    try:
        with torch.no_grad():
            out = layer64(probe.to(weight.device))  # [1 + in, out]
    finally:
        layer.to(torch.float32)
    bias = out[0]
    return (out[1:] - bias).T.contiguous(), bias


class FoldedMapping(nn.Module):
    """Per-frame mapping f [B, D] → W+ [B, n, D], with the identity part precomputed."""

    def __init__(self, motion_linear: nn.Module, mapping_linear: nn.Linear, n_latent: int, style_dim: int) -> None:
        super().__init__()
        self.n_latent, self.style_dim = n_latent, style_dim
        nd = n_latent * style_dim
        if tuple(mapping_linear.weight.shape) != (nd, 2 * nd):
            raise ValueError(f"mapping weight {tuple(mapping_linear.weight.shape)} does not fit n={n_latent}, D={style_dim}")
        w_e, b_e = affine_of(motion_linear, style_dim)  # [nD, D], [nD]
        a = mapping_linear.weight.detach().double()  # [nD, 2nD]
        a_id, a_m = a[:, :nd], a[:, nd:]  # identity FIRST in the concat
        b = mapping_linear.bias.detach().double()
        self.register_buffer("fold_weight", (a_m @ w_e).float())  # K [nD, D]
        self.register_buffer("motion_bias", (a_m @ b_e + b).float())  # [nD]
        self.register_buffer("identity_weight", a_id.float().contiguous())  # A_id [nD, nD]

    @torch.no_grad()
    def identity_constant(self, w_id: torch.Tensor) -> torch.Tensor:
        """c = A_id·vec(w_id) + A_m·b_e + b: [B, n, D] → [B, nD], once per target (computed in float64)."""
        flat = w_id.reshape(w_id.shape[0], -1).double()
        return (flat @ self.identity_weight.double().T + self.motion_bias.double()).float()

    def forward(self, features: torch.Tensor, identity_constant: torch.Tensor) -> torch.Tensor:
        """features [B, D], identity_constant [B, nD] → W+ [B, n, D]."""
        w = features @ self.fold_weight.T + identity_constant
        return w.view(-1, self.n_latent, self.style_dim)
