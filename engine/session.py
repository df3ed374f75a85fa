"""One live session: source, reenactor, target, recording, virtual camera and options, and how they change.

This is the one place where an action of the user changes the engine's state (README, "The app").
Qt-free: a GUI (or a test, or a script) calls the intent methods on its *owner thread* and listens
to the events. Slow work — building a reenactor, preparing a target, finishing a recording,
listing cameras — runs as a `Task` on a worker thread, and its outcome comes back to the owner
thread through `post` (the GUI posts into its event loop; `engine.tasks.EventQueue` does it without one), so
every state change happens on the owner thread, in the order the events report it.

    intent (owner thread) ──▶ Session ──Task (worker)──▶ post ──▶ transition (owner thread) ──▶ events
                                 └──▶ LivePipeline (capture + inference threads) ──▶ sinks / viewers
"""
from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Callable

import numpy as np

from engine.media.audio import NO_AUDIO, SOURCE_AUDIO, AudioSource, MicrophoneInfo, list_microphones, open_audio
from engine.media.camera import CameraInfo, FrameSource, SourceStatus, VideoFileSource, list_cameras, open_source
from engine.errors import Cancelled, MediaError, MimicError
from engine.live import LivePipeline, LiveResult
from engine.media.recorder import Layout, Recorder, RecorderStats, canvas_size, compose
from engine.reenactor import ProgressFn, Reenactor, TargetSpec, apply_option
from engine.tasks import Post, Task
from engine.media.video_io import read_image, write_image

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
LATENT_SUFFIXES = {".npy", ".pkl"}

# Builds a reenactor: the model pack, or None for the weights-free landmark warp (runs on a worker thread);
# the ProgressFn hears its build stages (a compiled graph loaded from the cache, or built: minutes).
ReenactorFactory = Callable[[Path | None, ProgressFn], Reenactor]


def target_kind(path: Path) -> str | None:
    """"image", "latent" or None (not a target file), from the suffix."""
    suffix = path.suffix.lower()
    return "image" if suffix in IMAGE_SUFFIXES else "latent" if suffix in LATENT_SUFFIXES else None


@dataclass(frozen=True)
class TargetRef:
    path: str  # image or latent file
    kind: str  # "image" | "latent"


# ---------------------------------------------------------------------------------------------- events


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


# ---------------------------------------------------------------------------------------------- session


@dataclass
class SessionState:
    """What a view renders. Changed only by `Session`, on the owner thread."""

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


