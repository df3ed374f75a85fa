"""One inference thread for every session: the newest frame of each, never a queue.

    session slots (one frame each, latest wins) ──▶ Scheduler thread ──▶ Backend.run(jobs) ──▶ Client.deliver

Each round takes the newest frame of every session that has one (at most `max_batch`, starting after
the session served first last round, so every session gets its turn). A backend that batches waits up
to `wait_ms` for more sessions' frames before it runs; a stalled client simply has no frame and never
holds the others up. Frames overwritten in a slot before the thread took them are dropped and counted.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

from engine.errors import MimicError
from engine.reenactor import DriveResult, Reenactor
from engine.server.config import BatchSettings

log = logging.getLogger(__name__)

T = TypeVar("T")
STREAMING_WINDOW_S = 0.1  # a session whose last frame is older than this is not waited for (stalled)


class Slot(Generic[T]):
    """One item, latest wins (engine.live.Mailbox without blocking: the scheduler watches many)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._item: T | None = None
        self.dropped = 0  # items overwritten before they were taken
        self.puts = 0

    def put(self, item: T) -> None:
        with self._lock:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self.puts += 1

    def take(self) -> T | None:
        with self._lock:
            item, self._item = self._item, None
            return item

    @property
    def full(self) -> bool:
        return self._item is not None


@dataclass
class Arrival:
    """A camera frame as it arrived from the network."""

    frame: Any  # av.VideoFrame (decoded by the worker thread, not the event loop)
    pts: int | None  # its presentation time as the client stamped it (RTP clock, from the first frame)
    arrived: float  # monotonic s


@dataclass
class Job:
    client: "Client"
    reenactor: Reenactor
    frame: np.ndarray  # RGB uint8 [H, W, 3]
    arrival: Arrival
    started: float  # monotonic s: taken from the slot
    timings_ms: dict[str, float] = field(default_factory=dict)


class Client(Protocol):
    """What the scheduler needs of a session."""

    slot: Slot[Arrival]
    last_arrival: float  # monotonic s of its newest frame (0: none yet)

    def ready_reenactor(self) -> Reenactor | None:
        """Its reenactor once its target is set (None: not yet; its frames wait in the slot)."""
        ...

    def before_drive(self, reenactor: Reenactor) -> None:
        """Runs on the scheduler thread right before each drive (e.g. a neutral re-take asked for)."""
        ...

    def deliver(self, job: Job, result: DriveResult | None, error: str | None) -> None:
        """The output of one frame (or why there is none); must not block."""
        ...


class Backend(Protocol):
    """Runs the reenactor for a batch of jobs (one per session)."""

    batched: bool  # whether run() gains from several jobs at once (the scheduler then waits for more)

    def describe(self) -> str:
        ...

    def run(self, jobs: list[Job]) -> list[DriveResult | MimicError]:
        """One result (or a per-job error) per job, in order."""
        ...


class Scheduler:
    """The inference thread shared by every session."""

    def __init__(self, backend: Backend, batch: BatchSettings = BatchSettings()) -> None:
        self.backend = backend
        self.batch = batch
        self._clients: list[Client] = []
        self._cond = threading.Condition()
        self._stop = False
        self._next = 0  # where the next round starts (round robin)
        self._thread: threading.Thread | None = None
        self._running = threading.Lock()  # held while a round runs
        self.rounds = 0
        self.batch_sizes: dict[int, int] = {}  # batch size → rounds run with it

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="mimic-server-inference", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def add(self, client: Client) -> None:
        with self._cond:
            self._clients.append(client)

    def remove(self, client: Client) -> None:
        """Stop serving `client`; returns once no round drives its reenactor any more (blocks: call it
        off the event loop), so the reenactor may then be closed."""
        with self._cond:
            if client in self._clients:
                self._clients.remove(client)
        with self._running:
            return

    def notify(self) -> None:
        """A frame arrived (any thread)."""
        with self._cond:
            self._cond.notify()

    def _ready(self) -> list[Client]:
        n = len(self._clients)
        order = [self._clients[(self._next + i) % n] for i in range(n)]
        return [c for c in order if c.slot.full and c.ready_reenactor() is not None]

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._stop or bool(self._ready()), timeout=0.1)
                if self._stop:
                    return
                ready = self._ready()
                if not ready:
                    continue
                if self.backend.batched and len(ready) < self.batch.max_batch:
                    now = time.monotonic()
                    waiting = sum(1 for c in self._clients if c.ready_reenactor() is not None
                                  and now - c.last_arrival < STREAMING_WINDOW_S)
                    if len(ready) < waiting:  # others may be a frame away: give them a few ms
                        deadline = time.monotonic() + self.batch.wait_ms / 1000.0
                        while len(ready) < waiting and (left := deadline - time.monotonic()) > 0:
                            self._cond.wait(left)
                            ready = self._ready()
                chosen = ready[: self.batch.max_batch]
                self._next = (self._clients.index(chosen[-1]) + 1) % len(self._clients)
                self._running.acquire()  # before the list lock is released: remove() waits for this round
            try:
                self._run(chosen)
            finally:
                self._running.release()

    def _run(self, clients: list[Client]) -> None:
        jobs = []
        for client in clients:
            arrival, reenactor = client.slot.take(), client.ready_reenactor()
            if arrival is None or reenactor is None:
                continue
            started = time.monotonic()
            t = time.perf_counter()
            try:
                frame = arrival.frame.to_ndarray(format="rgb24") if hasattr(arrival.frame, "to_ndarray") \
                    else np.asarray(arrival.frame)
            except Exception as exc:  # a frame the decoder handed over but cannot be converted
                client.deliver(Job(client, reenactor, np.zeros((1, 1, 3), np.uint8), arrival, started), None,
                               f"unreadable frame: {exc}")
                continue
            job = Job(client, reenactor, frame, arrival, started, {"convert": (time.perf_counter() - t) * 1000})
            client.before_drive(reenactor)
            jobs.append(job)
        if not jobs:
            return
        self.rounds += 1
        self.batch_sizes[len(jobs)] = self.batch_sizes.get(len(jobs), 0) + 1
        try:
            results = self.backend.run(jobs)
        except Exception as exc:  # a bug must not end the thread every session depends on
            log.exception("inference failed")
            results = [MimicError(f"reenactor failed: {exc}")] * len(jobs)
        for job, result in zip(jobs, results):
            try:
                if isinstance(result, Exception):
                    job.client.deliver(job, None, str(result))
                else:
                    job.client.deliver(job, result, None)
            except Exception:
                log.exception("delivering a frame failed")
