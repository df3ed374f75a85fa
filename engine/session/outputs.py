"""The live loop's newest output and driving frame, handed over to the owner thread.

The live loop's threads `offer` what they produce; the newest is kept under a lock, and one hand-over at a
time is posted to the owner thread, which publishes it as `result` / `frame`. So those two change only on
the owner thread (between its events), and a fast loop never floods it: offers made while a hand-over is
on its way only replace what it will publish.
"""
from __future__ import annotations

import threading

import numpy as np

from engine.live import LiveResult
from engine.tasks import Post


class LatestOutputs:
    """`result` (newest LiveResult) and `frame` (newest driving frame), as of the owner thread's last hand-over."""

    def __init__(self, post: Post) -> None:
        self.result: LiveResult | None = None
        self.frame: np.ndarray | None = None
        self._post = post
        self._lock = threading.Lock()
        self._result: LiveResult | None = None  # offered, not yet handed over
        self._frame: np.ndarray | None = None
        self._on_its_way = False

    def offer_frame(self, frame: np.ndarray) -> None:
        """A new driving frame (the live loop's capture thread)."""
        with self._lock:
            self._frame = frame
            post, self._on_its_way = not self._on_its_way, True
        if post:
            self._post(self._hand_over)

    def offer_result(self, live: LiveResult) -> None:
        """A new output (the live loop's inference thread)."""
        with self._lock:
            self._result = live
            post, self._on_its_way = not self._on_its_way, True
        if post:
            self._post(self._hand_over)

    def _hand_over(self) -> None:
        """On the owner thread: publish the newest."""
        with self._lock:
            self.result, self.frame, self._on_its_way = self._result, self._frame, False
