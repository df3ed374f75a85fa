"""What leaves a session: recordings (MP4, with sound), snapshots (PNG) and the virtual camera."""
from __future__ import annotations

import logging
import time
from pathlib import Path

from engine.errors import MediaError
from engine.media.recorder import Layout, Recorder, RecorderStats, canvas_size, compose
from engine.media.video_io import write_image
from engine.session.events import Notice, Part, RecordingSaved
from engine.session.outputs import LatestOutputs
from engine.session.state import SessionContext
from engine.tasks import Task

log = logging.getLogger(__name__)


class Sharing:
    """Owns `state.recorder` and `state.virtual_camera` (and whether one is available); both are sinks of
    the live loop. Snapshots and the recorder's driver size come from the owner thread's latest outputs."""

    def __init__(self, ctx: SessionContext, outputs: LatestOutputs) -> None:
        self.ctx = ctx
        self.outputs = outputs

    # ------------------------------------------------------------------ recording

    def start_recording(self, folder: Path, side_by_side: bool) -> bool:
        """Record the output (beside the driver if `side_by_side`) to a new MP4 in `folder`."""
        ctx, state = self.ctx, self.ctx.state
        reenactor, driver = state.reenactor, self.outputs.frame
        if not state.live or state.recorder is not None or reenactor is None:
            return False
        path = folder / time.strftime("mimic-%Y%m%d-%H%M%S.mp4")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            recorder = Recorder(
                path, Layout.SIDE_BY_SIDE if side_by_side and driver is not None else Layout.OUTPUT,
                output_size=reenactor.output_size,
                driver_size=(driver.shape[1], driver.shape[0]) if driver is not None else None,
                fps_hint=max(1.0, round(ctx.pipeline.stats().fps) or 30.0),
                on_error=lambda message: ctx.post(lambda: self._on_recording_failed(recorder, message)),
                audio=state.audio,
                on_notice=lambda message: ctx.post(lambda: ctx.notify(Notice("warning", message))),
            )
        except (MediaError, OSError) as exc:
            message = str(exc) if isinstance(exc, MediaError) else f"cannot record to {folder}: {exc.strerror or exc}"
            ctx.notify(Notice("error", message))
            return False
        state.recorder = recorder
        ctx.pipeline.add_sink(recorder)
        ctx.changed(Part.RECORDING)
        return True

    def stop_recording(self) -> None:
        """Stop feeding the recorder; the file is finished in the background, then `RecordingSaved`."""
        recorder = self._detach_recorder()
        if recorder is None:
            return
        ctx = self.ctx
        ctx.changed(Part.RECORDING)
        ctx.run(Task("finish recording", lambda progress, cancel: recorder.stop(), ctx.post,
                     self._on_recording_saved, lambda message: ctx.notify(Notice("error", message))))

    @property
    def frames_recorded(self) -> int:
        """Outputs the current recorder accepted."""
        recorder = self.ctx.state.recorder
        return self.ctx.pipeline.accepted(recorder) if recorder is not None else 0

    def _detach_recorder(self) -> Recorder | None:
        recorder, self.ctx.state.recorder = self.ctx.state.recorder, None
        if recorder is not None:
            self.ctx.pipeline.remove_sink(recorder)
        return recorder

    def _on_recording_saved(self, stats: RecorderStats) -> None:
        if stats.error is None:
            dropped = f", {stats.frames_dropped} frames dropped" if stats.frames_dropped else ""
            sound = f", {stats.audio_s:.1f} s of sound" if stats.audio_s else ", no sound"
            self.ctx.notify(Notice("success", f"Saved {stats.duration_s:.1f} s ({stats.frames_written} frames"
                                              f"{dropped}{sound}) to {stats.path}"))
        self.ctx.notify(RecordingSaved(stats))

    def _on_recording_failed(self, recorder: Recorder, message: str) -> None:
        self.ctx.notify(Notice("error", message))
        if self.ctx.state.recorder is recorder:
            self.stop_recording()

    # ------------------------------------------------------------------ snapshots

    def snapshot(self, folder: Path, side_by_side: bool) -> None:
        """Save the current output (beside its driver if `side_by_side`) as PNG in `folder`, in the background."""
        ctx, live = self.ctx, self.outputs.result
        if live is None or not ctx.state.live:
            ctx.notify(Notice("warning", "Nothing to save yet: pick a target first.", 4000))
            return
        layout = Layout.SIDE_BY_SIDE if side_by_side else Layout.OUTPUT
        path = folder / time.strftime("mimic-%Y%m%d-%H%M%S.png")
        size = canvas_size(layout, live.result.image.shape[1::-1], live.driver.shape[1::-1])

        def work(progress, cancel) -> Path:
            folder.mkdir(parents=True, exist_ok=True)
            return write_image(path, compose(layout, live.result.image, live.driver, size))

        ctx.run(Task("snapshot", work, ctx.post,
                     lambda saved: ctx.notify(Notice("success", f"Snapshot saved to {saved}", 5000)),
                     lambda message: ctx.notify(Notice("error", message))))

    # ------------------------------------------------------------------ virtual camera

    def probe_virtual_camera(self) -> None:
        from engine.media.virtual_camera import probe_virtual_camera

        def done(out: tuple[bool, str]) -> None:
            self.ctx.state.virtual_camera_available, self.ctx.state.virtual_camera_reason = out
            self.ctx.changed(Part.VIRTUAL_CAMERA)

        self.ctx.run(Task("virtual camera probe", lambda progress, cancel: probe_virtual_camera(), self.ctx.post,
                          done, log.warning))

    def set_virtual_camera(self, on: bool) -> None:
        """Stream the output to the virtual camera (on), or stop (off); a failure is a notice."""
        from engine.media.virtual_camera import VirtualCamera

        ctx, state = self.ctx, self.ctx.state
        camera, state.virtual_camera = state.virtual_camera, None
        if camera is not None:
            ctx.pipeline.remove_sink(camera)
            camera.close()
        if on and state.reenactor is not None:
            try:
                state.virtual_camera = VirtualCamera(state.reenactor.output_size)
                ctx.pipeline.add_sink(state.virtual_camera)
            except MediaError as exc:
                ctx.notify(Notice("error", str(exc)))
        ctx.changed(Part.VIRTUAL_CAMERA)

    # ------------------------------------------------------------------ closing

    def close(self) -> None:
        """Finish the recording (blocks) and stop the virtual camera."""
        recorder = self._detach_recorder()
        if recorder is not None:
            recorder.stop()
        self.set_virtual_camera(False)
