"""From the engine's threads to the Qt GUI thread: posted calls, session events, live frames.

`QtPost` runs calls posted from any thread on the GUI thread (the `Session`'s owner thread).
`SessionEvents` re-emits the session's events as a Qt signal, so widgets connect to it and
disconnect when they are deleted. `LiveFeed` hands frames and results over latest-wins through
`engine.live.Mailbox`: a signal is emitted only when the GUI has taken the previous item, so a
busy GUI thread cannot accumulate a backlog of frames.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from PyQt6.QtCore import QObject, Qt, pyqtSignal

from engine.live import LiveResult, Mailbox


class QtPost(QObject):
    """post(call) from any thread → call() on the thread this object lives on (the GUI thread)."""

    _posted = pyqtSignal(object)

    def __init__(self) -> None:
        super().__init__()
        self._posted.connect(lambda call: call(), Qt.ConnectionType.QueuedConnection)

    def __call__(self, call: Callable[[], None]) -> None:
        self._posted.emit(call)


class SessionEvents(QObject):
    """`event` carries each `engine.session` event (Changed, Notice, TaskStarted, …) on the GUI thread."""

    event = pyqtSignal(object)


class LiveFeed(QObject):
    """The session's viewers: newest driving frame and newest output, latest-wins."""

    frame_ready = pyqtSignal()  # call take_frame()
    result_ready = pyqtSignal()  # call take_result()

    def __init__(self) -> None:
        super().__init__()
        self._frames: Mailbox[np.ndarray] = Mailbox()
        self._results: Mailbox[LiveResult] = Mailbox()

    def offer_frame(self, frame: np.ndarray) -> None:  # capture thread
        if self._frames.put(frame):
            self.frame_ready.emit()

    def offer_result(self, live: LiveResult) -> None:  # inference thread
        if self._results.put(live):
            self.result_ready.emit()

    def take_frame(self) -> np.ndarray | None:
        return self._frames.get(timeout=0)

    def take_result(self) -> LiveResult | None:
        return self._results.get(timeout=0)
