"""Record the live output to H.264 MP4 (with sound, when given a source) on a thread of its own.

`submit()` never blocks the live loop: frames go into a small bounded queue; when the encoder
falls behind, the newest frame is dropped and counted. Frames carry their capture times, so
the file plays at the real pace of the session. Sound comes from an `engine.media.audio` source
stamped on the same clock, so the output frame of capture time t and the sound heard at t
play together, whatever the model's latency. A write error (disk full, folder gone) stops
the recording with one clear message; what was written before stays playable. A microphone
lost mid-recording is a notice: the video goes on without sound.
"""
from __future__ import annotations

import enum
import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from engine.media.audio import AudioSource, AudioTap
from engine.errors import MediaError
from engine.media.video_io import H264Writer

log = logging.getLogger(__name__)


_IDLE = object()  # no frame came within the wait: pump the sound anyway


class Layout(enum.Enum):
    OUTPUT = "output"  # the animated target only
    SIDE_BY_SIDE = "side_by_side"  # driver on the left, output on the right


def canvas_size(layout: Layout, output_size: tuple[int, int], driver_size: tuple[int, int]) -> tuple[int, int]:
    """(width, height) of recorded frames: the output, or the driver scaled to the output's height beside it."""
    out_w, out_h = output_size
    if layout is Layout.OUTPUT:
        return out_w, out_h
    drv_w, drv_h = driver_size
    return out_w + round(drv_w * out_h / drv_h), out_h


def compose(layout: Layout, output: np.ndarray, driver: np.ndarray | None, size: tuple[int, int]) -> np.ndarray:
    """One recorded frame of exactly `size`; a driver of another shape is fitted (letterboxed) into its half."""
    width, height = size
    out_h, out_w = output.shape[:2]
    if layout is Layout.OUTPUT:
        return output if (out_w, out_h) == size else cv2.resize(output, size, interpolation=cv2.INTER_AREA)
    canvas = np.zeros((height, width, 3), np.uint8)
    out_w = min(round(out_w * height / out_h), width)  # a model switched mid-recording may change the aspect
    left = width - out_w
    canvas[:, left:] = cv2.resize(output, (out_w, height), interpolation=cv2.INTER_AREA)
    if driver is not None and left > 0:
        scale = min(left / driver.shape[1], height / driver.shape[0])
        dw, dh = max(1, round(driver.shape[1] * scale)), max(1, round(driver.shape[0] * scale))
        x, y = (left - dw) // 2, (height - dh) // 2
        canvas[y:y + dh, x:x + dw] = cv2.resize(driver, (dw, dh), interpolation=cv2.INTER_AREA)
    return canvas


@dataclass(frozen=True)
class RecorderStats:
    path: Path
    frames_written: int
    frames_dropped: int  # submitted while the queue was full
    duration_s: float  # of the video written so far
    error: str | None  # why the recording stopped early, if it did
    audio_s: float = 0.0  # seconds of sound written (0: recorded without sound)
    audio_dropouts: int = 0  # gaps in the sound filled with silence + blocks the encoder lost
    audio_notice: str | None = None  # e.g. the microphone was lost mid-recording


