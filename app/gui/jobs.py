"""Background jobs for the GUI: run a function on a worker thread, report back through Qt signals.

The GUI thread never runs model loading, inversion, encoding or file I/O that can take long;
it starts a `Job` and reacts to its signals (delivered on the GUI thread).
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from PyQt6.QtCore import QObject, pyqtSignal

from engine.errors import USER_ERRORS, Cancelled

log = logging.getLogger(__name__)

# work(progress, cancel) -> result; progress(fraction in [0, 1], message)
Work = Callable[[Callable[[float, str], None], threading.Event], Any]


class Job(QObject):
    """One piece of background work. Connect to the signals, then `start()`."""

    progress = pyqtSignal(float, str)
    succeeded = pyqtSignal(object)  # the work's return value
    failed = pyqtSignal(str)  # one line for the user
    cancelled = pyqtSignal()
    finished = pyqtSignal()  # after any of the three above

    _running: set["Job"] = set()  # keeps started jobs alive until they finish

    def __init__(self, name: str, work: Work) -> None:
        super().__init__()
        self.name = name
        self.cancel_event = threading.Event()
        self._work = work
        self._thread = threading.Thread(target=self._run, name=f"mimic-job-{name}", daemon=True)

    def start(self) -> "Job":
        Job._running.add(self)
        self.finished.connect(lambda: Job._running.discard(self))
        self._thread.start()
        return self

    def cancel(self) -> None:
        self.cancel_event.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the work is done (shutdown and tests only); True when it is."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def done(self) -> bool:
        return self._thread.ident is not None and not self._thread.is_alive()

    def _run(self) -> None:
        try:
            result = self._work(self.progress.emit, self.cancel_event)
        except Cancelled:
            self.cancelled.emit()
        except USER_ERRORS as exc:
            log.info("%s failed: %s", self.name, exc)
            self.failed.emit(str(exc))
        except Exception as exc:  # a bug: show it as a message, keep the app alive
            log.exception("%s failed", self.name)
            self.failed.emit(f"{self.name} failed unexpectedly: {type(exc).__name__}: {exc}")
        else:
            if self.cancel_event.is_set():
                self.cancelled.emit()
            else:
                self.succeeded.emit(result)
        self.finished.emit()
