"""Relative motion and temporal smoothing on E_m's features f (docs/paper-model.md, "The paper's model, live").

M and the end of E_m are linear (engine/stylegan/folding.py): w = K·f + c. Relative motion feeds

    f' = f_target + g·(f − f_neutral)

with f_target = E_m's features of the target's own aligned crop, f_neutral = the driver's features
averaged over its first tracked frames and g the expression strength: a driver at rest leaves the
target as the model reconstructs it. `absolute` is the paper's f' = f (with g ≠ 1: f_target + g·(f − f_target)).
A One-Euro filter smooths f, per dimension in units of that dimension's response to sensor noise,
so one strength fits every dimension.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from engine.face.smoothing import OneEuroConfig, OneEuroFilter

MotionMode = Literal["relative", "absolute"]
MOTION_MODES: tuple[MotionMode, ...] = ("relative", "absolute")
NEUTRAL_FRAMES = 5  # the driver's first tracked frames averaged into its neutral features
FRAME_RATE = 30.0  # Hz: the filter's clock advances 1/FRAME_RATE per driving frame (deterministic)
DEFAULT_SMOOTHING = 0.7  # chosen by measurement (benchmarks/paper_live_bench.py; docs/paper-model.md)
SPEED_GAIN = 0.05  # One-Euro beta for features in noise units (benchmarks/paper_live_bench.py)


def feature_filter_config(strength: float) -> OneEuroConfig:
    """strength 0 … 1 → One-Euro settings for features in units of their sensor-noise response, at 30 Hz."""
    strength = min(max(strength, 0.0), 1.0)
    return OneEuroConfig(min_cutoff=10.0 ** (1.5 - 2.5 * strength), beta=SPEED_GAIN, d_cutoff=1.0)


@dataclass(frozen=True)
class MotionConfig:
    mode: MotionMode = "relative"  # relative to the driver's neutral frames, or the paper's absolute code
    expression: float = 1.0  # gain g on the driver's motion (1: as driven, 0: the target at rest)
    smoothing: float = DEFAULT_SMOOTHING  # One-Euro strength on f, 0 (off) … 1 (very smooth)


class FeatureMotion:
    """Driver features f [D] per frame → the features f' the folded mapping turns into W+."""

    def __init__(self, config: MotionConfig = MotionConfig()) -> None:
        if config.mode not in MOTION_MODES:
            raise ValueError(f"unknown motion mode {config.mode!r} (expected 'relative' or 'absolute')")
        self.config = config
        self._filter = OneEuroFilter(feature_filter_config(config.smoothing)) if config.smoothing > 0 else None
        self._target: np.ndarray | None = None
        self._scale: np.ndarray | None = None
        self._neutral_sum: np.ndarray | None = None
        self._neutral_count = 0
        self._frames = 0

    def reconfigured(self, config: MotionConfig) -> "FeatureMotion":
        """A new FeatureMotion with `config` that keeps this one's target and neutral (the filter restarts)."""
        other = FeatureMotion(config)
        other._target, other._scale = self._target, self._scale
        other._neutral_sum, other._neutral_count = self._neutral_sum, self._neutral_count
        return other

    @property
    def needs_target(self) -> bool:
        """Whether f_target enters f' (relative motion, or a gain other than 1)."""
        return self.config.mode == "relative" or self.config.expression != 1.0

    def set_target(self, target: np.ndarray | None, noise_scale: np.ndarray | None) -> None:
        """f_target [D] (None where not needed) and the per-dimension noise response [D] (filter units)."""
        self._target = None if target is None else np.asarray(target, np.float64)
        self._scale = None if noise_scale is None else np.asarray(noise_scale, np.float64)

    def reset_neutral(self) -> None:
        """The next tracked frames become the driver's neutral (and the filter starts afresh)."""
        self._neutral_sum, self._neutral_count = None, 0
        self.reset_track()

    def reset_track(self) -> None:
        """The face was lost: the filter starts afresh on the next face (the neutral is kept)."""
        if self._filter is not None:
            self._filter.reset()
        self._frames = 0

    @property
    def neutral(self) -> np.ndarray | None:
        return None if self._neutral_sum is None else self._neutral_sum / self._neutral_count

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """f [D] (float) → f' [D] (float64)."""
        f = np.asarray(features, np.float64)
        if self._neutral_count < NEUTRAL_FRAMES:
            self._neutral_sum = f.copy() if self._neutral_sum is None else self._neutral_sum + f
            self._neutral_count += 1
        f = self._smooth(f)
        if not self.needs_target:
            return f
        if self._target is None:
            raise RuntimeError("relative motion needs the target's features: set a target first")
        reference = self.neutral if self.config.mode == "relative" else self._target
        return self._target + self.config.expression * (f - reference)

    def _smooth(self, f: np.ndarray) -> np.ndarray:
        if self._filter is None:
            return f
        scale = self._scale if self._scale is not None else np.ones_like(f)
        t = self._frames / FRAME_RATE
        self._frames += 1
        return self._filter(f / scale, t) * scale
