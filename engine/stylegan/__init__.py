"""The paper's reenactor: E_m + M + G (StyleGAN2), identities inverted with ReStyle.

`StyleGANReenactor` is imported on first use (it needs torch); `engine.stylegan.motion` does not,
so the app can read its defaults without torch.
"""
from __future__ import annotations

__all__ = ["StyleGANReenactor"]


def __getattr__(name: str):
    if name == "StyleGANReenactor":
        from engine.stylegan.pipeline import StyleGANReenactor

        return StyleGANReenactor
    raise AttributeError(name)
