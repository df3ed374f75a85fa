"""What a session's views render (SessionState), and what its parts share to change it (SessionContext)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from engine.live import LivePipeline
from engine.media.audio import NO_AUDIO, AudioSource, MicrophoneInfo
from engine.media.camera import CameraInfo, SourceStatus
from engine.media.recorder import Recorder
from engine.reenactor import Reenactor, TargetSpec
from engine.session.events import Changed, Event, Part, TargetRef
from engine.tasks import Post, Task


@dataclass
class SessionState:
    """What a view renders. Changed only by the session's parts, on the owner thread."""

    source_spec: str | None = None  # camera index (digits) or video file in use
    source_name: str = ""
    source_status: SourceStatus | None = None
    cameras: list[CameraInfo] = field(default_factory=list)
    cameras_listed: bool = False  # the background camera scan has finished once
    reenactor: Reenactor | None = None
    model_pack: Path | None = None  # None: the landmark warp
    loading: str | None = None  # what is being loaded ("landmark warp", "pack.safetensors"), else None
    target: TargetRef | None = None  # None: no target, or a random identity
    target_spec: TargetSpec | None = None
    target_label: str = ""
    recorder: Recorder | None = None
    virtual_camera: Any = None  # engine.media.virtual_camera.VirtualCamera while on
    virtual_camera_available: bool = False
    virtual_camera_reason: str = "checking for a virtual camera…"
    mirror: bool = False
    options: dict[str, Any] = field(default_factory=dict)  # named options, handed to every reenactor
    audio_spec: str = NO_AUDIO  # what recordings take their sound from: a microphone, "source" or "none"
    audio: AudioSource | None = None  # the sound source open now (recordings get it; the level meter reads it)
    audio_message: str = "Recordings are silent."  # one line on the sound, for the view
    microphones: list[MicrophoneInfo] = field(default_factory=list)

    @property
    def live(self) -> bool:
        """Outputs are being produced (a model and a target)."""
        return self.reenactor is not None and self.target_spec is not None

    @property
    def can_invent(self) -> bool:
        """Random identities need a model pack (the warp animates portraits only)."""
        return self.reenactor is not None and self.model_pack is not None


@dataclass
class SessionContext:
    """What every part of a session shares: the state, the live loop, and the owner thread's channels."""

    state: SessionState
    pipeline: LivePipeline
    post: Post  # runs a callable on the owner thread
    run: Callable[[Task], Task]  # starts a task the session tracks (cancelled when it closes)
    notify: Callable[[Event], None]  # tells the listeners, on the owner thread
    tasks: set[Task] = field(default_factory=set)  # the tasks running now (what `run` started)
    closed: bool = False  # set by Session.close: outcomes still on their way are dropped

    def changed(self, *parts: Part) -> None:
        for part in parts:
            self.notify(Changed(part))
