"""The paper's training objective (docs/training.md), computed at the encoders' input size (256).

    loss = 0.05·LPIPS(ŷ, x) + 0.3·LPIPS(crop ŷ, crop x) + 0·‖ŷ − x‖² + 2.0·‖crop ŷ − crop x‖²
         + 0.3·(1 − cos(ArcFace(ŷ₁), ArcFace(G(w_B))))  + 0·CosFace(E_m codes)

ŷ = G(M(w_A ‖ E_m(x))) reconstructs the driving frame x of person A; ŷ₁ = G(M(w_B ‖ E_m(x)))
puts x's motion on another person B. "crop" is the inner face region [55:243, 32:220] of a
256 image (scaled for other sizes); ‖·‖² is the mean squared error.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.encoders import ArcFace
from training.lpips import LPIPS

INNER_CROP = ((55, 243), (32, 220))  # (rows, cols) of the face region in a 256x256 image
ARCFACE_SIZE = 112


@dataclass(frozen=True)
class LossWeights:
    lpips: float = 0.05  # LPIPS-Alex on the whole image
    lpips_crop: float = 0.3  # LPIPS-Alex on the inner crop
    l2: float = 0.0  # MSE on the whole image
    l2_crop: float = 2.0  # MSE on the inner crop
    identity: float = 0.3  # ArcFace 1 − cos between the transfer output and G(w_B)
    cosface: float = 0.0  # CosFace on motion codes (the paper's "Ours-Cos" turns it on)

    @property
    def needs_lpips(self) -> bool:
        return self.lpips > 0 or self.lpips_crop > 0

    @property
    def needs_arcface(self) -> bool:
        return self.identity > 0


def inner_crop(x: torch.Tensor) -> torch.Tensor:
    """The face region [55:243, 32:220] of a 256 image, at the same relative place for other sizes."""
    s = x.shape[-1] / 256
    (r0, r1), (c0, c1) = INNER_CROP
    return x[..., round(r0 * s):round(r1 * s), round(c0 * s):round(c1 * s)]


class IdentityLoss(nn.Module):
    """Mean of 1 − cos(ArcFace(ŷ), ArcFace(y)) with y's embedding held fixed; faces average-pooled to 112."""

    def __init__(self, arcface: ArcFace) -> None:
        super().__init__()
        self.arcface = arcface.eval().requires_grad_(False)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.arcface(F.adaptive_avg_pool2d(x, (ARCFACE_SIZE, ARCFACE_SIZE)))

    def forward(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (1 - (self.embed(y_hat) * self.embed(y).detach()).sum(dim=1)).mean()

    def train(self, mode: bool = True) -> "IdentityLoss":
        return super().train(False)  # a fixed network: BatchNorm and dropout stay in inference mode


def cosface_loss(code_rec: torch.Tensor, code_cross: torch.Tensor, code_driver: torch.Tensor,
                 code_other: torch.Tensor, s: float = 5.0, m: float = 2.0) -> torch.Tensor:
    """Large-margin cosine loss on motion codes (as the paper's code): the codes of both outputs (ŷ, ŷ₁)
    should match the driver's code and not the code of an unrelated frame. Inputs [B, ...]; batch mean."""
    rec, cross, driver, other = (c.flatten(1) for c in (code_rec, code_cross, code_driver, code_other))

    def logit(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return s * (F.cosine_similarity(a, b) - m)

    p1, p2 = logit(rec, driver).exp(), logit(cross, driver).exp()
    n = logit(rec, other).exp() + logit(cross, other).exp()
    return -((p1 / (p1 + n) + 1e-8).log() + (p2 / (p2 + n) + 1e-8).log()).mean()


class TransferLoss(nn.Module):
    """The weighted sum of the terms; forward returns (loss, unweighted terms + "loss")."""

    def __init__(self, weights: LossWeights, lpips: LPIPS | None, arcface: ArcFace | None) -> None:
        super().__init__()
        if weights.needs_lpips and lpips is None:
            raise ValueError("LPIPS weights are needed for the LPIPS terms")
        if weights.needs_arcface and arcface is None:
            raise ValueError("ArcFace weights are needed for the identity term")
        self.weights = weights
        self.lpips = lpips.eval() if weights.needs_lpips else None
        self.identity = IdentityLoss(arcface) if weights.needs_arcface else None

    def reconstruction_terms(self, y_hat: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The unweighted terms that compare the reconstruction ŷ with its driving frame x."""
        w = self.weights
        y_hat, x = y_hat.float(), x.float()
        terms: dict[str, torch.Tensor] = {}
        if w.lpips > 0:
            terms["lpips"] = self.lpips(y_hat, x)
        if w.lpips_crop > 0:
            terms["lpips_crop"] = self.lpips(inner_crop(y_hat), inner_crop(x))
        if w.l2 > 0:
            terms["l2"] = F.mse_loss(y_hat, x)
        if w.l2_crop > 0:
            terms["l2_crop"] = F.mse_loss(inner_crop(y_hat), inner_crop(x))
        return terms

    def weighted(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(getattr(self.weights, name) * value for name, value in terms.items())

    def forward(self, out: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """out: x (driving frame, the reconstruction target), y_hat, y_hat1 (transfer to B), target1 (G(w_B));
        with CosFace also code (E_m(x)), code_rec (E_m(ŷ)), code_cross (E_m(ŷ₁)), code_other (E_m(x₁))."""
        w = self.weights
        terms = self.reconstruction_terms(out["y_hat"], out["x"])
        if w.identity > 0:
            terms["identity"] = self.identity(out["y_hat1"].float(), out["target1"].float())
        if w.cosface > 0:
            terms["cosface"] = cosface_loss(out["code_rec"], out["code_cross"], out["code"], out["code_other"])
        if not terms:
            raise ValueError("every loss weight is 0: nothing to train")
        loss = self.weighted(terms)
        return loss, {**{k: v.detach() for k, v in terms.items()}, "loss": loss.detach()}
