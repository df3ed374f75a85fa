"""Kept for branches written before tests/support.py: the window helpers live there now."""
from tests.support import OPEN_WINDOWS, close_open_windows, keep_until_teardown  # noqa: F401
