"""The interface every reenactor implements (StyleGAN pipeline, landmark warp).

The app, the `render` command and the recorder only speak this interface:
frames are RGB ``uint8`` arrays of shape [H, W, 3]; nothing here is torch.
"""
from __future__ import annotations

import enum
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Protocol, runtime_checkable

import numpy as np

from engine import values

# progress(fraction in [0, 1], short message)
ProgressFn = Callable[[float, str], None]


class ReenactorKind(str, enum.Enum):
    """Which reenactor it is: what the app compares (never the display `name`)."""

    WARP = "warp"  # engine.warp: the weights-free landmark warp
    STYLEGAN = "stylegan"  # engine.stylegan: the paper's model from a pack


@dataclass(frozen=True)
class TargetSpec:
    """Who the output should look like."""

    kind: Literal["image", "latent", "random"]
    image: np.ndarray | None = None  # [H, W, 3] RGB uint8, for kind="image"
    path: Path | None = None  # latent file (.npy / .pkl), for kind="latent" (or the image's file, informative)
    seed: int = 0  # for kind="random"

    @staticmethod
    def from_image(image: np.ndarray, path: Path | None = None) -> "TargetSpec":
        return TargetSpec(kind="image", image=image, path=path)

    @staticmethod
    def from_latent(path: Path) -> "TargetSpec":
        return TargetSpec(kind="latent", path=Path(path))

    @staticmethod
    def random(seed: int) -> "TargetSpec":
        return TargetSpec(kind="random", seed=values.SEED.check(seed, "seed"))  # before any work, on every path


@dataclass
class DriveResult:
    """One output frame and what it cost."""

    image: np.ndarray  # [S, S, 3] RGB uint8 output
    face_found: bool  # False: the driver had no face; `image` holds the last good output
    timings_ms: dict[str, float] = field(default_factory=dict)  # per stage, e.g. {"align": 3.1, "G": 900.0}
    driver_landmarks: np.ndarray | None = None  # [N, 2] driver landmarks in input-frame pixels (overlay)
    lag_ms: float = 0.0  # the output shows a driving frame handed in this long before this one (a remote
    # reenactor's frames in flight); the live loop adds it to the latency


@runtime_checkable
class Reenactor(Protocol):
    """Animate a target identity with the pose and expression of a driving face."""

    kind: ReenactorKind  # which reenactor (options panels, the factory's options) — compare this
    name: str  # short human name, e.g. "Landmark warp (no weights)" (shown, never compared)

    def describe(self) -> str:
        """One line: reenactor, runtime, device, precision (shown in the app and CLI)."""
        ...

    def set_target(
        self,
        target: TargetSpec,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        """Prepare the identity (may take long: inversion). Raises NoFaceError / MimicError."""
        ...

    def drive(self, frame: np.ndarray) -> DriveResult:
        """Reenact one driving frame ([H, W, 3] RGB uint8, any size)."""
        ...

    def reset_neutral(self) -> None:
        """Take the next driving frame as the neutral reference (no-op where not meaningful)."""
        ...

    @property
    def output_size(self) -> tuple[int, int]:
        """(width, height) of `DriveResult.image`."""
        ...

    def close(self) -> None:
        """Free what the reenactor holds (MediaPipe graphs, threads, device memory). Called once, after
        the live loop stopped using it (on every model swap and on exit); idempotent."""
        ...


@runtime_checkable
class Configurable(Protocol):
    """Optional: a reenactor that takes named options (the app's sliders and checkboxes).

    Called from the GUI thread while `drive` runs on the inference thread: apply values atomically
    (assign a new value, do not mutate shared state in place). Unknown names return False.
    """

    def set_option(self, name: str, value: Any) -> bool:
        ...


def apply_option(reenactor: Reenactor, name: str, value: Any) -> bool:
    """Hand one option to `reenactor` if it takes options; whether it used it."""
    return bool(reenactor.set_option(name, value)) if isinstance(reenactor, Configurable) else False
