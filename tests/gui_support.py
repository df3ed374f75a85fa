"""Windows the GUI tests open, closed after every test (tests/conftest.py does it).

A window that is garbage-collected without being closed leaves its session running, and its
MediaPipe and torch threads then abort the process at exit ("terminate called without an active
exception") after every test passed. Strong references here keep each window until it is closed.
"""
from __future__ import annotations

from typing import Any

OPEN_WINDOWS: list[Any] = []


def keep_until_teardown(window: Any) -> Any:
    """Hold `window` until the end of the current test, then close it (closeEvent stops its session)."""
    OPEN_WINDOWS.append(window)
    return window


def close_open_windows() -> None:
    from PyQt6 import sip

    while OPEN_WINDOWS:
        window = OPEN_WINDOWS.pop()
        if not sip.isdeleted(window):  # qtbot may have closed and deleted it already
            window.close()
