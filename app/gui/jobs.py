"""Background jobs for widgets outside the session (thumbnails, the import dialog), as Qt signals.

A `Job` is an `engine.session.Task` whose outcome arrives as signals on the GUI thread: the
same error handling (a user error is one line, a bug is a message, Cancelled is a cancel).
"""
from __future__ import annotations

from PyQt6.QtCore import QObject, pyqtSignal

from app.gui.bridge import QtPost
from engine.tasks import Task, Work


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
        self._post = QtPost()
        self._task = Task(name, work, self._post, self.succeeded.emit, self.failed.emit, self.cancelled.emit)
        self._task.on_progress = self.progress.emit
        self._task.on_ended = self._end
        self._done = False

    def start(self) -> "Job":
        Job._running.add(self)
        self._task.start()
        return self

    def cancel(self) -> None:
        self._task.cancel()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the work is done (shutdown and tests only); True when it is."""
        return self._task.wait(timeout)

    @property
    def done(self) -> bool:
        """The outcome has been delivered."""
        return self._done

    def _end(self) -> None:
        self._done = True
        self.finished.emit()
        Job._running.discard(self)