class Session:
    """Owns the live pipeline and everything it runs with. See the module docstring for the threads."""

    def __init__(self, factory: ReenactorFactory, post: Post, mirror: bool = False,
                 on_frame: Callable[[np.ndarray], None] | None = None,
                 on_result: Callable[[LiveResult], None] | None = None) -> None:
        """on_frame / on_result: viewers, called on the live loop's threads (they must not block)."""
        self.factory = factory
        self.post = post
        self.state = SessionState(mirror=mirror)
        self.latest: LiveResult | None = None  # newest output (snapshots, recording's driver size)
        self.latest_frame: np.ndarray | None = None  # newest driving frame
        self._viewers = (on_frame, on_result)
        self._listeners: list[Callable[[Event], None]] = []
        self._model_task: Task | None = None
        self._target_task: Task | None = None
        self._pending_target: TargetRef | None = None
        self._tasks: set[Task] = set()
        self._retiring: list[threading.Thread] = []
        self._closed = False
        self._source: FrameSource | None = None
        self._audio_task: Task | None = None
        self._deferred_pack: Path | None = None  # start(): built once the warp animates the first target
        self._deferred_target: TargetRef | None = None  # …which the pack is given too if the warp failed it
        self.pipeline = LivePipeline(
            on_result=self._on_result, on_frame=self._on_frame, mirror=mirror,
            on_status=lambda status: post(lambda: self._on_status(status)),
            on_error=lambda message: post(lambda: self._notify(Notice("error", message))),
        )

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
        self.use_source(source)
        self.use_audio(audio)
        self.pipeline.start()
        self.refresh_cameras()
        self.refresh_microphones()
        self.probe_virtual_camera()
        self._pending_target = target
        if pack is not None and target is not None and target.kind == "image":
            # The landmark warp (ready in a moment) animates the portrait while the pack builds (README:
            # "animated by the landmark warp until the model is ready"); the pack follows (_continue_start).
            # (A latent needs the pack itself: it is built at once.)
            self.load_model(None)
            self._deferred_pack, self._deferred_target = pack, target
        else:
            self.load_model(pack)

    def _continue_start(self) -> None:
        """start() with a pack and a portrait: once the warp animates it (or failed to), build the pack."""
        if self._deferred_pack is None or self._target_task is not None or self._pending_target is not None:
            return
        pack, self._deferred_pack = self._deferred_pack, None
        target, self._deferred_target = self._deferred_target, None
        self.load_model(pack)
        if self.state.target_spec is None and target is not None:
            self._pending_target = target  # the warp could not animate it: the pack tries it too (and says why)

    @property
    def pack_pending(self) -> bool:
        """start() was given a pack that is not being built yet (the warp runs meanwhile)."""
        return self._deferred_pack is not None

    def close(self, timeout: float = 10.0) -> None:
        """Finish the recording, stop everything and close the reenactor(s). Blocks (finishing the file
        matters more than a snappy exit)."""
        self._closed = True  # outcomes still on their way are dropped (a finished model is closed)
        for task in list(self._tasks):
            task.cancel()
        recorder = self._detach_recorder()
        if recorder is not None:
            recorder.stop()
        self._close_audio()
        self.set_virtual_camera(False)
        self.pipeline.stop()
        for task in list(self._tasks):
            task.wait(timeout)
        self.join_retired(timeout)
        reenactor, self.state.reenactor = self.state.reenactor, None
        if reenactor is not None:
            reenactor.close()

    def join_retired(self, timeout: float | None = None) -> None:
        """Wait until every replaced reenactor has been closed."""
        for thread in self._retiring:
            thread.join(timeout)

    def _run(self, task: Task) -> Task:
        self._tasks.add(task)
        ended = task.on_ended

        def on_ended() -> None:
            self._tasks.discard(task)
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
        return (self._model_task is not None or self._target_task is not None or self._pending_target is not None
                or self._audio_task is not None or self._deferred_pack is not None)

    # ------------------------------------------------------------------ source

    def use_source(self, spec: str, resolution: tuple[int, int] = (1280, 720)) -> bool:
        """Switch to camera index `spec` (digits) or a video file; a failure is a notice, the old source stays."""
        try:
            source: FrameSource = open_source(spec, resolution)
        except MediaError as exc:
            self._notify(Notice("error", str(exc)))
            return False
        self.state.source_spec, self.state.source_name, self.state.source_status = spec, source.name, None
        self._source = source
        self.pipeline.set_source(source)
        self._changed(Part.SOURCE)
        if self.state.audio_spec == SOURCE_AUDIO and self._audio_task is None:
            self.use_audio(SOURCE_AUDIO)  # the sound of the new video (or none: a camera has no track)
        return True

    def _on_status(self, status: SourceStatus) -> None:
        self.state.source_status = status
        self._changed(Part.SOURCE)

    def refresh_cameras(self) -> None:
        def done(cameras: list[CameraInfo]) -> None:
            self.state.cameras, self.state.cameras_listed = cameras, True
            self._changed(Part.CAMERAS)

        self._run(Task("camera list", lambda progress, cancel: list_cameras(), self.post, done, log.warning))

    def set_mirror(self, on: bool) -> None:
        self.state.mirror = self.pipeline.mirror = on
        self._changed(Part.OPTIONS)

    def retake_neutral(self) -> None:
        self.pipeline.retake_neutral()
        self._notify(Notice("info", "Neutral face re-taken from the next frame.", 3000))

    # ------------------------------------------------------------------ sound

    def use_audio(self, spec: str) -> None:
        """Take recordings' sound from microphone `spec` (name, index, "default"), "source" (the video's own
        track) or "none". The old source closes and the new one opens in the background; a failure is a
        warning, recordings are then silent."""
        if self._audio_task is not None:
            self._audio_task.cancel()
        old, self.state.audio = self.state.audio, None
        self.state.audio_spec = spec
        silent = spec.lower() == NO_AUDIO
        video = self._source if isinstance(self._source, VideoFileSource) else None

        def work(progress, cancel) -> AudioSource | None:
            if old is not None:
                old.close()  # a PortAudio stream may take a while to close: never on the owner thread
            return None if silent else open_audio(spec, video)

        def done(source: AudioSource | None) -> None:
            self._audio_task = None
            self.state.audio = source
            if source is not None:
                self.state.audio_message = f"Recording sound from {source.name}."
                log.info("sound for recordings: %s", source.name)
            self._changed(Part.AUDIO)

        def failed(message: str) -> None:
            self._audio_task = None
            self.state.audio_message = f"No sound: {message}"
            if spec != "default":  # a chosen device is worth a banner; no microphone at all only the hint
                self._notify(Notice("warning", f"{message} — recordings will be silent", 8000))
            self._changed(Part.AUDIO)

        self.state.audio_message = "Recordings are silent." if silent else "Opening the microphone…"
        self._audio_task = self._run(Task("sound", work, self.post, done, failed,
                                          discard=lambda source: source and source.close()))
        self._changed(Part.AUDIO)

    def audio_level_db(self) -> float | None:
        """Peak level of the sound source over the last 100 ms (dBFS), None without one."""
        audio = self.state.audio
        return audio.level_db() if audio is not None else None

    def refresh_microphones(self) -> None:
        def done(mics: list[MicrophoneInfo]) -> None:
            self.state.microphones = mics
            self._changed(Part.AUDIO)

        self._run(Task("microphone list", lambda progress, cancel: list_microphones(), self.post, done, log.info))

    def _close_audio(self) -> None:
        audio, self.state.audio = self.state.audio, None
        if audio is not None:
            audio.close()

    # ------------------------------------------------------------------ options

    def set_option(self, name: str, value: Any) -> None:
        """A named option (a slider, a checkbox): kept, handed to the reenactor now and to every later one."""
        self.state.options[name] = value
        if self.state.reenactor is not None:
            apply_option(self.state.reenactor, name, value)
        self._changed(Part.OPTIONS)

    # ------------------------------------------------------------------ model

    def load_model(self, pack: Path | None) -> None:
        """Build the reenactor for `pack` (None: landmark warp) in the background, then switch to it.

        The running model keeps animating meanwhile; a failure is a notice and it stays."""
        if self._model_task is not None:
            self._model_task.cancel()
        self._deferred_pack = self._deferred_target = None  # a model was picked: start()'s pack is not built
        spec, options, factory = self.state.target_spec, dict(self.state.options), self.factory
        what = pack.name if pack else "landmark warp"

        def work(progress, cancel) -> Reenactor:
            progress(0.0, f"loading {what}…")
            reenactor = factory(pack, progress)
            for name, value in options.items():
                apply_option(reenactor, name, value)
            try:
                if spec is not None and not cancel.is_set():
                    reenactor.set_target(spec, progress, cancel)
            except BaseException:
                reenactor.close()
                raise
            return reenactor

        task = Task(f"Loading {what}", work, self.post, lambda r: self._on_model_loaded(task, r, pack, spec),
                    lambda message: self._on_model_failed(task, message, pack),
                    on_cancelled=lambda: self._model_task_over(task),
                    discard=lambda reenactor: reenactor.close(), show_progress=True)
        self._model_task = task
        self.state.loading = what
        self._run(task)
        self._changed(Part.MODEL)

    def _model_task_over(self, task: Task) -> bool:
        """Clear the model task if `task` is it; whether it was (a superseded load is ignored)."""
        if self._model_task is not task or self._closed:
            return False
        self._model_task, self.state.loading = None, None
        self._changed(Part.MODEL)
        return True

    def _on_model_loaded(self, task: Task, reenactor: Reenactor, pack: Path | None, spec: TargetSpec | None) -> None:
        if not self._model_task_over(task):
            reenactor.close()  # finished just as a newer load superseded it
            return
        old = self.state.reenactor
        self.state.reenactor, self.state.model_pack = reenactor, pack
        self._drive_with(reenactor if spec is not None else None)  # it has `spec` prepared
        self._retire(old)
        self._changed(Part.MODEL, Part.TARGET)
        if pack is not None or old is not None:  # (a switch back to the warp also replaces a stale error)
            self._notify(Notice("success", f"Model ready: {reenactor.describe()}", 4000))
        if self.state.target_spec is not None and spec is not self.state.target_spec:
            # the target changed while the model loaded: prepare the new model for it too
            self._apply_target(self.state.target_spec, self.state.target, self.state.target_label)
        if self._pending_target is not None:
            target, self._pending_target = self._pending_target, None
            self.choose_target(target)
        self._continue_start()

    def _on_model_failed(self, task: Task, message: str, pack: Path | None) -> None:
        if not self._model_task_over(task):
            return
        self._notify(Notice("error", message))
        if self.state.reenactor is None and pack is not None:
            self.load_model(None)  # nothing running yet: fall back to the weights-free warp
        elif self.state.reenactor is None:
            self._pending_target = None

    def _drive_with(self, reenactor: Reenactor | None) -> None:
        """The one place the live loop gets its reenactor (None: driver preview only, no output)."""
        self.pipeline.reenactor = reenactor

    def _retire(self, old: Reenactor | None) -> None:
        """Close a replaced reenactor once nothing uses it (a drive() or set_target() in progress)."""
        if old is None or old is self.state.reenactor:
            return
        users = [t for t in self._tasks if t.uses is old]

        def close() -> None:
            for task in users:
                task.cancel()
                task.wait()
            self.pipeline.release(old)
            old.close()
            log.debug("closed %s", old.name)

        thread = threading.Thread(target=close, name="mimic-retire", daemon=True)
        self._retiring = [t for t in self._retiring if t.is_alive()] + [thread]
        thread.start()

    # ------------------------------------------------------------------ target

    def choose_target_file(self, path: Path) -> None:
        kind = target_kind(path)
        if kind is None:
            self._notify(Notice("error", f"{path.name}: not a portrait image or a latent file (.npy / .pkl)"))
            return
        self.choose_target(TargetRef(str(path), kind))

    def choose_target(self, target: TargetRef) -> None:
        """Animate `target` (prepared in the background; the previous target keeps running meanwhile)."""
        if self.state.reenactor is None:
            if self._model_task is None:
                self._notify(Notice("error", "No model is loaded: File → Load model pack…, "
                                             "or File → Use landmark warp (no weights)"))
                return
            self._pending_target = target  # applied once the model is loaded
            return
        path = Path(target.path)
        if not path.is_file():
            self._notify(Notice("error", f"target not found: {path}"))
            return
        self._apply_target(None, target, path.name)

    def random_identity(self) -> None:
        if not self.state.can_invent:
            return
        seed = random.randrange(2**31)
        self._apply_target(TargetSpec.random(seed), None, f"random identity #{seed}")

    def _apply_target(self, spec: TargetSpec | None, target: TargetRef | None, label: str) -> None:
        if self._target_task is not None:
            self._target_task.cancel()
        reenactor = self.state.reenactor
        assert reenactor is not None

        def work(progress, cancel) -> tuple[TargetSpec, np.ndarray | None]:
            return prepare_target(reenactor, spec, target, label, progress, cancel)

        task = Task(f"Preparing {label}", work, self.post,
                    lambda out: self._on_target_ready(task, reenactor, target, label, *out),
                    lambda message: self._target_task_over(task) and self._notify(Notice("error", message)),
                    on_cancelled=lambda: self._target_task_over(task) and self._notify(
                        Notice("info", f"Cancelled: {label}", 3000)),
                    show_progress=True, uses=reenactor)
        self._target_task = task
        self._run(task)

    def _target_task_over(self, task: Task) -> bool:
        if self._target_task is not task or self._closed:
            return False
        self._target_task = None
        self.post(self._continue_start)  # after this outcome's own transition
        return True

    def _on_target_ready(self, task: Task, reenactor: Reenactor, target: TargetRef | None, label: str,
                         spec: TargetSpec, image: np.ndarray | None) -> None:
        if not self._target_task_over(task) or reenactor is not self.state.reenactor:
            return  # superseded, or the model was switched meanwhile (it re-applies the current target)
        self.state.target_spec, self.state.target, self.state.target_label = spec, target, label
        self._drive_with(reenactor)
        self._changed(Part.TARGET)
        self._notify(TargetApplied(label, target, image))

    # ------------------------------------------------------------------ recording & sharing

    def start_recording(self, folder: Path, side_by_side: bool) -> bool:
        """Record the output (beside the driver if `side_by_side`) to a new MP4 in `folder`."""
        reenactor, driver = self.state.reenactor, self.latest_frame
        if not self.state.live or self.state.recorder is not None or reenactor is None:
            return False
        path = folder / time.strftime("mimic-%Y%m%d-%H%M%S.mp4")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            recorder = Recorder(
                path, Layout.SIDE_BY_SIDE if side_by_side and driver is not None else Layout.OUTPUT,
                output_size=reenactor.output_size,
                driver_size=(driver.shape[1], driver.shape[0]) if driver is not None else None,
                fps_hint=max(1.0, round(self.pipeline.stats().fps) or 30.0),
                on_error=lambda message: self.post(lambda: self._on_recording_failed(recorder, message)),
                audio=self.state.audio,
                on_notice=lambda message: self.post(lambda: self._notify(Notice("warning", message))),
            )
        except (MediaError, OSError) as exc:
            message = str(exc) if isinstance(exc, MediaError) else f"cannot record to {folder}: {exc.strerror or exc}"
            self._notify(Notice("error", message))
            return False
        self.state.recorder = recorder
        self.pipeline.add_sink(recorder)
        self._changed(Part.RECORDING)
        return True

    def stop_recording(self) -> None:
        """Stop feeding the recorder; the file is finished in the background, then `RecordingSaved`."""
        recorder = self._detach_recorder()
        if recorder is None:
            return
        self._changed(Part.RECORDING)
        self._run(Task("finish recording", lambda progress, cancel: recorder.stop(), self.post,
                       self._on_recording_saved, lambda message: self._notify(Notice("error", message))))

    @property
    def frames_recorded(self) -> int:
        """Outputs the current recorder accepted."""
        recorder = self.state.recorder
        return self.pipeline.accepted(recorder) if recorder is not None else 0

    def _detach_recorder(self) -> Recorder | None:
        recorder, self.state.recorder = self.state.recorder, None
        if recorder is not None:
            self.pipeline.remove_sink(recorder)
        return recorder

    def _on_recording_saved(self, stats: RecorderStats) -> None:
        if stats.error is None:
            dropped = f", {stats.frames_dropped} frames dropped" if stats.frames_dropped else ""
            sound = f", {stats.audio_s:.1f} s of sound" if stats.audio_s else ", no sound"
            self._notify(Notice("success", f"Saved {stats.duration_s:.1f} s ({stats.frames_written} frames"
                                           f"{dropped}{sound}) to {stats.path}"))
        self._notify(RecordingSaved(stats))

    def _on_recording_failed(self, recorder: Recorder, message: str) -> None:
        self._notify(Notice("error", message))
        if self.state.recorder is recorder:
            self.stop_recording()

    def snapshot(self, folder: Path, side_by_side: bool) -> None:
        """Save the current output (beside its driver if `side_by_side`) as PNG in `folder`, in the background."""
        live = self.latest
        if live is None or not self.state.live:
            self._notify(Notice("warning", "Nothing to save yet: pick a target first.", 4000))
            return
        layout = Layout.SIDE_BY_SIDE if side_by_side else Layout.OUTPUT
        path = folder / time.strftime("mimic-%Y%m%d-%H%M%S.png")
        size = canvas_size(layout, live.result.image.shape[1::-1], live.driver.shape[1::-1])

        def work(progress, cancel) -> Path:
            folder.mkdir(parents=True, exist_ok=True)
            return write_image(path, compose(layout, live.result.image, live.driver, size))

        self._run(Task("snapshot", work, self.post,
                       lambda saved: self._notify(Notice("success", f"Snapshot saved to {saved}", 5000)),
                       lambda message: self._notify(Notice("error", message))))

    def probe_virtual_camera(self) -> None:
        from engine.media.virtual_camera import probe_virtual_camera

        def done(out: tuple[bool, str]) -> None:
            self.state.virtual_camera_available, self.state.virtual_camera_reason = out
            self._changed(Part.VIRTUAL_CAMERA)

        self._run(Task("virtual camera probe", lambda progress, cancel: probe_virtual_camera(), self.post,
                       done, log.warning))

    def set_virtual_camera(self, on: bool) -> None:
        """Stream the output to the virtual camera (on), or stop (off); a failure is a notice."""
        from engine.media.virtual_camera import VirtualCamera

        camera, self.state.virtual_camera = self.state.virtual_camera, None
        if camera is not None:
            self.pipeline.remove_sink(camera)
            camera.close()
        if on and self.state.reenactor is not None:
            try:
                self.state.virtual_camera = VirtualCamera(self.state.reenactor.output_size)
                self.pipeline.add_sink(self.state.virtual_camera)
            except MediaError as exc:
                self._notify(Notice("error", str(exc)))
        self._changed(Part.VIRTUAL_CAMERA)

    # ------------------------------------------------------------------ live loop (its threads)

    def _on_frame(self, frame: np.ndarray, t: float) -> None:
        self.latest_frame = frame
        if self._viewers[0] is not None:
            self._viewers[0](frame)

    def _on_result(self, live: LiveResult) -> None:
        self.latest = live
        if self._viewers[1] is not None:
            self._viewers[1](live)


def prepare_target(reenactor: Reenactor, spec: TargetSpec | None, target: TargetRef | None, label: str,
                   progress, cancel: threading.Event) -> tuple[TargetSpec, np.ndarray | None]:
    """Read the target file (when no `spec` is given) and prepare `reenactor` for it (worker thread).

    A failure names the file: "astronaut.png: no face found in the target image; …"."""
    image = None
    try:
        if spec is None:
            assert target is not None
            path = Path(target.path)
            if target.kind == "image":
                image = read_image(path)
                spec = TargetSpec.from_image(image, path)
            else:
                spec = TargetSpec.from_latent(path)
        reenactor.set_target(spec, progress, cancel)
    except Cancelled:
        raise
    except MimicError as exc:
        if label in str(exc):
            raise
        raise type(exc)(f"{label}: {exc}") from exc
    return spec, image
