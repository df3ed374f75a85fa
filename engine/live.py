"""Live scheduling: capture and inference on their own threads, latest frame wins.

    source.read() ──capture thread──▶ Mailbox (one slot) ──inference thread──▶ reenactor.drive ──▶ on_result
                          └──▶ on_frame (smooth driver preview)                    └──▶ every FrameSink

The inference thread runs at a lower CPU priority (`yield_to_preview`): the preview never waits for the model.
The capture thread overwrites the single mailbox slot; the inference thread always takes
the newest frame, so when inference is slower than the camera, stale frames are dropped
(counted) instead of piling up: no queue can grow and the queueing delay stays below one
capture interval. End-to-end latency = capture timestamp → output ready, per frame.
Callbacks run on the worker threads; a GUI bridges them to its own thread (Qt signals).
"""
from __future__ import annotations

import collections
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable, Generic, Protocol, TypeVar

import numpy as np

from engine.media.camera import FrameSource, SourceStatus
from engine.errors import MimicError, NotReady
from engine.reenactor import DriveResult, Reenactor

log = logging.getLogger(__name__)

T = TypeVar("T")


class FrameSink(Protocol):
    """Anything the live loop hands each output to: the recorder, the virtual camera, …

    `submit` runs on the inference thread and must never block; it returns whether the frame was taken.
    """

    def submit(self, output: np.ndarray, t: float, driver: np.ndarray | None = None) -> bool:
        """`output`: RGB uint8 [H, W, 3]; `t`: its capture time (monotonic s); `driver`: the driving frame."""
        ...


INFERENCE_NICENESS = 5  # how much lower the inference thread's priority is than the capture and GUI threads


def yield_to_preview(niceness: int | None = None) -> None:
    """Lower the calling thread's CPU priority (Linux: per thread; its OpenMP and MediaPipe workers, which
    it starts, inherit it). On a CPU the model is busy all the time: this way the capture thread and the
    GUI always get their few milliseconds per frame, so the camera preview never slows down with the
    model, while the model still has every cycle they leave."""
    niceness = INFERENCE_NICENESS if niceness is None else niceness
    if niceness == 0 or not sys.platform.startswith("linux"):
        return  # elsewhere the priority is the whole process's
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + niceness)
    except (AttributeError, OSError) as exc:
        log.debug("could not lower the inference thread's priority: %s", exc)


class Mailbox(Generic[T]):
    """A single-slot, latest-wins hand-over: `put` replaces an unread item (which counts as dropped).

    Used between the capture and inference threads, and between the live loop and the GUI thread.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._full = False
        self._closed = False
        self.dropped = 0  # items overwritten before anyone took them
        self.max_depth = 0  # most items ever waiting at once (1 by construction; measured, not assumed)
        self.puts = 0  # items ever put
        self.puts_at_last_get = 0  # `puts` when the last item was taken: equals its number if it was the newest

    def put(self, item: T) -> bool:
        """Store `item`; True when the slot was empty (a taker that is not waiting must be told)."""
        with self._cond:
            was_empty = not self._full
            if self._full:
                self.dropped += 1
            self.puts += 1
            self._item, self._full = item, True
            self.max_depth = max(self.max_depth, self.depth)
            self._cond.notify()
            return was_empty

    def get(self, timeout: float | None = None) -> T | None:
        """The newest item (waits up to `timeout`; 0: does not wait), or None when closed, empty or timed out."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._full or self._closed, timeout):
                return None
            if not self._full:
                return None
            item, self._item, self._full = self._item, None, False
            self.puts_at_last_get = self.puts
            return item

    @property
    def depth(self) -> int:
        return int(self._full)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def reopen(self) -> None:
        with self._cond:
            self._closed, self._item, self._full = False, None, False


@dataclass
class Captured:
    seq: int  # capture counter (= the mailbox's put number)
    frame: np.ndarray  # RGB uint8 [H, W, 3], mirrored when the pipeline mirrors
    t: float  # monotonic capture time (s)


@dataclass
class LiveResult:
    seq: int  # which captured frame this is
    driver: np.ndarray  # the driving frame that was reenacted
    result: DriveResult
    captured_at: float  # monotonic seconds
    started_at: float  # inference took the frame from the mailbox
    done_at: float  # output ready
    newest_seq_at_start: int  # newest captured frame when inference took this one (== seq: nothing newer was skipped)

    @property
    def latency_ms(self) -> float:
        """End to end: capture → output ready (plus the reenactor's frames in flight, DriveResult.lag_ms)."""
        return (self.done_at - self.captured_at) * 1000.0 + self.result.lag_ms

    @property
    def queue_ms(self) -> float:
        """Time the frame waited in the mailbox."""
        return (self.started_at - self.captured_at) * 1000.0


