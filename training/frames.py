"""Training samples from a prepared data folder (training.cache): aligned crops + identity latents."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from engine.stylegan.images import to_tensor
from engine.media.video_io import read_image
from training.cache import frame_path, latent_path, read_manifest
from training.data import EpochOrder, Sample, other_index
from training.errors import TrainingError

SPLIT_SEED = 20240  # fixes which identities are held out for validation


def split_identities(data: Path, val_identities: int) -> tuple[list[str], list[str]]:
    """(training, validation) identities of a prepared folder; the held-out ones are a fixed random pick."""
    names = sorted({r.identity for r in read_manifest(data).values() if r.frames})
    if len(names) < val_identities + 2 or val_identities < 2:
        raise TrainingError(f"{data} has {len(names)} identities with frames; training needs at least 2 for "
                            f"training plus {max(val_identities, 2)} held out for validation (--val-identities ≥ 2)")
    held = set(np.random.default_rng(SPLIT_SEED).permutation(len(names))[:val_identities].tolist())
    return [n for i, n in enumerate(names) if i not in held], [n for i, n in enumerate(names) if i in held]


class FrameDataset:
    """Keyed samples (training.data): a frame of A, one of A's latents, a frame of B ≠ A, one of B's latents."""

    def __init__(self, data: Path, identities: list[str], input_size: int, n_latent: int, style_dim: int,
                 seed: int) -> None:
        self.data, self.input_size = Path(data), input_size
        wanted = set(identities)
        records = sorted((r for r in read_manifest(data).values() if r.identity in wanted and r.frames),
                         key=lambda r: r.clip)
        index = {name: i for i, name in enumerate(identities)}
        self.clips = [r.clip for r in records]
        self.clip_of = np.concatenate([np.full(len(r.frames), i, np.int32) for i, r in enumerate(records)])
        self.frame_no = np.concatenate([np.asarray(r.frames, np.int32) for r in records])
        self.owner = np.concatenate([np.full(len(r.frames), index[r.identity], np.int32) for r in records])
        self.latents = [self._latents(name, n_latent, style_dim) for name in identities]
        self.order = EpochOrder(len(self.frame_no), seed)

    def _latents(self, identity: str, n_latent: int, style_dim: int) -> np.ndarray:
        path = latent_path(self.data, identity)
        if not path.is_file():
            raise TrainingError(f"no identity latents for {identity} ({path}); run `python -m app train latents`")
        latents = np.load(path, mmap_mode="r")
        if latents.ndim != 3 or latents.shape[1:] != (n_latent, style_dim):
            raise TrainingError(f"{path}: latents of shape {list(latents.shape)}; this generator needs "
                                f"[k, {n_latent}, {style_dim}] (were they made with other ReStyle weights?)")
        return latents

    def __len__(self) -> int:
        return len(self.frame_no)

    def image(self, i: int) -> torch.Tensor:
        """Frame i as [3, S, S] in [-1, 1]."""
        path = frame_path(self.data, self.clips[self.clip_of[i]], int(self.frame_no[i]))
        return to_tensor(read_image(path), self.input_size)[0]

    def latent(self, i: int, rng: np.random.Generator) -> torch.Tensor:
        """One of frame i's identity latents, picked at random: [n, D]."""
        latents = self.latents[self.owner[i]]
        return torch.from_numpy(np.array(latents[rng.integers(len(latents))], np.float32))

    def __getitem__(self, key: int) -> Sample:
        i, rng = self.order(key)
        j = other_index(rng, self.owner, i)
        return {"x": self.image(i), "w_id": self.latent(i, rng), "x1": self.image(j), "w_id1": self.latent(j, rng)}
