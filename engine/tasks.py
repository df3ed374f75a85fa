"""Background work whose outcome comes back to an owner thread (the GUI thread, or a script's).

A `Task` runs `work(progress, cancel)` on a worker thread; its progress and its outcome are
*posted*: `post(call)` must run `call` later on the owner thread (a GUI posts into its event
loop; `EventQueue` does it for an owner thread without one). A user error (`engine.errors`) is
one line for the user, a bug is a message too, `Cancelled` is a cancel: the app keeps running.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any, Callable

from engine.errors import USER_ERRORS, Cancelled
from engine.reenactor import Reenactor

log = logging.getLogger(__name__)

# Runs a callable on the owner thread, later; callable from any thread.
Post = Callable[[Callable[[], None]], None]
# work(progress, cancel) -> result; progress(fraction in [0, 1], message)
Work = Callable[[Callable[[float, str], None], threading.Event], Any]


class Task:
    """Work on a worker thread whose outcome is posted to the owner thread.

    Exactly one of on_done(result), on_failed(message), on_cancelled() runs there, then on_ended().
    A result that arrives after cancel() goes to `discard` (on the worker thread) instead: a reenactor
    built for a load that was superseded is closed, not leaked.
    """

    def __init__(self, title: str, work: Work, post: Post, on_done: Callable[[Any], None],
                 on_failed: Callable[[str], None], on_cancelled: Callable[[], None] = lambda: None,
                 discard: Callable[[Any], None] = lambda result: None, show_progress: bool = False,
                 uses: Reenactor | None = None) -> None:
        self.title = title  # for the user, e.g. "Preparing astronaut.png"
        self.show_progress = show_progress  # a view shows a cancellable progress dialog for it
        self.uses = uses  # the reenactor the work calls into: it is closed only after the task ends
        self.cancel_event = threading.Event()
        self.on_progress: Callable[[float, str], None] = lambda fraction, message: None
        self.on_ended: Callable[[], None] = lambda: None
        self._work, self._post = work, post
        self._done, self._failed, self._cancelled, self._discard = on_done, on_failed, on_cancelled, discard
        self._thread = threading.Thread(target=self._run, name=f"mimic-task-{title[:24]}", daemon=True)

    def start(self) -> "Task":
        self._thread.start()
        return self

    def cancel(self) -> None:
        self.cancel_event.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the work is done (shutdown, retiring a reenactor, tests); True when it is."""
        if self._thread.ident is not None:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        outcome = self._outcome()
        self._post(lambda: (outcome(), self.on_ended()))

    def _outcome(self) -> Callable[[], None]:
        progress = lambda f, m: self._post(lambda: self.on_progress(f, m))  # noqa: E731
        try:
            result = self._work(progress, self.cancel_event)
        except Cancelled:
            return self._cancelled
        except USER_ERRORS as exc:
            log.info("%s failed: %s", self.title, exc)
            message = str(exc)
            return lambda: self._failed(message)
        except Exception as exc:  # a bug: a message for the user, the app keeps running
            log.exception("%s failed", self.title)
            message = f"{self.title} failed unexpectedly: {type(exc).__name__}: {exc}"
            return lambda: self._failed(message)
        if self.cancel_event.is_set():
            self._discard(result)
            return self._cancelled
        return lambda: self._done(result)


class EventQueue:
    """`post` for an owner thread without an event loop (scripts, tests): run what was posted with `pump`."""

    def __init__(self) -> None:
        self._calls: queue.Queue[Callable[[], None]] = queue.Queue()

    def post(self, call: Callable[[], None]) -> None:
        self._calls.put(call)

    def pump(self, until: Callable[[], bool] = lambda: False, timeout: float = 30.0) -> bool:
        """Run posted calls until `until()` holds or `timeout` s passed; whether it holds."""
        end = time.monotonic() + timeout
        while not until():
            left = end - time.monotonic()
            if left <= 0:
                return until()
            try:
                self._calls.get(timeout=min(left, 0.05))()
            except queue.Empty:
                pass
        return True
