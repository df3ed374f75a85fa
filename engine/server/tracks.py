"""The two media ends of a session: the client's camera drained to its newest frame, and the
animated portrait sent back as a video track."""
from __future__ import annotations

import asyncio
import fractions
import logging
import time
from typing import Any, Callable

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

log = logging.getLogger(__name__)

VIDEO_CLOCK = 90_000  # RTP video clock (Hz)
TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK)


class OutputTrack(MediaStreamTrack):
    """Sends the newest output: `push` (event-loop thread) replaces an output not yet sent.

    Each frame's pts is its send time on the 90 kHz clock, the first frame at 0 (so the client, whose
    receiver counts from the first frame it gets, sees the same numbers the stats messages carry).
    `on_sent(stats, pts)` hears every frame as it goes out."""

    kind = "video"

    def __init__(self, on_sent: Callable[[dict[str, Any], int], None] | None = None) -> None:
        super().__init__()
        self._item: tuple[np.ndarray, dict[str, Any], float] | None = None
        self._event = asyncio.Event()
        self._t0: float | None = None
        self._last_pts = -1
        self.on_sent = on_sent
        self.dropped = 0  # outputs replaced before the encoder took them
        self.sent = 0

    def push(self, image: np.ndarray, stats: dict[str, Any]) -> None:
        if self._item is not None:
            self.dropped += 1
        self._item = (image, stats, time.monotonic())
        self._event.set()

    async def recv(self) -> av.VideoFrame:
        while self._item is None:
            if self.readyState != "live":
                raise MediaStreamError
            self._event.clear()
            try:
                await asyncio.wait_for(self._event.wait(), 0.5)
            except asyncio.TimeoutError:
                continue
        if self.readyState != "live":
            raise MediaStreamError
        (image, stats, pushed), self._item = self._item, None
        now = time.monotonic()
        stats = {**stats, "out_wait_ms": round((now - pushed) * 1000, 2)}  # ready → taken by the encoder
        if self._t0 is None:
            self._t0 = now
        pts = max(round((now - self._t0) * VIDEO_CLOCK), self._last_pts + 1)
        self._last_pts = pts
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts, frame.time_base = pts, TIME_BASE
        self.sent += 1
        if self.on_sent is not None:
            self.on_sent(stats, pts)
        return frame


async def drain(track: MediaStreamTrack, on_frame: Callable[[av.VideoFrame], None]) -> None:
    """Hand every decoded frame of `track` to `on_frame` as soon as it is decoded, until the track ends.

    aiortc queues decoded frames without bound; taking each at once (on_frame only stores it in a
    latest-wins slot) keeps that queue empty, so a slow model never makes latency grow."""
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        on_frame(frame)
