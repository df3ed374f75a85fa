"""Shared test fixtures: the real faces in ../shared/fixtures (skipped when absent)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from engine.runtime.memory import keep_freed_memory  # noqa: E402
from tests.leak_check import (  # noqa: E402,F401  (the leak check's hooks)
    pytest_fixture_setup, pytest_runtest_call, pytest_runtest_setup, pytest_runtest_teardown,
)

keep_freed_memory()  # the allocator the app runs with (app.cli.main sets it first), before any thread

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures"
REFERENCE = ROOT.parent / "shared" / "reference"


@pytest.fixture(scope="session", autouse=True)
def _cache_dir(tmp_path_factory):
    """Compiled graphs, folded mappings and probes go to a folder of the run's own, never ~/.cache/mimic
    (a test that sets MIMIC_CACHE_DIR itself still wins)."""
    if "MIMIC_CACHE_DIR" not in os.environ:
        os.environ["MIMIC_CACHE_DIR"] = str(tmp_path_factory.mktemp("mimic-cache"))
        yield
        os.environ.pop("MIMIC_CACHE_DIR", None)
    else:
        yield


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """../shared/fixtures, or skip: the real-face fixtures live beside the project, never in it."""
    if not FIXTURES.is_dir():
        pytest.skip(f"real-face fixtures not found at {FIXTURES} (they live beside the project)")
    return FIXTURES


@pytest.fixture(scope="session")
def neutral(fixtures_dir: Path):
    """MediaPipe's mesh [478, 3] of the fixture clip's first frame: a driver at rest (its own pixels)."""
    import numpy as np

    from engine.face.landmarks import FaceMeshDetector, MeshConfig
    from engine.media.video_io import VideoReader

    with VideoReader(fixtures_dir / "video" / "carphone_pristine.mp4") as video:
        frame = next(iter(video))
    with FaceMeshDetector(MeshConfig(static_images=True)) as detector:
        return detector.detect(frame).points.astype(np.float64)


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """../shared/reference (state-dict manifests of the published checkpoints), or skip."""
    if not REFERENCE.is_dir():
        pytest.skip(f"checkpoint manifests not found at {REFERENCE}")
    return REFERENCE


@pytest.fixture
def clip(fixtures_dir: Path) -> Path:
    """The real talking-head clip (120 frames, 176x144), used as a driving video or a camera."""
    return fixtures_dir / "video" / "carphone_pristine.mp4"


@pytest.fixture
def portrait(fixtures_dir: Path) -> Path:
    """A public-domain 512x512 portrait, used as the target."""
    return fixtures_dir / "portraits" / "astronaut.png"


@pytest.fixture
def settings(tmp_path: Path):
    """The app's settings in a file of the test's own, recordings in its own folder."""
    from PyQt6.QtCore import QSettings

    from app.gui.settings import AppSettings

    settings = AppSettings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    settings.output_dir = tmp_path / "recordings"
    return settings


@pytest.fixture
def closing():
    """`closing(thing)` returns `thing` and closes it at the end of the test (a reenactor, a detector: what
    holds a MediaPipe graph); a test that leaves one open fails (tests/leak_check.py)."""
    held: list = []

    def keep(thing):
        held.append(thing)
        return thing

    yield keep
    for thing in reversed(held):
        thing.close()


@pytest.fixture(autouse=True)
def _close_gui_windows():
    """Close every window a GUI test kept (tests/support.py keep_until_teardown)."""
    yield
    support = sys.modules.get("tests.support")
    if support is not None:
        support.close_open_windows()


@pytest.fixture(scope="module")
def pulse():
    """A private PulseAudio server with a null sink (one per test module), or skip."""
    from tests.audio_server import PrivatePulse, PulseUnavailable

    try:
        with PrivatePulse() as server:
            yield server
    except PulseUnavailable as exc:
        pytest.skip(f"no audio server for the audio tests: {exc}")


def pytest_sessionfinish(session, exitstatus) -> None:
    """Stop the live loops and close the MediaPipe graphs tests left running, before the interpreter exits.

    The safety net behind tests/leak_check.py (which fails the test that leaked): it also catches what
    module- and session-scoped fixtures left open.

    A graph still running at exit has its worker threads torn down under it, and the process then
    aborts ("terminate called without an active exception") after every test passed; the app itself
    closes its graphs on exit (Reenactor.close). The count is reported so a leaking test can be found.
    """
    from tests.leak_check import close_everything_open

    for what, count in close_everything_open().items():  # first the live loops, then the graphs they used
        print(f"\nclosed {count} {what} by tests", file=sys.stderr)
