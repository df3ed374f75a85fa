"""User-facing errors of the engine. Each message is one line the user can act on."""
from models.checkpoints.errors import CheckpointError, UnsafePickleError, one_line


class MimicError(Exception):
    """Base class of failures the user can fix; shown as one line, never a traceback."""

    def __init__(self, message: object = "") -> None:
        super().__init__(one_line(message))


class NoFaceError(MimicError):
    """No face was found where one is required (e.g. a target portrait)."""


class MediaError(MimicError):
    """A video/image/camera cannot be opened, read or written."""


class OutputFileError(MediaError):
    """An output path is not a file that may be written (a device, a folder, an unwritable place, a full disk)."""


class RuntimeUnavailableError(MimicError):
    """An optional runtime (CUDA, TensorRT, ONNX Runtime provider) was asked for but is not available."""


# Everything the CLI and GUI report as a message instead of a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (MimicError, CheckpointError, UnsafePickleError, OSError)


class Cancelled(MimicError):
    """The user cancelled a long operation (e.g. inverting a target)."""


class NotReady(MimicError):
    """No new output yet (a remote reenactor whose next frame is still on its way): the live loop
    skips the frame silently instead of reporting an error."""
