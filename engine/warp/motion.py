"""Pose and expression transfer between meshes, relative to a neutral frame of the driver.

With X_n the driver's neutral mesh and X_c its current mesh (both [N, 2], image pixels):
  (s, R, t)  = similarity fit X_c ≈ s·R·X_n + t over the rigid points (pose change)
  E          = (Rᵀ(X_c − t))/s − X_n              (expression, in the neutral pose)
The target mesh Y is brought into the driver's neutral frame by the similarity T with
T(X_n) ≈ Y, and animated there:  Y' = T( s·R·(T⁻¹(Y) + E) + t ).
So the target keeps its own face shape, gets the driver's expression (scaled to its size
by T) and the driver's change of head pose. Everything is 2-D: in-plane rotation, scale and
shift are the rigid pose; turning and nodding show up in E as the 2-D shifts they cause,
which keeps the warp free of the folds a 3-D rotation would project.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Points that move little with expression (forehead, nose bridge, temples, cheekbones): the pose fit uses them.
RIGID = (10, 151, 9, 8, 168, 6, 197, 195, 5, 4, 1, 33, 133, 362, 263, 234, 454, 127, 356, 109, 338, 67, 297,
         116, 345, 123, 352, 93, 323)


@dataclass(frozen=True)
class Similarity:
    scale: float
    rotation: np.ndarray  # [d, d]
    translation: np.ndarray  # [d]

    def apply(self, x: np.ndarray) -> np.ndarray:
        return self.scale * x @ self.rotation.T + self.translation

    def invert(self, y: np.ndarray) -> np.ndarray:
        return ((y - self.translation) @ self.rotation) / self.scale


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> Similarity:
    """Least-squares similarity dst ≈ s·R·src + t (Umeyama 1991), any dimension."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    cov = b.T @ a / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(len(sig))
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    rot = u @ np.diag(d) @ vt
    var = (a**2).sum() / len(src)
    scale = float((sig * d).sum() / var)
    return Similarity(scale, rot, mu_d - scale * mu_s @ rot.T)


class MotionTransfer:
    """Maps driver meshes onto a target mesh (all [478, 2] pixel coordinates)."""

    def __init__(self, target: np.ndarray, expression_gain: float = 1.0) -> None:
        self.target = np.asarray(target, np.float64)[:, :2]
        self.gain = expression_gain
        self.neutral: np.ndarray | None = None
        self._to_target: Similarity | None = None
        self._target_in_driver: np.ndarray | None = None

    def set_neutral(self, driver: np.ndarray) -> None:
        self.neutral = np.asarray(driver, np.float64)[:, :2]
        self._to_target = fit_similarity(self.neutral[list(RIGID)], self.target[list(RIGID)])
        self._target_in_driver = self._to_target.invert(self.target)

    def __call__(self, driver: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(animated target mesh [478, 2], the same with the pose change only, no expression)."""
        if self.neutral is None:
            self.set_neutral(driver)
        driver = np.asarray(driver, np.float64)[:, :2]
        pose = fit_similarity(self.neutral[list(RIGID)], driver[list(RIGID)])
        expression = pose.invert(driver) - self.neutral
        animated = self._to_target.apply(pose.apply(self._target_in_driver + self.gain * expression))
        posed = self._to_target.apply(pose.apply(self._target_in_driver))
        return animated, posed