@dataclass(frozen=True)
class LiveStats:
    fps: float  # outputs per second over the last two seconds
    capture_fps: float  # frames captured per second over the last two seconds
    latency_ms: float  # mean end-to-end latency over the last two seconds (0 when none)
    processed: int  # outputs produced since start
    dropped: int  # captured frames skipped because a newer one arrived first
    max_mailbox_depth: int


class _Rate:
    """Events per second and mean value over a sliding window.

    The rate is taken between the window's first and last event, not up to `now`, so that where the
    window's edges fall does not add or drop an event (a 29.97 fps file read as 30.5 fps): steady
    events give their own rate. Once no event has come for twice their usual interval (at least
    `STALL_S`), the time since the first one counts instead, so a stalled stream's rate falls."""

    STALL_S = 0.25

    def __init__(self, window_s: float = 2.0) -> None:
        self.window_s = window_s
        self._events: collections.deque[tuple[float, float]] = collections.deque()
        self._lock = threading.Lock()

    def add(self, t: float, value: float = 0.0) -> None:
        with self._lock:
            self._events.append((t, value))
            self._trim(t)

    def read(self, now: float) -> tuple[float, float]:
        with self._lock:
            self._trim(now)
            n = len(self._events)
            if n < 2:
                return 0.0, (self._events[0][1] if n else 0.0)
            first, last = self._events[0][0], self._events[-1][0]
            stalled = now - last > max(self.STALL_S, 2.0 * (last - first) / (n - 1))
            span = max((now if stalled else last) - first, 1e-6)
            return (n - 1) / span, sum(v for _, v in self._events) / n

    def _trim(self, now: float) -> None:
        while self._events and now - self._events[0][0] > self.window_s:
            self._events.popleft()


