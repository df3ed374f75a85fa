"""`python -m app generate`: one StyleGAN2 image from a stored W+ latent or from a seed."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from engine import values
from engine.runtime.weights import load_generator, load_latent
from engine.stylegan.images import to_image
from models.stylegan2 import NoiseMode, seeded_z

MAX_SEED = values.MAX_SEED  # NumPy's RandomState takes seeds 0 … 2^32 - 1


def generate(weights: Path, latent: Path | None = None, seed: int | None = None, truncation: float = 1.0,
             noise: NoiseMode | str = NoiseMode.CONST) -> np.ndarray:
    """One image, RGB uint8 [size, size, 3], from a stored W+ latent or from a seed.

    noise: a NoiseMode or its name ("const", "none", "random"; the CLI passes the name).

    seed: z = seeded_z(seed) → Generator.sample (w = G.map(z), truncated towards G.mean_latent(), repeated
    over the W+ layers). NoiseMode.RANDOM draws its noise from `seed`.
    """
    if (latent is None) == (seed is None):
        raise ValueError("give exactly one of latent and seed")
    if seed is not None:
        seed = values.SEED.check(seed, "seed")
    truncation = values.TRUNCATION.check(truncation, "truncation")
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
