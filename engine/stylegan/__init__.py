"""The paper's reenactor: E_m + M + G (StyleGAN2), identities inverted with ReStyle."""
from engine.stylegan.reenactor import StyleGANReenactor

__all__ = ["StyleGANReenactor"]
