"""Range-checked values: one parser per kind of number a user can give (a flag, a GUI control, a saved setting).

Every command's numeric flag is `type=<kind>` (argparse calls the kind on the text and shows its one-line
reason), the GUI's sliders take their bounds from the same kinds and check restored settings with
`Kind.restore`, and the engine checks values that reach it another way (`Kind.check`). Pure Python: the GUI
and the CLI import it without torch.

    SEED("42") → 42          SEED("1e12") → BadValue: expected a seed, a whole number from 0 to 4294967295
"""
from __future__ import annotations

import math
from argparse import ArgumentTypeError
from dataclasses import dataclass
from typing import Any

from engine.errors import MimicError


class BadValue(MimicError, ArgumentTypeError):
    """A value outside its kind's range, not a number, or not whole where it must be (one line)."""


@dataclass(frozen=True)
class Kind:
    """One kind of value: what it is called, its closed range, and whether it must be a whole number."""

    what: str  # "a seed", "an expression strength"
    low: float
    high: float
    whole: bool = False
    unit: str = ""  # appended to the range in messages: "pixels"

    def __call__(self, text: Any) -> Any:
        """`text` (a flag's string, or a number) as this kind's value; BadValue says why not."""
        value = self._number(text)
        if value is None or not self.low <= value <= self.high:
            raise BadValue(f"expected {self.describe()}, got {_shown(text)}")
        return int(value) if self.whole else float(value)

    parse = __call__

    def check(self, value: Any, name: str = "") -> Any:
        """`value` if it is one of this kind (else BadValue naming `name`), for values that reach the engine
        without a parser (a caller's argument)."""
        try:
            return self(value)
        except BadValue as exc:
            raise BadValue(f"{name}: {exc}" if name else str(exc)) from None

    def restore(self, value: Any, default: Any) -> Any:
        """A saved value if it is still one of this kind, else `default` (settings written by hand or by an
        older version must not reach a control or a reenactor)."""
        try:
            return self(value)
        except BadValue:
            return default

    def describe(self) -> str:
        number = "a whole number" if self.whole else "a number"
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.what}, {number} from {_g(self.low)} to {_g(self.high)}{unit}"

    def _number(self, text: Any) -> float | int | None:
        if isinstance(text, bool):
            return None
        if isinstance(text, int):
            return text
        if isinstance(text, float):
            value = text
        else:
            text = str(text).strip()
            if len(text) > 40:  # int() of a megabyte of digits is slow; no kind needs more than 40 characters
                return None
            if self.whole:
                try:
                    return int(text, 10)
                except ValueError:
                    pass  # "1e3", "2.0": whole numbers written as floats
            try:
                value = float(text)
            except ValueError:
                return None
        if not math.isfinite(value) or (self.whole and value != int(value)):
            return None
        return int(value) if self.whole else value


def _g(x: float) -> str:
    return f"{int(x)}" if x == int(x) and abs(x) < 1e15 else f"{x:g}"


def _shown(text: Any) -> str:
    text = str(text)
    return repr(text if len(text) <= 40 else text[:37] + "...")


MAX_SEED = 2**32 - 1  # numpy's RandomState and torch's manual_seed both take 0 … 2^32 − 1

# -- generation
SEED = Kind("a seed", 0, MAX_SEED, whole=True)
TRUNCATION = Kind("a truncation", 0.0, 2.0)  # 1 = none, 0 = the mean face; > 1 exaggerates

# -- output and motion (render, the GUI's panels)
OUTPUT_SIZE = Kind("an output size", 64, 4096, whole=True, unit="pixels")
ALIGN_SIZE = Kind("an aligned image size", 16, 4096, whole=True, unit="pixels")
EXPRESSION = Kind("an expression strength", 0.0, 2.0)
SMOOTHING = Kind("a smoothing strength", 0.0, 1.0)
HEAD = Kind("a head-motion strength", 0.0, 2.0)
EYES = Kind("an eye openness offset", -1.0, 1.0)
MOUTH = Kind("a mouth openness gain", 0.0, 2.0)
RETARGETING = {"expression": EXPRESSION, "head": HEAD, "eyes": EYES, "mouth": MOUTH}  # engine.warp.retarget

# -- sources
CAMERA_INDEX = Kind("a camera index", 0, 63, whole=True)
FPS = Kind("frames per second", 0.01, 240.0)

# -- the server (python -m app serve)
PORT = Kind("a port", 0, 65535, whole=True)  # 0: any free one
SESSIONS = Kind("a number of sessions", 1, 256, whole=True)
BATCH = Kind("a batch size", 1, 64, whole=True)
STREAM_SIZE = Kind("an output size", 64, 2048, whole=True, unit="pixels")  # `serve`: a video stream's side
BATCH_WAIT_MS = Kind("a wait in milliseconds", 0.0, 1000.0)

# -- benchmarks
REPEATS = Kind("a number of repeats", 1, 1000, whole=True)
THREADS = Kind("a number of threads", 1, 1024, whole=True)

# -- training
CROP_SIZE = Kind("a crop size", 16, 4096, whole=True, unit="pixels")
WORKERS = Kind("a number of worker processes", 0, 256, whole=True)
RANK = Kind("a shard index", 0, 65535, whole=True)
WORLD_SIZE = Kind("a number of shards", 1, 65536, whole=True)
PER_IDENTITY = Kind("a number of latents per identity", 1, 10_000, whole=True)
STEPS = Kind("a number of steps", 1, 10**9, whole=True)
INTERVAL = Kind("a number of steps between events", 1, 10**9, whole=True)
BATCH_SIZE = Kind("a batch size", 1, 65536, whole=True)
LEARNING_RATE = Kind("a learning rate", 1e-12, 10.0)
LOSS_WEIGHT = Kind("a loss weight", 0.0, 1000.0)
HELD_OUT = Kind("a number of held-out identities", 0, 1_000_000, whole=True)

# Minimum size of an image that can hold a face worth finding (a read image smaller than this is refused
# with one line where it is read: MediaPipe, the crop and the warp divide by its size).
MIN_IMAGE_SIDE = 16
