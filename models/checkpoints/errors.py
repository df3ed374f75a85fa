"""Errors raised by checkpoint loading (torch-free so the app layer can import them)."""

MAX_MESSAGE_CHARS = 400


def one_line(message: object) -> str:
    """A message as one line of bounded length: text from a file (a tensor name, a manifest field) may hold
    newlines or control characters, or be megabytes long."""
    text = str(message)
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:MAX_MESSAGE_CHARS * 2])
    return text if len(text) <= MAX_MESSAGE_CHARS else text[:MAX_MESSAGE_CHARS - 1] + "…"


class CheckpointError(Exception):
    """A checkpoint file is unreadable, of the wrong kind, or unsafe.

    The message is one line that names the file and what was expected.
    """

    def __init__(self, message: object = "") -> None:
        super().__init__(one_line(message))


class UnsafePickleError(CheckpointError):
    """A pickle asked to call or import something outside the allow-list; nothing was executed."""
