"""A Python client of the Mimic server: sends frames, receives the animated portrait and the stats.

Used by the desktop app's remote mode, the tests and benchmarks/server_bench.py.

    frames ──▶ FrameTrack (paced, stamped) ──WebRTC──▶ server ──WebRTC──▶ on_output(image, pts, t)
    control (dict) ──data channel──▶ server ──▶ on_message(dict): hello, ok, error, pong, stats
"""
from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import aiohttp
import av
import numpy as np
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from engine.errors import MimicError
from engine.server.tracks import TIME_BASE, VIDEO_CLOCK, drain

log = logging.getLogger(__name__)


class RefusedError(MimicError):
    """The server answered with an error status (wrong token, full, …)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"the server refused ({status}): {message}")
        self.status = status


class FrameTrack(MediaStreamTrack):
    """Sends `frames` (RGB uint8 arrays) at `fps`, stamping each with pts = n · 90000/fps.

    `sent[pts]` is when each frame left (monotonic s): the start of the glass-to-glass clock."""

    kind = "video"

    def __init__(self, frames: Iterator[np.ndarray], fps: float = 30.0) -> None:
        super().__init__()
        self.frames = frames
        self.fps = fps
        self.sent: dict[int, float] = {}
        self.paused = False  # True: no frame leaves (a stalled client)
        self._n = 0
        self._t0: float | None = None

    async def recv(self) -> av.VideoFrame:
        if self._t0 is None:
            self._t0 = time.monotonic()
        due = self._t0 + self._n / self.fps
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        while self.paused:
            await asyncio.sleep(0.05)
            self._t0 = time.monotonic() - self._n / self.fps  # resume at the camera's rate, not in a burst
        try:
            image = next(self.frames)
        except StopIteration:
            self.stop()
            raise
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts, frame.time_base = round(self._n * VIDEO_CLOCK / self.fps), TIME_BASE
        self.sent[frame.pts] = time.monotonic()
        if len(self.sent) > 10_000:
            self.sent.pop(next(iter(self.sent)))
        self._n += 1
        return frame

    def sent_at(self, pts: int | None) -> float | None:
        """When the frame the server saw as `pts` left (the codec may round pts by a tick)."""
        if pts is None:
            return None
        step = VIDEO_CLOCK / self.fps
        n = round(pts / step)
        return self.sent.get(round(n * step)) if abs(pts - n * step) < step / 4 else None


@dataclass
class Output:
    image: np.ndarray  # RGB uint8
    pts: int  # the server's pts of this frame (matches a stats message's out_pts)
    received: float  # monotonic s


class RemoteClient:
    """One session with a Mimic server."""

    def __init__(self, url: str, token: str, on_output: Callable[[Output], None] | None = None,
                 on_message: Callable[[dict[str, Any]], None] | None = None, cafile: Path | None = None,
                 timeout_s: float = 20.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.on_output = on_output
        self.on_message = on_message
        self.timeout_s = timeout_s
        self._ssl = ssl.create_default_context(cafile=str(cafile)) if cafile else None
        self.pc: RTCPeerConnection | None = None
        self.channel = None
        self.session_id: str | None = None
        self.hello: dict[str, Any] | None = None
        self._opened = asyncio.Event()
        self._greeted = asyncio.Event()  # the server's hello arrived
        self._tasks: list[asyncio.Task] = []

    @property
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def connect(self, track: MediaStreamTrack) -> None:
        """Offer `track`, receive the portrait; returns once the data channel is open and the server's hello
        (its reenactor line and options) is in `hello`."""
        pc = self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.channel = pc.createDataChannel("control")
        self.channel.on("open", self._opened.set)
        self.channel.on("message", self._message)
        pc.addTransceiver(track, direction="sendrecv")
        pc.on("track", self._track)
        await pc.setLocalDescription(await pc.createOffer())
        answer = await self.request("POST", "/offer", json={"sdp": pc.localDescription.sdp,
                                                             "type": pc.localDescription.type})
        self.session_id = answer["session"]
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
        try:
            await asyncio.wait_for(self._opened.wait(), self.timeout_s)
            await asyncio.wait_for(self._greeted.wait(), self.timeout_s)
        except asyncio.TimeoutError:
            await self.close()
            raise MimicError(f"no connection to {self.url} within {self.timeout_s:g} s (blocked UDP?)") from None

    async def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """One authorised HTTP request; its JSON answer, or RefusedError / MimicError."""
        headers = {**self._headers, **kwargs.pop("headers", {})}
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s)) as http:
                async with http.request(method, self.url + path, headers=headers, ssl=self._ssl, **kwargs) as r:
                    try:
                        body = await r.json(content_type=None)
                    except ValueError:
                        body = {"error": r.reason or "not JSON"}
                    if r.status != 200:
                        raise RefusedError(r.status, str(body.get("error", r.reason)))
                    return body
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise MimicError(f"cannot reach {self.url}: {exc or type(exc).__name__}") from None

    async def upload_target(self, data: bytes, kind: str = "image") -> None:
        """A portrait (kind="image") or a latent file (kind="latent") for this session."""
        await self.request("POST", f"/target?kind={kind}", data=data,
                           headers={"X-Mimic-Session": self.session_id or ""})

    def send(self, message: dict[str, Any] | str) -> None:
        """A control message (engine.server.protocol); a str is sent as it is."""
        if self.channel is None or self.channel.readyState != "open":
            raise MimicError("not connected")
        self.channel.send(message if isinstance(message, str) else json.dumps(message))

    def _message(self, text: Any) -> None:
        try:
            message = json.loads(text)
        except (TypeError, ValueError):
            return
        if message.get("type") == "hello":
            self.hello = message
            self._greeted.set()
        if self.on_message is not None:
            self.on_message(message)

    def _track(self, track: MediaStreamTrack) -> None:
        if track.kind == "video":
            self._tasks.append(asyncio.get_running_loop().create_task(drain(track, self._frame)))

    def _frame(self, frame: av.VideoFrame) -> None:
        if self.on_output is not None:
            self.on_output(Output(frame.to_ndarray(format="rgb24"), frame.pts, time.monotonic()))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self.pc is not None:
            await self.pc.close()
