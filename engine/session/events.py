"""What a session tells its views, on the owner thread: which part changed, one-line notices, task progress."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

import numpy as np

from engine.media.recorder import RecorderStats

if TYPE_CHECKING:
    from engine.tasks import Task


@dataclass(frozen=True)
class TargetRef:
    path: str  # image or latent file
    kind: str  # "image" | "latent"


class Part(Enum):
    """What changed: a view re-renders the parts it shows."""

    SOURCE = "source"  # source_spec, source_name, source_status
    CAMERAS = "cameras"  # the camera list
    MODEL = "model"  # reenactor, model_pack, loading
    TARGET = "target"  # target, target_label (also: live or not)
    RECORDING = "recording"  # recorder
    VIRTUAL_CAMERA = "virtual_camera"  # virtual_camera, virtual_camera_available/_reason
    OPTIONS = "options"  # options, mirror
    AUDIO = "audio"  # audio_spec, audio, audio_message, microphones


@dataclass(frozen=True)
class Changed:
    part: Part


@dataclass(frozen=True)
class Notice:
    """One line for the user: kind is error | warning | info | success; timeout None: the view decides."""

    kind: str
    text: str
    timeout_ms: int | None = None


@dataclass(frozen=True)
class TaskStarted:
    task: "Task"


@dataclass(frozen=True)
class TaskProgress:
    task: "Task"
    fraction: float
    message: str


@dataclass(frozen=True)
class TaskEnded:
    task: "Task"


@dataclass(frozen=True)
class TargetApplied:
    """A target is animated now; `ref` is None for a random identity. `image`: the portrait (thumbnails)."""

    label: str
    ref: TargetRef | None
    image: np.ndarray | None


@dataclass(frozen=True)
class RecordingSaved:
    stats: RecorderStats


Event = Changed | Notice | TaskStarted | TaskProgress | TaskEnded | TargetApplied | RecordingSaved
