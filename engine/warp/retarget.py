"""Retargeting controls: how much of the driver the portrait follows (docs/warp.md, "Retargeting controls").

Applied inside the motion transfer (engine.warp.motion):

- expression: scale of the whole transferred expression (0: the portrait keeps its rest face);
- head: scale of the head's rotation angle, zoom and shift (0: the portrait holds its pose);
- eyes: an offset on the eye opening, in fractions of each eye's opening at rest (−1: shut, +1: half
  as wide again), added to whatever the driver's lids do;
- mouth: gain on the opening of the mouth and jaw (the down-component of the lower face's
  expression; 0: the mouth never opens, 2: twice as wide);
- eye_contact: the irises stay where they are at rest (looking into the camera in most portraits),
  whatever the driver's gaze.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from engine.values import RETARGETING

# (lowest, highest) of each numeric control: engine.values, the kinds the GUI sliders and the CLI use
RANGES: dict[str, tuple[float, float]] = {name: (kind.low, kind.high) for name, kind in RETARGETING.items()}


@dataclass(frozen=True)
class Retargeting:
    expression: float = 1.0  # expression strength
    head: float = 1.0  # head-motion strength
    eyes: float = 0.0  # eye openness offset
    mouth: float = 1.0  # mouth openness gain
    eye_contact: bool = False  # irises held at rest instead of following the driver's gaze

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name not in RANGES:
                continue
            lo, hi = RANGES[f.name]
            value = getattr(self, f.name)
            if not lo <= value <= hi:
                raise ValueError(f"{f.name} must be within {lo:g} … {hi:g} (got {value:g})")
