"""The terminal as a user reads it: native libraries' start-up noise kept out, error lines on a line of their own.

MediaPipe (TensorFlow Lite, absl, glog) and OpenCV's libpng write to the process's stderr from C++:
``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.``, ``WARNING: All log messages before
absl::InitializeLog() …``, ``W0000 00:00:… inference_feedback_manager.cc:114] …``, ``libpng warning:
iCCP: …`` — four or more lines on every run that say nothing to a user. `quiet_native_logs` first
sets the libraries' own log levels (for the versions that read them), then, since this MediaPipe's
absl logging reads none, passes file descriptor 2 through a filter that drops exactly those lines and
forwards everything else at once (progress bars included). `-v` keeps everything.

`LineStart` tracks whether stderr is at the start of a line, so that an `error:` line never starts
after a progress bar's carriage return on the same terminal line.
"""
from __future__ import annotations

import os
import re
import sys
import threading
from typing import TextIO

# Environment settings read by glog / TensorFlow (Lite) when they load: warnings and below off.
QUIET_ENV = {"GLOG_minloglevel": "2", "TF_CPP_MIN_LOG_LEVEL": "3"}
VERBOSE_ENV = {"GLOG_minloglevel": "0", "TF_CPP_MIN_LOG_LEVEL": "0"}
NOISE = re.compile(
    rb"^(?:[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.\-/]+:\d+\] "  # absl/glog INFO and WARNING lines
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|INFO: Created TensorFlow Lite (?:XNNPACK )?delegate for CPU"
    rb"|libpng warning: )"
)
HELD = (b"I", b"W", b"l")  # an unfinished line starting so may be noise: held until its end (or HOLD_MAX bytes)
HOLD_MAX = 400


def set_native_log_env(verbose: bool) -> None:
    """The native libraries' own log levels; call before MediaPipe loads. An explicit setting wins."""
    for name, value in (VERBOSE_ENV if verbose else QUIET_ENV).items():
        os.environ.setdefault(name, value)


class NativeLogFilter:
    """Routes file descriptor 2 through a pipe; a thread forwards every line except NOISE to the real stderr."""

    def __init__(self) -> None:
        self._saved: int | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        sys.stderr.flush()
        read, write = os.pipe()
        self._saved = os.dup(2)
        os.dup2(write, 2)
        os.close(write)
        self._thread = threading.Thread(target=self._forward, args=(read, self._saved), name="mimic-stderr",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Restore stderr after forwarding everything written so far."""
        if self._saved is None:
            return
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(self._saved, 2)  # closes the pipe's last write end: the thread reads to the end and stops
        if self._thread is not None:
            self._thread.join(5.0)
        os.close(self._saved)
        self._saved = None

    @staticmethod
    def _forward(read: int, out: int) -> None:
        pending = b""
        while True:
            try:
                chunk = os.read(read, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            pending += chunk
            lines = pending.split(b"\n")
            pending = lines.pop()
            kept = [line + b"\n" for line in lines if not NOISE.match(line)]
            if pending and (pending[:1] not in HELD or len(pending) > HOLD_MAX):
                kept.append(pending)  # a progress bar's "\r…": shown at once
                pending = b""
            if kept:
                _write_all(out, b"".join(kept))
        if pending and not NOISE.match(pending):
            _write_all(out, pending)
        os.close(read)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        try:
            data = data[os.write(fd, data):]
        except OSError:
            return


def quiet_native_logs(verbose: bool) -> NativeLogFilter | None:
    """Set the libraries' log levels and, unless `verbose` or stderr is not the process's own (a test's
    capture), start the filter; the caller stops it at the end."""
    set_native_log_env(verbose)
    if verbose or sys.stderr is not sys.__stderr__:
        return None
    try:
        sys.__stderr__.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    log_filter = NativeLogFilter()
    log_filter.start()
    return log_filter


class LineStart:
    """Wraps a text stream and remembers whether the last character written ended a line."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.at_line_start = True

    def write(self, text: str) -> int:
        if text:
            self.at_line_start = text.endswith("\n")
        return self._stream.write(text)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def print_error(message: str) -> None:
    """One `error:` line on stderr, at the start of a line (after a progress bar: on the next one)."""
    stream = sys.stderr
    lead = "" if getattr(stream, "at_line_start", True) else "\n"
    print(f"{lead}error: {message}", file=stream, flush=True)
