"""What a session animates: the source that drives (camera or video), the model that animates (a reenactor,
built in the background), the target it animates, and the options handed to every model."""
from __future__ import annotations

import logging
import random
import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np

from engine.errors import Cancelled, MediaError, MimicError
from engine.media.camera import CameraInfo, FrameSource, SourceStatus, list_cameras, open_source
from engine.media.video_io import IMAGE_SUFFIXES, read_image
from engine.reenactor import ProgressFn, Reenactor, TargetSpec, apply_option
from engine.session.events import Notice, Part, TargetApplied, TargetRef
from engine.session.state import SessionContext
from engine.tasks import Task

log = logging.getLogger(__name__)

LATENT_SUFFIXES = {".npy", ".pkl"}

# Builds a reenactor: the model pack, or None for the weights-free landmark warp (runs on a worker thread);
# the ProgressFn hears its build stages (a compiled graph loaded from the cache, or built: minutes).
ReenactorFactory = Callable[[Path | None, ProgressFn], Reenactor]


def target_kind(path: Path) -> str | None:
    """"image", "latent" or None (not a target file), from the suffix."""
    suffix = path.suffix.lower()
    return "image" if suffix in IMAGE_SUFFIXES else "latent" if suffix in LATENT_SUFFIXES else None


class Animation:
    """Owns the source, the reenactor (model) and the target in `state`, and the live loop's reenactor."""

    def __init__(self, ctx: SessionContext, factory: ReenactorFactory,
                 on_source_changed: Callable[[], None] = lambda: None) -> None:
        self.ctx = ctx
        self.factory = factory
        self.source: FrameSource | None = None  # the source in use (the live loop owns and closes it)
        self._on_source_changed = on_source_changed
        self._model_task: Task | None = None
        self._target_task: Task | None = None
        self.pending_target: TargetRef | None = None  # applied once a model is loaded
        self._deferred_pack: Path | None = None  # start_with(): built once the warp animates the first target
        self._deferred_target: TargetRef | None = None  # …which the pack is given too if the warp failed it
        self._retiring: list[threading.Thread] = []

    @property
    def busy(self) -> bool:
        """A model or a target is being prepared (or start_with()'s pack waits for its turn)."""
        return (self._model_task is not None or self._target_task is not None or self.pending_target is not None
                or self._deferred_pack is not None)

    @property
    def pack_pending(self) -> bool:
        """start_with() was given a pack that is not being built yet (the warp runs meanwhile)."""
        return self._deferred_pack is not None

    def start_with(self, pack: Path | None, target: TargetRef | None) -> None:
        """The first model and target. With a pack and a portrait, the landmark warp (ready in a moment)
        animates the portrait while the pack builds (docs/app.md: "animated by the landmark warp until the
        model is ready"); the pack follows (_continue_start). A latent needs the pack itself: built at once."""
        self.pending_target = target
        if pack is not None and target is not None and target.kind == "image":
            self.load_model(None)
            self._deferred_pack, self._deferred_target = pack, target
        else:
            self.load_model(pack)

    def _continue_start(self) -> None:
        """start_with() with a pack and a portrait: once the warp animates it (or failed to), build the pack."""
        if self._deferred_pack is None or self._target_task is not None or self.pending_target is not None:
            return
        pack, self._deferred_pack = self._deferred_pack, None
        target, self._deferred_target = self._deferred_target, None
        self.load_model(pack)
        if self.ctx.state.target_spec is None and target is not None:
            self.pending_target = target  # the warp could not animate it: the pack tries it too (and says why)

    # ------------------------------------------------------------------ source

    def use_source(self, spec: str, resolution: tuple[int, int] = (1280, 720)) -> bool:
        """Switch to camera index `spec` (digits) or a video file; a failure is a notice, the old source stays."""
        ctx, state = self.ctx, self.ctx.state
        try:
            source: FrameSource = open_source(spec, resolution)
        except MediaError as exc:
            ctx.notify(Notice("error", str(exc)))
            return False
        state.source_spec, state.source_name, state.source_status = spec, source.name, None
        self.source = source
        ctx.pipeline.set_source(source)
        ctx.changed(Part.SOURCE)
        self._on_source_changed()
        return True

    def on_status(self, status: SourceStatus) -> None:
        """The source's status changed (posted by the live loop)."""
        self.ctx.state.source_status = status
        self.ctx.changed(Part.SOURCE)

    def refresh_cameras(self) -> None:
        def done(cameras: list[CameraInfo]) -> None:
            self.ctx.state.cameras, self.ctx.state.cameras_listed = cameras, True
            self.ctx.changed(Part.CAMERAS)

        self.ctx.run(Task("camera list", lambda progress, cancel: list_cameras(), self.ctx.post, done, log.warning))

    def set_mirror(self, on: bool) -> None:
        self.ctx.state.mirror = self.ctx.pipeline.mirror = on
        self.ctx.changed(Part.OPTIONS)

    def retake_neutral(self) -> None:
        self.ctx.pipeline.retake_neutral()
        self.ctx.notify(Notice("info", "Neutral face re-taken from the next frame.", 3000))

    # ------------------------------------------------------------------ options

    def set_option(self, name: str, value: Any) -> None:
        """A named option (a slider, a checkbox): kept, handed to the reenactor now and to every later one."""
        self.ctx.state.options[name] = value
        if self.ctx.state.reenactor is not None:
            apply_option(self.ctx.state.reenactor, name, value)
        self.ctx.changed(Part.OPTIONS)

    # ------------------------------------------------------------------ model

    def load_model(self, pack: Path | None) -> None:
        """Build the reenactor for `pack` (None: landmark warp) in the background, then switch to it.

        The running model keeps animating meanwhile; a failure is a notice and it stays."""
        ctx, state = self.ctx, self.ctx.state
        if self._model_task is not None:
            self._model_task.cancel()
        self._deferred_pack = self._deferred_target = None  # a model was picked: start_with()'s pack is not built
        spec, options, factory = state.target_spec, dict(state.options), self.factory
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

        task = Task(f"Loading {what}", work, ctx.post, lambda r: self._on_model_loaded(task, r, pack, spec),
                    lambda message: self._on_model_failed(task, message, pack),
                    on_cancelled=lambda: self._model_task_over(task),
                    discard=lambda reenactor: reenactor.close(), show_progress=True)
        self._model_task = task
        state.loading = what
        ctx.run(task)
        ctx.changed(Part.MODEL)

    def _model_task_over(self, task: Task) -> bool:
        """Clear the model task if `task` is it; whether it was (a superseded load is ignored)."""
        if self._model_task is not task or self.ctx.closed:
            return False
        self._model_task, self.ctx.state.loading = None, None
        self.ctx.changed(Part.MODEL)
        return True

    def _on_model_loaded(self, task: Task, reenactor: Reenactor, pack: Path | None, spec: TargetSpec | None) -> None:
        ctx, state = self.ctx, self.ctx.state
        if not self._model_task_over(task):
            reenactor.close()  # finished just as a newer load superseded it
            return
        old = state.reenactor
        state.reenactor, state.model_pack = reenactor, pack
        self._drive_with(reenactor if spec is not None else None)  # it has `spec` prepared
        self._retire(old)
        ctx.changed(Part.MODEL, Part.TARGET)
        if pack is not None or old is not None:  # (a switch back to the warp also replaces a stale error)
            ctx.notify(Notice("success", f"Model ready: {reenactor.describe()}", 4000))
        if state.target_spec is not None and spec is not state.target_spec:
            # the target changed while the model loaded: prepare the new model for it too
            self._apply_target(state.target_spec, state.target, state.target_label)
        if self.pending_target is not None:
            target, self.pending_target = self.pending_target, None
            self.choose_target(target)
        self._continue_start()

    def _on_model_failed(self, task: Task, message: str, pack: Path | None) -> None:
        if not self._model_task_over(task):
            return
        self.ctx.notify(Notice("error", message))
        if self.ctx.state.reenactor is None and pack is not None:
            self.load_model(None)  # nothing running yet: fall back to the weights-free warp
        elif self.ctx.state.reenactor is None:
            self.pending_target = None

    def _drive_with(self, reenactor: Reenactor | None) -> None:
        """The one place the live loop gets its reenactor (None: driver preview only, no output)."""
        self.ctx.pipeline.reenactor = reenactor

    def _retire(self, old: Reenactor | None) -> None:
        """Close a replaced reenactor once nothing uses it (a drive() or set_target() in progress)."""
        if old is None or old is self.ctx.state.reenactor:
            return
        users = [t for t in self.ctx.tasks if t.uses is old]
        pipeline = self.ctx.pipeline

        def close() -> None:
            for task in users:
                task.cancel()
                task.wait()
            pipeline.release(old)
            old.close()
            log.debug("closed %s", old.name)

        thread = threading.Thread(target=close, name="mimic-retire", daemon=True)
        self._retiring = [t for t in self._retiring if t.is_alive()] + [thread]
        thread.start()

    def join_retired(self, timeout: float | None = None) -> None:
        """Wait until every replaced reenactor has been closed."""
        for thread in self._retiring:
            thread.join(timeout)

    def close(self) -> None:
        """Close the reenactor in use (after the live loop stopped and the retired ones closed)."""
        reenactor, self.ctx.state.reenactor = self.ctx.state.reenactor, None
        if reenactor is not None:
            reenactor.close()

    # ------------------------------------------------------------------ target

    def choose_target_file(self, path: Path) -> None:
        kind = target_kind(path)
        if kind is None:
            self.ctx.notify(Notice("error", f"{path.name}: not a portrait image or a latent file (.npy / .pkl)"))
            return
        self.choose_target(TargetRef(str(path), kind))

    def choose_target(self, target: TargetRef) -> None:
        """Animate `target` (prepared in the background; the previous target keeps running meanwhile)."""
        if self.ctx.state.reenactor is None:
            if self._model_task is None:
                self.ctx.notify(Notice("error", "No model is loaded: File → Load model pack…, "
                                                "or File → Use landmark warp (no weights)"))
                return
            self.pending_target = target  # applied once the model is loaded
            return
        path = Path(target.path)
        if not path.is_file():
            self.ctx.notify(Notice("error", f"target not found: {path}"))
            return
        self._apply_target(None, target, path.name)

    def random_identity(self) -> None:
        if not self.ctx.state.can_invent:
            return
        seed = random.randrange(2**31)
        self._apply_target(TargetSpec.random(seed), None, f"random identity #{seed}")

    def _apply_target(self, spec: TargetSpec | None, target: TargetRef | None, label: str) -> None:
        ctx = self.ctx
        if self._target_task is not None:
            self._target_task.cancel()
        reenactor = ctx.state.reenactor
        assert reenactor is not None

        def work(progress, cancel) -> tuple[TargetSpec, np.ndarray | None]:
            return prepare_target(reenactor, spec, target, label, progress, cancel)

        task = Task(f"Preparing {label}", work, ctx.post,
                    lambda out: self._on_target_ready(task, reenactor, target, label, *out),
                    lambda message: self._target_task_over(task) and ctx.notify(Notice("error", message)),
                    on_cancelled=lambda: self._target_task_over(task) and ctx.notify(
                        Notice("info", f"Cancelled: {label}", 3000)),
                    show_progress=True, uses=reenactor)
        self._target_task = task
        ctx.run(task)

    def _target_task_over(self, task: Task) -> bool:
        if self._target_task is not task or self.ctx.closed:
            return False
        self._target_task = None
        self.ctx.post(self._continue_start)  # after this outcome's own transition
        return True

    def _on_target_ready(self, task: Task, reenactor: Reenactor, target: TargetRef | None, label: str,
                         spec: TargetSpec, image: np.ndarray | None) -> None:
        state = self.ctx.state
        if not self._target_task_over(task) or reenactor is not state.reenactor:
            return  # superseded, or the model was switched meanwhile (it re-applies the current target)
        state.target_spec, state.target, state.target_label = spec, target, label
        self._drive_with(reenactor)
        self.ctx.changed(Part.TARGET)
        self.ctx.notify(TargetApplied(label, target, image))


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