class Recorder:
    """Encodes submitted frames to `path` on its own thread.

    >>> rec = Recorder(path, Layout.SIDE_BY_SIDE, output_size=(512, 512), driver_size=(640, 480))
    >>> rec.submit(output, t, driver)     # from the live loop; never blocks
    >>> stats = rec.stop()                # drains the queue and closes the file
    """

    def __init__(
        self,
        path: Path,
        layout: Layout,
        output_size: tuple[int, int],  # (width, height) of the reenactor's output
        driver_size: tuple[int, int] | None = None,  # (width, height) of the driving frames (side by side)
        fps_hint: float = 30.0,  # nominal rate in the file's header; frames keep their real times
        queue_size: int = 8,  # frames waiting for the encoder before new ones are dropped
        on_error: Callable[[str], None] | None = None,  # called once, on the recorder's thread
        audio: AudioSource | None = None,  # sound to record with the frames (same clock), or None
        on_notice: Callable[[str], None] | None = None,  # non-fatal news (microphone lost), recorder's thread
    ) -> None:
        self.path = Path(path)
        self.layout = layout
        if layout is Layout.SIDE_BY_SIDE and driver_size is None:
            raise ValueError("side-by-side recording needs the driver's frame size")
        self.size = canvas_size(layout, output_size, driver_size or output_size)
        self.on_error = on_error
        self.on_notice = on_notice
        self.dropped = 0
        self.started_at = time.monotonic()
        self._error: str | None = None
        self._queue: queue.Queue[tuple[np.ndarray, float, np.ndarray | None] | None] = queue.Queue(queue_size)
        # Opening here makes an unwritable folder fail at once, in the caller's hands.
        self._writer = H264Writer.live(self.path, self.size, fps_hint,
                                       audio=audio.format if audio is not None else None)
        self._tap: AudioTap | None = audio.subscribe(history_s=1.0) if audio is not None else None
        self._audio_notice: str | None = None
        self._thread = threading.Thread(target=self._run, name="mimic-recorder", daemon=True)
        self._thread.start()

    @property
    def error(self) -> str | None:
        return self._error

    @property
    def active(self) -> bool:
        """Accepting frames (not stopped, no error)."""
        return self._thread.is_alive() and self._error is None

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started_at

    def submit(self, output: np.ndarray, t: float, driver: np.ndarray | None = None) -> bool:
        """Queue one frame captured at monotonic time `t` (a `engine.live.FrameSink`); False when it was
        dropped (queue full or stopped)."""
        if not self.active:
            return False
        try:
            self._queue.put_nowait((output, t, driver))
            return True
        except queue.Full:
            self.dropped += 1
            return False

    def stop(self) -> RecorderStats:
        """Finish the queued frames, close the file and return what was recorded. Idempotent."""
        if self._thread.is_alive():
            self._queue.put(None)  # blocks only while the encoder drains a full queue
            self._thread.join()
        return self.stats()

    def stats(self) -> RecorderStats:
        lost_blocks = self._tap.dropped if self._tap is not None else 0
        return RecorderStats(self.path, self._writer.frames_written, self.dropped, self._writer.duration, self._error,
                             self._writer.audio_seconds, self._writer.audio_gaps + lost_blocks, self._audio_notice)

    def _run(self) -> None:
        try:
            while (item := self._next_frame()) is not None:
                if item is not _IDLE:
                    output, t, driver = item
                    self._writer.write(compose(self.layout, output, driver, self.size), t_seconds=t)
                self._pump_audio()
            self._pump_audio()
            self._writer.close()
        except MediaError as exc:
            self._fail(str(exc))
        except Exception as exc:  # never leave the file open on a bug
            log.exception("recorder failed")
            self._fail(f"recording to {self.path} failed: {exc}")
        finally:
            self._writer.close()
            self._drain()
            if self._tap is not None:
                self._tap.close()
            # The callbacks are the owner's closures, which usually hold this recorder: a cycle that only the
            # cyclic garbage collector frees, and it runs rarely in a long-lived app. Until then the recorder
            # kept its encoder's native memory (~18 MiB for libx264 at 1138x512): the live window grew
            # with every recording. Nothing calls them after this thread ends.
            self.on_error = self.on_notice = None
        log.info("recorded %d frames (%.1f s, %d dropped, %.1f s of sound) to %s", self._writer.frames_written,
                 self._writer.duration, self.dropped, self._writer.audio_seconds, self.path)

    def _next_frame(self):
        """The next queued frame, None at stop, or _IDLE after a short wait (so sound keeps flowing)."""
        try:
            return self._queue.get(timeout=0.05 if self._tap is not None else None)
        except queue.Empty:
            return _IDLE

    def _pump_audio(self) -> None:
        """Move the sound captured since the last call into the file; report a lost microphone once."""
        if self._tap is None:
            return
        for block in self._tap.drain():
            self._writer.write_audio(block.samples, block.t)
        if self._tap.lost is not None and self._audio_notice is None:
            self._audio_notice = self._tap.lost
            if self.on_notice is not None:
                self.on_notice(self._tap.lost)

    def _fail(self, message: str) -> None:
        self._error = message
        log.error("%s", message)
        if self.on_error is not None:
            self.on_error(message)

    def _drain(self) -> None:
        """Empty the queue so a stop() waiting on a full queue returns."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return
