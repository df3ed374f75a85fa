"""Safe output files: what a command writes never replaces anything but a regular file, and appears whole.

`check_output(path)` refuses a target that exists and is not a regular file (a folder, a device such
as /dev/full, a FIFO, a socket; symlinks are followed) and a folder that is missing or not writable,
each with one line. `replacing(path)` yields a temporary path in the same folder; when the block ends
without an error the temporary file is renamed over `path` (atomic on one file system), otherwise it
is removed and `path` is left as it was. A full disk or a vanished folder becomes one `OutputFileError`.
"""
from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from engine.errors import OutputFileError

_KINDS = {stat.S_IFDIR: "a folder", stat.S_IFCHR: "a device", stat.S_IFBLK: "a device", stat.S_IFIFO: "a FIFO (pipe)",
          stat.S_IFSOCK: "a socket"}


# The image types the commands write (engine.media.video_io.write_image: OpenCV's encoders).
IMAGE_OUTPUT_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def check_output(path: Path | str, suffixes: tuple[str, ...] | None = None, what: str = "") -> Path:
    """`path` if a command may write it (absent or a regular file, in a writable folder); OutputFileError if not.
    `suffixes`: the file types the command writes (".png", …), checked case-insensitively; `what`: "image", …
    for the message."""
    path = Path(path)
    target = f"{what} {path}" if what else str(path)
    _check_target(path, target)  # first: a folder given for a file is named as one
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise OutputFileError(f"cannot write {target}: expected a {' / '.join(suffixes)} file")
    _probe(path.parent, target)
    return path


def _check_target(path: Path, target: str) -> None:
    """What is at `path` now: nothing or a regular file, in an existing folder."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    except NotADirectoryError:
        raise OutputFileError(f"cannot write {target}: {path.parent} is not a folder") from None
    except OSError as exc:
        raise OutputFileError(f"cannot write {target}: {describe_os_error(exc)}") from None
    if mode is not None and not stat.S_ISREG(mode):
        found = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
        raise OutputFileError(f"cannot write {target}: it is {found}; give the path of a file to write")
    if not path.parent.is_dir():
        raise OutputFileError(f"cannot write {target}: the folder {path.parent} does not exist")


def _probe(folder: Path, target: str) -> None:
    """Create and remove a file in `folder`: the one test of writability that holds for root, read-only
    mounts and pseudo file systems alike."""
    _temporary(folder, target, ".mimic-probe.", "").unlink()


def _temporary(folder: Path, target: str, prefix: str, suffix: str) -> Path:
    try:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    except OSError as exc:
        reason = "it accepts no new files" if exc.errno == errno.ENOENT else describe_os_error(exc)
        raise OutputFileError(f"cannot write {target}: the folder {folder} is not writable ({reason})") from None
    os.close(fd)
    return Path(name)


@contextlib.contextmanager
def replacing(path: Path | str, suffixes: tuple[str, ...] | None = None, what: str = "") -> Iterator[Path]:
    """Write to the yielded temporary path (same folder and suffix); it replaces `path` on success."""
    path = Path(path)
    target = f"{what} {path}" if what else str(path)
    _check_target(path, target)  # first: a folder given for a file is named as one
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise OutputFileError(f"cannot write {target}: expected a {' / '.join(suffixes)} file")
    tmp = _temporary(path.parent, target, f".{path.stem[:40]}.", f".part{path.suffix}")  # tests writability too
    try:
        yield tmp
        _keep_mode(tmp, path)
        _check_target(path, target)  # again: something may have appeared at `path` meanwhile
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputFileError(f"cannot write {target}: {describe_os_error(exc)}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_bytes(path: Path | str, data: bytes, suffixes: tuple[str, ...] | None = None, what: str = "") -> Path:
    """`data` as the whole new content of `path`, via `replacing`."""
    with replacing(path, suffixes, what) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def _keep_mode(tmp: Path, path: Path) -> None:
    """mkstemp makes 0600 files; give the new file the old one's mode, or the umask's."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    os.chmod(tmp, mode)


def describe_os_error(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return "the disk is full (or the file size limit was reached)"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "permission denied (the folder is not writable)"
    if exc.errno == errno.ENOENT:
        return "the folder does not exist (any more)"
    return exc.strerror or type(exc).__name__
