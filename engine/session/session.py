"""The Session: one live session, composed of its parts, and the one way the owner thread changes them.

Each concern is its own small object, sharing the state and the owner thread's channels (SessionContext):
    Animation      source, model (reenactor) and target, and the options handed to every model
    Sound          where recordings take their sound from, the microphone list
    Sharing        recordings, snapshots and the virtual camera
    LatestOutputs  the live loop's newest output and driving frame, handed over to the owner thread
The Session starts and closes them together, tracks their tasks, and keeps the public intent methods the
views call (each hands on to the part it concerns).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np

from engine.live import LivePipeline, LiveResult
from engine.media.audio import NO_AUDIO
from engine.session.animation import Animation, ReenactorFactory
from engine.session.events import Changed, Event, Notice, Part, TargetRef, TaskEnded, TaskProgress, TaskStarted
from engine.session.outputs import LatestOutputs
from engine.session.sharing import Sharing
from engine.session.sound import Sound
from engine.session.state import SessionContext, SessionState
from engine.tasks import Post, Task

log = logging.getLogger(__name__)


class Session:
    """Owns the live pipeline and the parts it runs with. See the package docstring for the threads."""

    def __init__(self, factory: ReenactorFactory, post: Post, mirror: bool = False,
                 on_frame: Callable[[np.ndarray], None] | None = None,
                 on_result: Callable[[LiveResult], None] | None = None) -> None:
        """on_frame / on_result: viewers, called on the live loop's threads (they must not block)."""
        self.post = post
        self.state = SessionState(mirror=mirror)
        self.outputs = LatestOutputs(post)
        self._viewers = (on_frame, on_result)
        self._listeners: list[Callable[[Event], None]] = []
        self.pipeline = LivePipeline(
            on_result=self._on_result, on_frame=self._on_frame, mirror=mirror,
            on_status=lambda status: post(lambda: self.animation.on_status(status)),
            on_error=lambda message: post(lambda: self._notify(Notice("error", message))),
        )
        self.ctx = SessionContext(self.state, self.pipeline, post, self._run, self._notify)
        self.animation = Animation(self.ctx, factory, on_source_changed=lambda: self.sound.source_changed())
        self.sound = Sound(self.ctx, lambda: self.animation.source)
        self.sharing = Sharing(self.ctx, self.outputs)

    # ------------------------------------------------------------------ listening

    def subscribe(self, listener: Callable[[Event], None]) -> None:
        """`listener(event)` runs on the owner thread after each transition."""
        self._listeners.append(listener)

    def _notify(self, event: Event) -> None:
        for listener in list(self._listeners):
            listener(event)

    def _changed(self, *parts: Part) -> None:
        for part in parts:
            self._notify(Changed(part))

    # ------------------------------------------------------------------ lifecycle

    def start(self, source: str, pack: Path | None, target: TargetRef | None, audio: str = NO_AUDIO) -> None:
        """Open `source` and the sound `audio`, start the live loop, build the reenactor for `pack`, then
        animate `target`."""
        self.animation.use_source(source)
        self.sound.use(audio)
        self.pipeline.start()
        self.animation.refresh_cameras()
        self.sound.refresh_microphones()
        self.sharing.probe_virtual_camera()
        self.animation.start_with(pack, target)

    def close(self, timeout: float = 10.0) -> None:
        """Finish the recording, stop everything and close the reenactor(s). Blocks (finishing the file
        matters more than a snappy exit)."""
        self.ctx.closed = True  # outcomes still on their way are dropped (a finished model is closed)
        for task in list(self.ctx.tasks):
            task.cancel()
        self.sharing.close()
        self.sound.close()
        self.pipeline.stop()
        for task in list(self.ctx.tasks):
            task.wait(timeout)
        self.animation.join_retired(timeout)
        self.animation.close()

    def _run(self, task: Task) -> Task:
        tasks = self.ctx.tasks
        tasks.add(task)
        ended = task.on_ended

        def on_ended() -> None:
            tasks.discard(task)
            ended()
            self._notify(TaskEnded(task))

        task.on_ended = on_ended
        task.on_progress = lambda fraction, message: self._notify(TaskProgress(task, fraction, message))
        task.start()
        self._notify(TaskStarted(task))
        return task

    @property
    def busy(self) -> bool:
        """A model, a target or the sound source is being prepared."""
        return self.animation.busy or self.sound.busy

    @property
    def pack_pending(self) -> bool:
        """start() was given a pack that is not being built yet (the warp runs meanwhile)."""
        return self.animation.pack_pending

    @property
    def factory(self) -> ReenactorFactory:
        return self.animation.factory

    @factory.setter
    def factory(self, factory: ReenactorFactory) -> None:
        """The factory the next load_model uses (this machine's, or a remote server's)."""
        self.animation.factory = factory

    def join_retired(self, timeout: float | None = None) -> None:
        """Wait until every replaced reenactor has been closed."""
        self.animation.join_retired(timeout)

    # ------------------------------------------------------------------ the live loop's outputs

    @property
    def latest(self) -> LiveResult | None:
        """The newest output, as handed over to the owner thread."""
        return self.outputs.result

    @property
    def latest_frame(self) -> np.ndarray | None:
        """The newest driving frame, as handed over to the owner thread."""
        return self.outputs.frame

    def _on_frame(self, frame: np.ndarray, t: float) -> None:  # the capture thread
        self.outputs.offer_frame(frame)
        if self._viewers[0] is not None:
            self._viewers[0](frame)

    def _on_result(self, live: LiveResult) -> None:  # the inference thread
        self.outputs.offer_result(live)
        if self._viewers[1] is not None:
            self._viewers[1](live)

    # ------------------------------------------------------------------ intents: source, model, target

    def use_source(self, spec: str, resolution: tuple[int, int] = (1280, 720)) -> bool:
        return self.animation.use_source(spec, resolution)

    def refresh_cameras(self) -> None:
        self.animation.refresh_cameras()

    def set_mirror(self, on: bool) -> None:
        self.animation.set_mirror(on)

    def retake_neutral(self) -> None:
        self.animation.retake_neutral()

    def set_option(self, name: str, value: Any) -> None:
        self.animation.set_option(name, value)

    def load_model(self, pack: Path | None) -> None:
        self.animation.load_model(pack)

    def choose_target_file(self, path: Path) -> None:
        self.animation.choose_target_file(path)

    def choose_target(self, target: TargetRef) -> None:
        self.animation.choose_target(target)

    def random_identity(self) -> None:
        self.animation.random_identity()

    # ------------------------------------------------------------------ intents: sound

    def use_audio(self, spec: str) -> None:
        self.sound.use(spec)

    def audio_level_db(self) -> float | None:
        return self.sound.level_db()

    def refresh_microphones(self) -> None:
        self.sound.refresh_microphones()

    # ------------------------------------------------------------------ intents: recording & sharing

    def start_recording(self, folder: Path, side_by_side: bool) -> bool:
        return self.sharing.start_recording(folder, side_by_side)

    def stop_recording(self) -> None:
        self.sharing.stop_recording()

    @property
    def frames_recorded(self) -> int:
        return self.sharing.frames_recorded

    def snapshot(self, folder: Path, side_by_side: bool) -> None:
        self.sharing.snapshot(folder, side_by_side)

    def probe_virtual_camera(self) -> None:
        self.sharing.probe_virtual_camera()

    def set_virtual_camera(self, on: bool) -> None:
        self.sharing.set_virtual_camera(on)
