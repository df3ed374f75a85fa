"""Identity W+ codes for the paper's reenactor: inverted images (cached), latent files, random identities."""
from __future__ import annotations

import hashlib
import logging
import threading
from typing import TYPE_CHECKING

import numpy as np
import torch

from engine.errors import Cancelled, MimicError
from engine.reenactor import ProgressFn, TargetSpec
from engine.runtime.runtimes import cache_dir
from engine.stylegan.images import to_image, to_tensor
from models.stylegan2 import NoiseMode, seeded_z

if TYPE_CHECKING:
    from engine.face.align import AlignedFace

log = logging.getLogger(__name__)


class IdentityEncoder:
    """Turns a TargetSpec into an identity W+ [n, D] (float32 numpy)."""

    def __init__(self, inverter: torch.nn.Module, weights_id: str, n_iters: int, input_size: int, device: str = "cpu") -> None:
        self.inverter = inverter  # models.paper.ReStyleInverter (E_i + G + latent_avg)
        self.weights_id = weights_id  # content hash of the weights: part of the cache key
        self.n_iters = n_iters
        self.input_size = input_size
        self.device = device

    def encode(self, target: TargetSpec, progress: ProgressFn | None = None,
               cancel: threading.Event | None = None) -> np.ndarray:
        """The identity of a latent or random target (image targets: `invert` their aligned crop)."""
        if target.kind == "latent":
            from engine.runtime.weights import load_latent

            return load_latent(target.path)
        if target.kind == "random":
            return self.invert(self.random_face(target.seed), progress, cancel)
        raise MimicError("target image missing")

    @torch.no_grad()
    def random_face(self, seed: int) -> np.ndarray:
        """As the paper: z ~ N(0, I) → G's mapping → W repeated n times → rendered (random noise)."""
        g = self.inverter.decoder
        image, _ = g.sample(seeded_z(seed, g.config.style_dim), noise=NoiseMode.RANDOM, seed=seed)
        return to_image(image)

    def invert(self, face: np.ndarray, progress: ProgressFn | None = None, cancel: threading.Event | None = None) -> np.ndarray:
        """ReStyle inversion of an aligned face, cached on disk by image content + weights."""
        x = to_tensor(face, self.input_size)
        key = hashlib.sha256(
            x.numpy().tobytes() + f"|{self.weights_id}|{self.n_iters}".encode()
        ).hexdigest()[:24]
        path = cache_dir() / "identities" / f"{key}.npy"
        if path.exists():
            log.info("identity from cache %s", path.name)
            if progress:
                progress(1.0, "identity from cache")
            return np.load(path, allow_pickle=False)

        def step(i: int, n: int) -> None:
            if cancel is not None and cancel.is_set():
                raise Cancelled("inversion cancelled")
            if progress:
                progress(i / n, f"inverting target: step {i}/{n}")

        step(0, self.n_iters)
        with torch.no_grad():
            w = self.inverter.invert(x.to(self.device), n_iters=self.n_iters, progress=step)
        latent = w[0].float().cpu().numpy()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, latent)
        except OSError as exc:  # a full or read-only cache is not fatal
            log.warning("could not cache identity: %s", exc)
        if progress:
            progress(1.0, "target ready")
        return latent


def align_target(image: np.ndarray) -> "AlignedFace":
    """FFHQ-align a portrait at 1024 (the quality path), as the official code does for targets; with
    dlib's landmarks when requirements-ffhq.txt is installed (the ones the official code uses)."""
    from engine.face.align import align_face

    aligned = align_face(image, size=1024, ffhq_landmarks=True)
    log.info("target aligned with %s", aligned.source)
    return aligned

