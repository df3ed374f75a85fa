"""`python -m app generate`: one StyleGAN2 image from a stored W+ latent or from a seed."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from engine.errors import MimicError
from engine.runtime.weights import load_generator, load_latent
from engine.stylegan.images import to_image
from models.stylegan2 import NoiseMode, seeded_z

MAX_SEED = 2**32 - 1  # NumPy's RandomState takes seeds 0 … 2^32 - 1


def generate(weights: Path, latent: Path | None = None, seed: int | None = None, truncation: float = 1.0,
             noise: NoiseMode | str = NoiseMode.CONST) -> np.ndarray:
    """One image, RGB uint8 [size, size, 3], from a stored W+ latent or from a seed.

    noise: a NoiseMode or its name ("const", "none", "random"; the CLI passes the name).

    seed: z = seeded_z(seed) → Generator.sample (w = G.map(z), truncated towards G.mean_latent(), repeated
    over the W+ layers). NoiseMode.RANDOM draws its noise from `seed`.
    """
    if (latent is None) == (seed is None):
        raise ValueError("give exactly one of latent and seed")
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise MimicError(f"seed {seed} is out of range; expected 0 to {MAX_SEED}")
    if not math.isfinite(truncation):
        raise MimicError(f"truncation {truncation} is not a number; expected e.g. 0.7")
    noise = NoiseMode(noise)
    g = load_generator(weights)
    cfg = g.config
    with torch.no_grad():
        if latent is not None:
            w_plus = torch.from_numpy(load_latent(latent, cfg.n_latent, cfg.style_dim))[None]
            image = g.synthesize(w_plus, noise, seed=seed)
        else:
            image, _ = g.sample(seeded_z(seed, cfg.style_dim), truncation, noise=noise, seed=seed)
    return to_image(image)