class LivePipeline:
    """Runs capture and inference threads; results arrive through callbacks on those threads.

    on_frame(frame, t):      every captured (mirrored) frame, for a smooth driver preview
    on_result(LiveResult):   every output
    on_status(SourceStatus): whenever the source's status changes (camera lost, back, …)
    on_error(message):       a drive() failure (the loop keeps running; repeated messages are sent once)
    sinks:                   every output also goes to each FrameSink added (recorder, virtual camera)
    """

    def __init__(
        self,
        on_result: Callable[[LiveResult], None],
        on_frame: Callable[[np.ndarray, float], None] | None = None,
        on_status: Callable[[SourceStatus], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        mirror: bool = False,
    ) -> None:
        self.on_result = on_result
        self.on_frame = on_frame
        self.on_status = on_status
        self.on_error = on_error
        self.mirror = mirror  # flip frames left-right before anything else sees them
        self._source: FrameSource | None = None
        self._reenactor: Reenactor | None = None
        self._source_lock = threading.Lock()
        self._mailbox: Mailbox[Captured] = Mailbox()
        self._stop = threading.Event()
        self._neutral = threading.Event()
        self._threads: list[threading.Thread] = []
        self._seq = 0
        self._processed = 0
        self._captures = _Rate()
        self._outputs = _Rate()
        self._last_status: SourceStatus | None = None
        self._last_error: str | None = None
        self._drive_lock = threading.Lock()  # held while a reenactor drives a frame
        self._sinks: dict[FrameSink, int] = {}  # sink → outputs it accepted
        self._sinks_lock = threading.Lock()

    # -------------------------------------------------------------- control (any thread)

    def add_sink(self, sink: FrameSink) -> None:
        """From the next output on, hand every output to `sink` too."""
        with self._sinks_lock:
            self._sinks.setdefault(sink, 0)

    def remove_sink(self, sink: FrameSink) -> int:
        """Stop feeding `sink` (no submit() of it runs after this returns); the outputs it accepted."""
        with self._sinks_lock:
            return self._sinks.pop(sink, 0)

    def accepted(self, sink: FrameSink) -> int:
        """Outputs `sink` accepted so far (0 once removed)."""
        with self._sinks_lock:
            return self._sinks.get(sink, 0)

    def release(self, reenactor: Reenactor) -> None:
        """Wait until no drive() of `reenactor` runs any more; call after replacing it, before closing it."""
        if reenactor is self._reenactor:
            raise ValueError("release() of the reenactor still in use: replace it first")
        with self._drive_lock:  # a drive() that had already taken the old reenactor ends first
            return

    @property
    def running(self) -> bool:
        return bool(self._threads)

    @property
    def source(self) -> FrameSource | None:
        return self._source

    def set_source(self, source: FrameSource | None) -> None:
        """Use another source; the pipeline owns it from now on and closes the previous one."""
        with self._source_lock:
            old, self._source = self._source, source
            self._last_status = None
        if old is not None and old is not source:
            old.close()

    @property
    def reenactor(self) -> Reenactor | None:
        return self._reenactor

    @reenactor.setter
    def reenactor(self, reenactor: Reenactor | None) -> None:
        """Takes effect with the next frame; None: capture only (driver preview, no output)."""
        self._reenactor = reenactor
        self._last_error = None

    def retake_neutral(self) -> None:
        """The next driving frame becomes the reenactor's neutral reference."""
        self._neutral.set()

    def start(self) -> None:
        if self._threads:
            return
        self._stop.clear()
        self._mailbox.reopen()
        self._threads = [
            threading.Thread(target=self._capture_loop, name="mimic-capture", daemon=True),
            threading.Thread(target=self._inference_loop, name="mimic-inference", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, close_source: bool = True, timeout: float = 5.0) -> None:
        """Stop both threads (waits for a drive() in progress) and close the source."""
        self._stop.set()
        self._mailbox.close()
        source = self._source
        if close_source and source is not None:
            source.close()  # unblocks a read() that is waiting
            self._source = None
        for thread in self._threads:
            thread.join(timeout)
            if thread.is_alive():
                log.warning("%s did not stop within %.0f s", thread.name, timeout)
        self._threads = []

    def stats(self) -> LiveStats:
        now = time.monotonic()
        capture_fps, _ = self._captures.read(now)
        fps, latency = self._outputs.read(now)
        return LiveStats(
            fps=min(fps, capture_fps) if capture_fps else fps,  # outputs are some of the captures: the rest is jitter
            capture_fps=capture_fps,
            latency_ms=latency,
            processed=self._processed,
            dropped=self._mailbox.dropped,
            max_mailbox_depth=self._mailbox.max_depth,
        )

    # -------------------------------------------------------------- threads

    def _capture_loop(self) -> None:
        mirrored: bool | None = None  # the mirror setting of the last frame handed over
        while not self._stop.is_set():
            with self._source_lock:
                source = self._source
            if source is None:
                self._stop.wait(0.05)
                continue
            got = source.read()
            self._report_status(source)
            if got is None:
                continue  # the source waits/retries itself; nothing to hand over
            frame, t = got
            mirror = self.mirror
            if mirror != mirrored:  # the driver's face flipped: its neutral is retaken (no jump in the output)
                if mirrored is not None:
                    self._neutral.set()
                mirrored = mirror
            if mirror:
                frame = np.ascontiguousarray(frame[:, ::-1])
            self._seq += 1
            self._captures.add(t)
            self._mailbox.put(Captured(self._seq, frame, t))
            if self.on_frame is not None:
                self.on_frame(frame, t)

    def _inference_loop(self) -> None:
        yield_to_preview()
        while not self._stop.is_set():
            item = self._mailbox.get(timeout=0.1)
            if item is None:
                continue
            started = time.monotonic()
            newest = self._mailbox.puts_at_last_get
            with self._drive_lock:
                result = self._drive(item.frame)
            if result is None:
                continue
            done = time.monotonic()
            self._processed += 1
            live = LiveResult(item.seq, item.frame, result, item.t, started, done, newest)
            self._outputs.add(done, live.latency_ms)
            self._last_error = None
            self._fan_out(live)
            self.on_result(live)

    def _drive(self, frame: np.ndarray) -> DriveResult | None:
        """One drive() of the current reenactor; None when there is none or it failed (reported)."""
        reenactor = self._reenactor
        if reenactor is None:
            return None
        try:
            if self._neutral.is_set():
                self._neutral.clear()
                reenactor.reset_neutral()
            return reenactor.drive(frame)
        except NotReady:  # nothing new yet (a remote reenactor): the next frame, no error
            return None
        except MimicError as exc:
            self._report_error(str(exc))
        except Exception as exc:  # a bug in a reenactor must not kill the live loop
            log.exception("drive failed")
            self._report_error(f"reenactor failed: {exc}")
        return None

    def _fan_out(self, live: LiveResult) -> None:
        with self._sinks_lock:
            for sink in self._sinks:
                try:
                    if sink.submit(live.result.image, live.captured_at, live.driver):
                        self._sinks[sink] += 1
                except Exception:  # a failing sink reports itself; the live loop goes on
                    log.exception("frame sink %s failed", type(sink).__name__)

    def _report_status(self, source: FrameSource) -> None:
        status = source.status
        if status != self._last_status:
            self._last_status = status
            if self.on_status is not None:
                self.on_status(status)

    def _report_error(self, message: str) -> None:
        if message != self._last_error:
            self._last_error = message
            log.warning("live: %s", message)
            if self.on_error is not None:
                self.on_error(message)
