"""RemoteReenactor: a Mimic server behind the Reenactor interface, so the app's live view, recording,
snapshots and virtual camera run on the remote output exactly as on a local one.

    drive(frame) ──▶ PushTrack (newest frame only) ──WebRTC──▶ server ──WebRTC──▶ newest output ──▶ drive returns it

drive() is pipelined: it hands the frame over and returns the newest output that came back since the
previous call, waiting at most PACE_S for one; when none came it raises NotReady, which the live loop
skips silently (each WebRTC receiver releases a frame only once the next one arrives, so waiting for
the output of this very frame would stall). The app gets the server's frame rate with one network
round trip of latency. The network runs on an event loop of its own thread. A lost connection
is one MimicError line per drive() (the live loop reports it once and keeps going) while it reconnects
in the background; a wrong token says so.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
from aiortc import MediaStreamTrack

from engine.errors import MimicError, NotReady
from engine.reenactor import DriveResult, ProgressFn, ReenactorKind, TargetSpec
from engine.server.client import Output, RefusedError, RemoteClient
from engine.server.tracks import TIME_BASE, VIDEO_CLOCK

log = logging.getLogger(__name__)

PACE_S = 0.05  # drive() waits at most this long for a new output (about one camera interval and a half)
OUTPUT_WAIT_S = 2.0  # drive() waits at most this long for a new output before it reports a stall
FIRST_OUTPUT_WAIT_S = 30.0  # … and this long for the very first (the server may be preparing the target)
RECONNECT_S = 3.0  # between reconnection attempts
# the app's option names (the panels of each reenactor) → the protocol's (engine.server.protocol.OPTIONS)
PAPER_APP_OPTIONS = {"paper_paste_back": "paste_back", "paper_motion": "motion", "paper_smoothing": "smoothing",
                     "paper_expression": "expression"}
WARP_APP_OPTIONS = {name: name for name in ("expression", "head", "eyes", "mouth", "eye_contact", "smoothing")}


class PushTrack(MediaStreamTrack):
    """Sends the newest frame pushed (any thread, through the loop); stamps pts by send time."""

    kind = "video"

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._loop = loop
        self._frame: np.ndarray | None = None
        self._event = asyncio.Event()
        self._t0: float | None = None
        self._last_pts = -1
        self.sent: dict[int, float] = {}

    def push(self, frame: np.ndarray) -> None:
        self._loop.call_soon_threadsafe(self._put, frame)

    def _put(self, frame: np.ndarray) -> None:
        self._frame = frame
        self._event.set()

    async def recv(self) -> av.VideoFrame:
        while self._frame is None:
            self._event.clear()
            await self._event.wait()
        image, self._frame = self._frame, None
        now = time.monotonic()
        self._t0 = now if self._t0 is None else self._t0
        pts = max(round((now - self._t0) * VIDEO_CLOCK), self._last_pts + 1)
        self._last_pts = pts
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts, frame.time_base = pts, TIME_BASE
        self.sent[pts] = now
        if len(self.sent) > 1000:
            self.sent.pop(next(iter(self.sent)))
        return frame

    def sent_at(self, pts: int | None) -> float | None:
        if pts is None:
            return None
        return next((self.sent[p] for p in (pts, pts - 1, pts + 1) if p in self.sent), None)


class RemoteReenactor:
    """The reenactor of a Mimic server (python -m app serve) at `url`, authorised by `token`."""

    name = "remote"  # then the server's reenactor name
    kind = ReenactorKind.WARP  # then the server's reenactor kind, so the app shows that reenactor's controls

    def __init__(self, url: str, token: str, timeout_s: float = 20.0, cafile: Path | None = None) -> None:
        self.url = url
        self._token = token
        self._timeout_s = timeout_s
        self._cafile = cafile
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="mimic-remote", daemon=True)
        self._thread.start()
        self._cond = threading.Condition()
        self._output: Output | None = None  # newest output
        self._returned_pts: int | None = None  # the output drive() returned last
        self._stats: dict[int, dict[str, Any]] = {}  # out_pts → stats message
        self._face = True
        self._last_error: str | None = None
        self.latency_ms: float | None = None  # newest glass-to-glass: frame handed over → its output back
        self.server_line = "?"
        self._client: RemoteClient | None = None
        self._track: PushTrack | None = None
        self._options: dict[str, Any] = {}
        self._takes: set[str] = set()
        self._target: TargetSpec | None = None
        self._closed = False
        self._reconnecting = False
        self._connected_at = time.monotonic()
        self._last_fresh: float | None = None  # when drive() last returned a new output
        self._call(self._connect())

    # ------------------------------------------------------------------ the network (its own loop)

    def _call(self, coroutine, timeout: float | None = None) -> Any:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(self._timeout_s + 5 if timeout is None else timeout)
        except TimeoutError:
            future.cancel()
            raise MimicError(f"the server at {self.url} did not answer within {self._timeout_s:g} s") from None

    async def _connect(self) -> None:
        track = PushTrack(self._loop)
        client = RemoteClient(self.url, self._token, on_output=self._received, on_message=self._message,
                              cafile=self._cafile, timeout_s=self._timeout_s)
        try:
            await client.connect(track)
        except RefusedError as exc:
            await client.close()
            if exc.status == 401:
                raise MimicError(f"the server at {self.url} refused the token (wrong token)") from None
            raise
        self._client, self._track = client, track
        self._connected_at, self._last_fresh = time.monotonic(), None
        self.server_line = (client.hello or {}).get("reenactor", "?")
        self.name = self.server_line.split(" · ")[0]
        try:
            self.kind = ReenactorKind((client.hello or {}).get("kind", "warp"))
        except ValueError:  # a server that names a kind this app does not know: no model controls apply
            log.warning("the server's reenactor kind %r is unknown here", (client.hello or {}).get("kind"))
        self._takes = set((client.hello or {}).get("options", []))  # the options the server's reenactor takes
        for name, value in self._options.items():
            if name in self._takes:
                client.send({"type": "set", "name": name, "value": value})

    def _received(self, output: Output) -> None:
        with self._cond:
            self._output = output
            self._cond.notify_all()

    def _message(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "stats":
            self._stats[message["out_pts"]] = message
            if len(self._stats) > 200:
                self._stats.pop(next(iter(self._stats)))
        elif kind == "error":
            log.info("server: %s", message.get("message"))
            self._last_error = str(message.get("message"))

    @property
    def connected(self) -> bool:
        client = self._client
        return client is not None and client.pc is not None and client.pc.connectionState == "connected"

    def _reconnect_soon(self) -> None:
        if self._reconnecting or self._closed:
            return
        self._reconnecting = True

        async def again() -> None:
            try:
                while not self._closed:
                    old, self._client = self._client, None
                    if old is not None:
                        await old.close()
                    try:
                        await self._connect()
                        if self._target is not None:
                            await self._send_target(self._target)
                        log.info("reconnected to %s", self.url)
                        return
                    except MimicError as exc:
                        log.info("reconnecting to %s: %s", self.url, exc)
                        await asyncio.sleep(RECONNECT_S)
            finally:
                self._reconnecting = False

        asyncio.run_coroutine_threadsafe(again(), self._loop)

    # ------------------------------------------------------------------ Reenactor interface

    def describe(self) -> str:
        return f"remote · {self.server_line}"

    @property
    def output_size(self) -> tuple[int, int]:
        output = self._output
        if output is None:
            return 512, 512
        h, w = output.image.shape[:2]
        return w, h

    def set_target(self, target: TargetSpec, progress: ProgressFn | None = None,
                   cancel: threading.Event | None = None) -> None:
        """Send the target to the server (a portrait as PNG, a latent file as it is, a random seed)."""
        if progress is not None:
            progress(0.0, "sending the target to the server")
        if self._client is None:
            raise MimicError(f"not connected to {self.url}")
        self._call(self._send_target(target), timeout=self._timeout_s * 6)
        self._target = target
        if progress is not None:
            progress(1.0, "target ready")

    async def _send_target(self, target: TargetSpec) -> None:
        client = self._client
        if client is None:
            raise MimicError(f"not connected to {self.url}")
        if target.kind == "random":
            client.send({"type": "target", "kind": "random", "seed": int(target.seed)})
            return
        if target.kind == "latent" and target.path is not None:
            data, kind = Path(target.path).read_bytes(), "latent"
        elif target.image is not None:
            import cv2

            ok, png = cv2.imencode(".png", cv2.cvtColor(target.image, cv2.COLOR_RGB2BGR))
            data, kind = png.tobytes(), "image"
        else:
            raise MimicError("the target has no image or latent file")
        try:
            await client.upload_target(data, kind)
        except RefusedError as exc:
            raise MimicError(str(exc).split(": ", 1)[-1]) from None

    def set_option(self, name: str, value: Any) -> bool:
        names = PAPER_APP_OPTIONS if "paste_back" in self._takes else WARP_APP_OPTIONS  # the server's model's panel
        protocol_name = names.get(name)
        if protocol_name is None or protocol_name not in self._takes:
            return False
        self._options[protocol_name] = value
        client = self._client
        if client is not None and self.connected:
            self._loop.call_soon_threadsafe(client.send, {"type": "set", "name": protocol_name, "value": value})
        return True

    def reset_neutral(self) -> None:
        client = self._client
        if client is not None and self.connected:
            self._loop.call_soon_threadsafe(client.send, {"type": "neutral"})

    def drive(self, frame: np.ndarray) -> DriveResult:
        if not self.connected:
            self._reconnect_soon()
            raise MimicError(f"lost the connection to {self.url}; reconnecting")
        t = time.perf_counter()
        h, w = frame.shape[:2]
        self._track.push(np.ascontiguousarray(frame[: h - h % 2, : w - w % 2]))  # 4:2:0 needs even sides
        pushed = time.monotonic()
        with self._cond:
            fresh = self._cond.wait_for(lambda: self._closed or (self._output is not None
                                                                 and self._output.pts != self._returned_pts), PACE_S)
            output = self._output
        if self._closed:
            raise MimicError("the remote session is closed")
        if not fresh or output is None:
            last = self._last_fresh or self._connected_at
            limit = OUTPUT_WAIT_S if self._last_fresh else FIRST_OUTPUT_WAIT_S
            if time.monotonic() - last <= limit:
                raise NotReady("waiting for the server's next output")
            if self._last_error:
                raise MimicError(f"server: {self._last_error}")
            raise MimicError(f"no output from {self.url} for {limit:g} s")
        self._last_fresh = time.monotonic()
        self._returned_pts = output.pts
        stats = next((self._stats[p] for p in (output.pts, output.pts - 1, output.pts + 1) if p in self._stats), None)
        timings = {"remote": (time.perf_counter() - t) * 1000}
        lag_ms = 0.0
        if stats is not None:
            sent = self._track.sent_at(stats.get("in_pts"))
            if sent is not None:
                self.latency_ms = (output.received - sent) * 1000
                timings["round_trip"] = self.latency_ms
                lag_ms = max(0.0, (pushed - sent) * 1000)
            timings["server"] = float(stats.get("server_ms", 0.0))
            self._face = bool(stats.get("face", True))
        self._last_error = None
        return DriveResult(image=output.image, face_found=self._face, timings_ms=timings, lag_ms=lag_ms)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._cond:
            self._cond.notify_all()  # a drive() waiting for an output returns now
        client = self._client
        if client is not None:
            try:
                self._call(client.close(), timeout=5)
            except Exception:
                log.debug("closing the remote session failed", exc_info=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


class RemoteFactory:
    """A reenactor factory (the app's `factory(weights, progress)`) whose reenactors are the server at
    `url`: model packs are the server's business. `local` is the factory to go back to."""

    def __init__(self, url: str, token: str, local=None) -> None:
        self.url = url
        self._token = token
        self.local = local

    def __call__(self, weights: Path | None = None, progress: ProgressFn | None = None) -> RemoteReenactor:
        if progress is not None:
            progress(0.0, f"connecting to {self.url}")
        return RemoteReenactor(self.url, self._token)
