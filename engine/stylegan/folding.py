"""Exact algebraic folding of the per-frame mapping (docs/paper-model.md, "The networks"; docs/runtimes.md).

M is one linear map of concat(vec(w_id), vec(m)):  w = A_id·w_id + A_m·m + b.
E_m ends in an affine EqualLinear with no activation:  m = W_e·f + b_e, f ∈ R^D.
So per frame  w = K·f + c(w_id)  with  K = A_m·W_e  ([n·D, D]) and
c(w_id) = A_id·w_id + A_m·b_e + b  (once per target).  Per frame the mapping costs
n·D·D MACs (4.7 M at the paper size) instead of n·D·2n·D (170 M).

The fold itself (a float64 [nD, nD] x [nD, D] product: seconds at the paper size) depends only on the
pack's weights, so its result (K and A_m·b_e + b) is kept in the cache dir as a safetensors file
keyed by those weights and this code (docs/runtimes.md, "Runtimes, devices and precision").
"""
from __future__ import annotations

import hashlib
import inspect
import logging
import sys
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from engine.runtime.graph_cache import architecture_digest, cached_artifact, weights_digest

log = logging.getLogger(__name__)

FOLD_TENSORS = ("fold_weight", "motion_bias")  # what a cache entry holds


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


def fold(motion_linear: nn.Module, mapping_linear: nn.Linear, nd: int, style_dim: int) -> dict[str, torch.Tensor]:
    """K = A_m·W_e [nD, D] and A_m·b_e + b [nD], computed in float64, stored as float32."""
    w_e, b_e = affine_of(motion_linear, style_dim)  # [nD, D], [nD]
    a_m = mapping_linear.weight.detach()[:, nd:].double()  # identity FIRST in the concat
    b = mapping_linear.bias.detach().double()
    return {"fold_weight": (a_m @ w_e).float().cpu().contiguous(), "motion_bias": (a_m @ b_e + b).float().cpu().contiguous()}


def fold_key(motion_linear: nn.Module, mapping_linear: nn.Linear, n_latent: int, style_dim: int) -> str:
    """A digest of everything the fold depends on: E_m's last layer (weights and code), A_m and b (not A_id,
    half of M's bytes, which the fold never reads), the sizes and this module's code."""
    nd = n_latent * style_dim
    h = hashlib.sha256(f"{n_latent}x{style_dim}|{weights_digest(motion_linear)}|{architecture_digest(motion_linear)}|"
                       f"{inspect.getsource(sys.modules[__name__])}".encode())
    for t in (mapping_linear.weight.detach()[:, nd:], mapping_linear.bias.detach()):
        t = t.float().cpu().contiguous()
        h.update(f"{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().data)
    return h.hexdigest()[:24]


def cached_fold(motion_linear: nn.Module, mapping_linear: nn.Linear, n_latent: int, style_dim: int,
                cache: Path, announce: Callable[[bool], None] | None = None) -> dict[str, torch.Tensor]:
    """fold()'s result from `cache` (a folder), computed and stored there first when missing or invalid.
    `announce(building)`: told before the load (False) or the fold (True)."""
    from safetensors.torch import load, save_file  # no pickle: tensors only

    nd = n_latent * style_dim
    expected = {"fold_weight": (nd, style_dim), "motion_bias": (nd,)}

    def build(path: Path) -> None:
        save_file(fold(motion_linear, mapping_linear, nd, style_dim), str(path))

    def read(path: Path) -> dict[str, torch.Tensor]:
        tensors = load(path.read_bytes())  # read, not memory-mapped: the file may change while we run
        if set(tensors) != set(FOLD_TENSORS):
            raise ValueError(f"holds {sorted(tensors)}, expected {list(FOLD_TENSORS)}")
        for name, shape in expected.items():
            t = tensors[name]
            if t.dtype != torch.float32 or tuple(t.shape) != shape or not bool(torch.isfinite(t).all()):
                raise ValueError(f"{name} is {t.dtype} {tuple(t.shape)}, expected finite float32 {shape}")
        return tensors

    key = fold_key(motion_linear, mapping_linear, n_latent, style_dim)
    return cached_artifact(cache / f"fold-{n_latent}x{style_dim}-{key}.safetensors", build, read, "folded mapping",
                           announce)


class FoldedMapping(nn.Module):
    """Per-frame mapping f [B, D] → W+ [B, n, D], with the identity part precomputed.

    `cache`: a folder where the fold's result is kept between starts (None: computed every time);
    `announce(building)`: told whether it is loaded from there (False) or folded (True)."""

    def __init__(self, motion_linear: nn.Module, mapping_linear: nn.Linear, n_latent: int, style_dim: int,
                 cache: Path | None = None, announce: Callable[[bool], None] | None = None) -> None:
        super().__init__()
        self.n_latent, self.style_dim = n_latent, style_dim
        nd = n_latent * style_dim
        if tuple(mapping_linear.weight.shape) != (nd, 2 * nd):
            raise ValueError(f"mapping weight {tuple(mapping_linear.weight.shape)} does not fit n={n_latent}, D={style_dim}")
        folded = None
        if cache is not None:
            try:
                folded = cached_fold(motion_linear, mapping_linear, n_latent, style_dim, cache, announce)
            except OSError as exc:  # an unwritable cache dir costs the fold on every start, nothing else
                log.warning("folded mapping: cannot use the cache in %s (%s); folding without it", cache, exc)
        if folded is None:
            folded = fold(motion_linear, mapping_linear, nd, style_dim)
        device = mapping_linear.weight.device
        self.register_buffer("fold_weight", folded["fold_weight"].to(device))  # K [nD, D]
        self.register_buffer("motion_bias", folded["motion_bias"].to(device))  # [nD]
        self.register_buffer("identity_weight", mapping_linear.weight.detach()[:, :nd].float().contiguous())  # A_id [nD, nD]

    @torch.no_grad()
    def identity_constant(self, w_id: torch.Tensor) -> torch.Tensor:
        """c = A_id·vec(w_id) + A_m·b_e + b: [B, n, D] → [B, nD], once per target (computed in float64)."""
        flat = w_id.reshape(w_id.shape[0], -1).double()
        return (flat @ self.identity_weight.double().T + self.motion_bias.double()).float()

    def forward(self, features: torch.Tensor, identity_constant: torch.Tensor) -> torch.Tensor:
        """features [B, D], identity_constant [B, nD] → W+ [B, n, D]."""
        w = features @ self.fold_weight.T + identity_constant
        return w.view(-1, self.n_latent, self.style_dim)
