"""The smooth ramp the warp fades its effects in and out with."""
from __future__ import annotations

import numpy as np


def smoothstep(x: np.ndarray | float) -> np.ndarray | float:
    """0 for x ≤ 0, 1 for x ≥ 1, 3x² − 2x³ between: flat at both ends, so nothing starts or stops with a kink."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)
