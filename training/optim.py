"""Ranger, the paper's optimiser: RAdam on centralised gradients, wrapped in Lookahead.

Ranger (Wright 2019, as shipped with pSp and the paper's code) =
- gradient centralisation (Yong et al. 2020): every gradient with more than one dimension
  (conv and linear weights) has its mean over all but the first axis removed;
- RAdam (Liu et al. 2020; `torch.optim.RAdam` computes exactly Ranger's rectified step,
  with the unrectified momentum step while the variance estimate is unreliable, ρ_t ≤ 5);
- Lookahead (Zhang et al. 2019): every k steps the slow weights move α of the way to the
  fast ones and the fast weights restart from there.
Defaults are Ranger's: β = (0.95, 0.999), ε = 1e-5, α = 0.5, k = 6.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


class Lookahead:
    """Lookahead around any torch optimiser; its state (fast and slow) round-trips through state_dict()."""

    def __init__(self, inner: torch.optim.Optimizer, alpha: float = 0.5, k: int = 6) -> None:
        if not 0.0 <= alpha <= 1.0 or k < 1:
            raise ValueError(f"Lookahead needs 0 ≤ alpha ≤ 1 and k ≥ 1, got alpha={alpha}, k={k}")
        self.inner, self.alpha, self.k = inner, alpha, k
        self.steps = 0
        self.slow = [p.detach().clone() for p in self._params()]

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.inner.param_groups

    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.inner.param_groups for p in group["params"]]

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.inner.zero_grad(set_to_none=set_to_none)

    @torch.no_grad()
    def step(self) -> None:
        self.inner.step()
        self.steps += 1
        if self.steps % self.k == 0:
            for p, slow in zip(self._params(), self.slow):
                slow.add_(p - slow, alpha=self.alpha)
                p.copy_(slow)

    def state_dict(self) -> dict[str, Any]:
        return {"inner": self.inner.state_dict(), "steps": self.steps, "slow": [s.clone() for s in self.slow]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["slow"]) != len(self.slow):
            raise ValueError(f"optimiser state holds {len(state['slow'])} parameters; this model has {len(self.slow)}")
        self.inner.load_state_dict(state["inner"])
        self.steps = int(state["steps"])
        for mine, saved in zip(self.slow, state["slow"]):
            mine.copy_(saved)


def centralize_gradients(params: Iterable[torch.Tensor]) -> None:
    """g ← g − mean(g over all axes but the first), for every gradient with more than one axis."""
    for p in params:
        if p.grad is not None and p.grad.ndim > 1:
            p.grad.sub_(p.grad.mean(dim=tuple(range(1, p.grad.ndim)), keepdim=True))


class Ranger(Lookahead):
    """Lookahead(RAdam) with gradient centralisation before every RAdam step."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float = 1e-4, betas: tuple[float, float] = (0.95, 0.999),
                 eps: float = 1e-5, alpha: float = 0.5, k: int = 6) -> None:
        super().__init__(torch.optim.RAdam(list(params), lr=lr, betas=betas, eps=eps), alpha=alpha, k=k)

    @torch.no_grad()
    def step(self) -> None:
        centralize_gradients(self._params())
        super().step()
