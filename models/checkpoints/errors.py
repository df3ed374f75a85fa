"""Errors raised by checkpoint loading (torch-free so the app layer can import them)."""


class CheckpointError(Exception):
    """A checkpoint file is unreadable, of the wrong kind, or unsafe.

    The message is one line that names the file and what was expected.
    """


class UnsafePickleError(CheckpointError):
    """A pickle asked to call or import something outside the allow-list; nothing was executed."""
