"""Bridge from the live pipeline's worker threads to the Qt GUI thread.

Frames and results are handed over latest-wins as well: a signal is emitted only when the
GUI has taken the previous one, so a busy GUI thread cannot accumulate a backlog of frames.
Recording and the virtual camera are fed right on the inference thread (both never block).
"""
from __future__ import annotations

import threading

import numpy as np
from PyQt6.QtCore import QObject, pyqtSignal

from engine.live import LivePipeline, LiveResult
from engine.recorder import Recorder
from engine.virtual_camera import VirtualCamera


class _Slot:
    """Newest value + whether the GUI has been told about it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = None
        self._pending = False

    def offer(self, value) -> bool:
        """Store `value`; True when the GUI must be signalled (it is not already about to look)."""
        with self._lock:
            self._value = value
            notify, self._pending = not self._pending, True
            return notify

    def take(self):
        with self._lock:
            value, self._value, self._pending = self._value, None, False
            return value


class LiveBridge(QObject):
    frame_ready = pyqtSignal()  # call take_frame()
    result_ready = pyqtSignal()  # call take_result()
    status_changed = pyqtSignal(object)  # engine.camera.SourceStatus
    drive_failed = pyqtSignal(str)
    recording_failed = pyqtSignal(str)  # connect Recorder(on_error=bridge.recording_failed.emit)

    def __init__(self, mirror: bool = False) -> None:
        super().__init__()
        self.pipeline = LivePipeline(
            on_result=self._on_result,
            on_frame=self._on_frame,
            on_status=self.status_changed.emit,
            on_error=self.drive_failed.emit,
            mirror=mirror,
        )
        self.recorder: Recorder | None = None  # fed from the inference thread while set
        self.virtual_camera: VirtualCamera | None = None
        self.latest: LiveResult | None = None  # the newest output (snapshots)
        self.latest_frame: np.ndarray | None = None  # the newest driving frame
        self.results_submitted = 0  # outputs handed to the current recorder
        self._frames = _Slot()
        self._results = _Slot()

    def take_frame(self) -> np.ndarray | None:
        return self._frames.take()

    def take_result(self) -> LiveResult | None:
        return self._results.take()

    def start_recording(self, recorder: Recorder) -> None:
        self.results_submitted = 0
        self.recorder = recorder

    def stop_recording(self) -> Recorder | None:
        """Detach the recorder (the caller stops it, off the GUI thread)."""
        recorder, self.recorder = self.recorder, None
        return recorder

    def _on_frame(self, frame: np.ndarray, t: float) -> None:
        self.latest_frame = frame
        if self._frames.offer(frame):
            self.frame_ready.emit()

    def _on_result(self, live: LiveResult) -> None:
        self.latest = live
        recorder = self.recorder
        if recorder is not None and recorder.submit(live.result.image, live.captured_at, live.driver):
            self.results_submitted += 1
        camera = self.virtual_camera
        if camera is not None:
            camera.submit(live.result.image)
        if self._results.offer(live):
            self.result_ready.emit()
