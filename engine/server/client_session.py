"""One client: its peer connection, its newest camera frame, its own reenactor state, its controls."""
from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Any, Callable

from aiortc import RTCPeerConnection

from engine.errors import MimicError
from engine.reenactor import DriveResult, Reenactor, TargetSpec
from engine.server import protocol
from engine.server.backends import ServerBackend
from engine.server.config import Limits
from engine.server.scheduler import Arrival, Job, Scheduler, Slot
from engine.server.tracks import OutputTrack, drain

log = logging.getLogger(__name__)


class ClientSession:
    """Lives from an accepted offer until its peer disconnects, fails, idles or the server stops.

    Threads: the event loop runs the network side (frames in, controls, output track); the scheduler
    thread runs `ready_reenactor`, `before_drive` and `deliver`, which only hand over (never block)."""

    def __init__(self, session_id: str, address: str, pc: RTCPeerConnection, backend: ServerBackend,
                 scheduler: Scheduler, limits: Limits, loop: asyncio.AbstractEventLoop,
                 on_closed: Callable[["ClientSession"], None]) -> None:
        self.id = session_id
        self.address = address
        self.pc = pc
        self.backend = backend
        self.scheduler = scheduler
        self.limits = limits
        self.loop = loop
        self.on_closed = on_closed
        self.slot: Slot[Arrival] = Slot()
        self.output = OutputTrack(on_sent=self._sent)
        self.channel = None
        self.reenactor: Reenactor = backend.new_reenactor()
        self._target_ready = False
        self._neutral = False
        self._tasks: list[asyncio.Task] = []
        self._arrivals: collections.deque[float] = collections.deque()
        self.last_activity = time.monotonic()
        self.last_arrival = 0.0  # the newest camera frame (monotonic s)
        self.created = time.monotonic()
        self.frames_in = 0
        self.refused_frames = 0  # over the frame size or rate limits
        self.processed = 0
        self.errors_sent = 0
        self._last_error: str | None = None
        self.closed = False

    # ------------------------------------------------------------------ network side (event loop)

    def attach_track(self, track) -> None:
        if track.kind == "video":
            self._tasks.append(self.loop.create_task(drain(track, self._arrived)))

    def attach_channel(self, channel) -> None:
        self.channel = channel
        channel.on("message", self._message)
        self.send(protocol.reply("hello", session=self.id, reenactor=self.backend.describe(),
                                 kind=self.backend.kind.value,
                                 options=list(self.backend.options), targets=list(self.backend.targets)))

    def _arrived(self, frame) -> None:
        now = time.monotonic()
        self.last_activity = now
        self.frames_in += 1
        while self._arrivals and now - self._arrivals[0] > 1.0:
            self._arrivals.popleft()
        if frame.width * frame.height > self.limits.max_frame_pixels:
            self._refuse(f"camera frames of {frame.width}x{frame.height} are over this server's limit "
                         f"of {self.limits.max_frame_pixels:,} pixels: dropped")
            return
        if len(self._arrivals) >= self.limits.max_frame_rate:
            self._refuse(f"more than {self.limits.max_frame_rate:g} frames/s: the extra frames are dropped")
            return
        self._arrivals.append(now)
        self.last_arrival = now
        self.slot.put(Arrival(frame, frame.pts, now))
        self.scheduler.notify()

    def _refuse(self, message: str) -> None:
        self.refused_frames += 1
        self.report(message)

    def _message(self, message: Any) -> None:
        self.last_activity = time.monotonic()
        try:
            control = protocol.parse_control(message, self.limits.max_control_bytes)
            self._apply(control)
        except protocol.ProtocolError as exc:
            self.errors_sent += 1
            self.send(protocol.error(str(exc)))
        except MimicError as exc:
            self.send(protocol.error(str(exc)))
        except Exception as exc:  # never a dead session over one message
            log.exception("control message failed")
            self.send(protocol.error(f"server error: {type(exc).__name__}"))

    def _apply(self, control: protocol.Control) -> None:
        if control.type == "ping":
            self.send(protocol.reply("pong", t=control.t))
            return
        if control.type == "neutral":
            self._neutral = True
        elif control.type == "set":
            if not self.backend.set_option(self.reenactor, control.name, control.value):
                raise MimicError(f"{control.name} does not apply to {self.reenactor.name}")
        elif control.type == "target":
            self.loop.create_task(self.set_target(TargetSpec.random(control.seed)))
            return  # answered when done
        self.send(protocol.reply("ok", of=control.type))

    async def set_target(self, target: TargetSpec, cleanup: Callable[[], None] | None = None) -> str | None:
        """Prepare `target` off the event loop; None when done, else the one-line reason (also sent)."""
        try:
            await self.loop.run_in_executor(None, self.reenactor.set_target, target)
        except MimicError as exc:
            self.send(protocol.error(f"target: {exc}"))
            return str(exc)
        except Exception as exc:
            log.exception("set_target failed")
            self.send(protocol.error(f"target: server error ({type(exc).__name__})"))
            return f"server error ({type(exc).__name__})"
        finally:
            if cleanup is not None:
                cleanup()
        self._target_ready = True
        self.send(protocol.reply("ok", of="target"))
        self.scheduler.notify()
        return None

    def target_ready(self) -> None:
        """Its reenactor came with a target (the server's default, prepared once)."""
        self._target_ready = True

    def send(self, text: str) -> None:
        channel = self.channel
        if channel is not None and channel.readyState == "open":
            try:
                channel.send(text)
            except Exception:  # a closing channel: the session is ending anyway
                log.debug("data channel send failed", exc_info=True)

    def report(self, message: str) -> None:
        """An error for the client, sent once per distinct message in a row (any thread)."""
        if message == self._last_error:
            return
        self._last_error = message
        self.loop.call_soon_threadsafe(self.send, protocol.error(message))

    def _sent(self, stats: dict[str, Any], pts: int) -> None:
        self.send(protocol.reply("stats", out_pts=pts, **stats))

    async def watch(self) -> None:
        """Close the session when its peer never connects, fails, or goes quiet."""
        while not self.closed:
            await asyncio.sleep(0.5)
            now = time.monotonic()
            state = self.pc.connectionState
            if state in ("failed", "closed"):
                reason = f"connection {state}"
            elif state != "connected" and now - self.created > self.limits.connect_timeout_s:
                reason = "never connected"
            elif now - self.last_activity > self.limits.idle_timeout_s:
                reason = "idle"
            else:
                continue
            log.info("session %s closed: %s", self.id, reason)
            await self.close()

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.output.stop()
        for task in self._tasks:
            task.cancel()
        try:
            await self.pc.close()
        except Exception:
            log.debug("closing the peer connection failed", exc_info=True)
        await self.loop.run_in_executor(None, self.scheduler.remove, self)  # no drive() of it runs after this
        await self.loop.run_in_executor(None, self.reenactor.close)
        self.on_closed(self)

    # ------------------------------------------------------------------ scheduler thread

    def ready_reenactor(self) -> Reenactor | None:
        return self.reenactor if self._target_ready and not self.closed else None

    def before_drive(self, reenactor: Reenactor) -> None:
        if self._neutral:
            self._neutral = False
            reenactor.reset_neutral()

    def deliver(self, job: Job, result: DriveResult | None, error: str | None) -> None:
        if result is None:
            self.report(error or "no output")
            return
        done = time.monotonic()
        self.processed += 1
        self._last_error = None
        stats = {
            "in_pts": job.arrival.pts,
            "stages_ms": {k: round(v, 2) for k, v in {**job.timings_ms, **result.timings_ms}.items()},
            "queue_ms": round((job.started - job.arrival.arrived) * 1000, 2),
            "server_ms": round((done - job.arrival.arrived) * 1000, 2),
            "dropped": self.slot.dropped + self.refused_frames,
            "processed": self.processed,
            "face": result.face_found,
        }
        self.loop.call_soon_threadsafe(self.output.push, result.image, stats)
