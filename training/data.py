"""What the trainer reads: samples addressed by a *key*, batches addressed by the step.

A sample is the paper's training tuple (docs/training.md):
    x      [3, S, S]  a driving frame of person A, in [-1, 1] (also the reconstruction target)
    w_id   [n, D]     one of A's precomputed identity latents
    x1     [3, S, S]  a frame of another person B (only the CosFace term looks at it)
    w_id1  [n, D]     one of B's identity latents (the cross-identity transfer renders B)

Determinism by construction: sample `key` is the (key mod N)-th frame of the epoch-`key // N`
permutation, and every random choice inside it comes from a generator seeded with (seed, key).
Step s trains on keys [s·B, (s+1)·B), of which rank r of W takes the r-th contiguous slice:
any number of processes sees the same global batches, and resuming at step s needs no state.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np
import torch

Sample = dict[str, torch.Tensor]  # x, w_id, x1, w_id1


class KeyedDataset(Protocol):
    """A map-style dataset whose items are pure functions of the key."""

    def __len__(self) -> int:
        """Distinct frames (one epoch)."""
        ...

    def __getitem__(self, key: int) -> Sample: ...


class EpochOrder:
    """key → (frame index, generator for the sample's own random choices)."""

    def __init__(self, n: int, seed: int) -> None:
        if n < 1:
            raise ValueError("an empty dataset has no order")
        self.n, self.seed = n, seed
        self._epoch, self._perm = -1, np.empty(0, np.int64)

    def __call__(self, key: int) -> tuple[int, np.random.Generator]:
        epoch, position = divmod(int(key), self.n)
        if epoch != self._epoch:
            self._epoch, self._perm = epoch, np.random.default_rng([self.seed, epoch]).permutation(self.n)
        return int(self._perm[position]), np.random.default_rng([self.seed, 1 << 32, int(key)])


class StepSampler(torch.utils.data.Sampler[list[int]]):
    """Batch sampler: for each step in [start, end) this rank's slice of the step's global batch of keys."""

    def __init__(self, batch_size: int, start: int, end: int, rank: int = 0, world: int = 1) -> None:
        if batch_size % world:
            raise ValueError(f"the batch of {batch_size} does not split evenly over {world} processes")
        self.batch_size, self.start, self.end, self.rank, self.world = batch_size, start, end, rank, world

    @property
    def local_batch(self) -> int:
        return self.batch_size // self.world

    def __iter__(self) -> Iterator[list[int]]:
        b = self.local_batch
        for step in range(self.start, self.end):
            first = step * self.batch_size + self.rank * b
            yield list(range(first, first + b))

    def __len__(self) -> int:
        return max(self.end - self.start, 0)


def other_index(rng: np.random.Generator, owner: np.ndarray, index: int) -> int:
    """A random frame index whose owner (identity) differs from `index`'s; needs ≥ 2 owners."""
    while True:
        j = int(rng.integers(len(owner)))
        if owner[j] != owner[index]:
            return j
