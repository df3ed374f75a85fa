"""What several test modules build the same way: the wait bound, a tiny model pack, a main window, driving data.

Test modules import from here (and from checkpoint_writers / audio_server), never from each other
(tests/test_layers.py checks it). Heavy imports (torch, Qt, MediaPipe) happen inside the builders, so a test
module that needs only a constant pays for nothing else.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from app.gui.main_window import MainWindow
    from app.gui.settings import AppSettings
    from models.paper import PaperModel

LONG = 60_000  # ms: the upper bound of every GUI wait on a busy 2-core machine (never a speed assertion)

MOUTH_OPEN_FRAME = 60  # the fixture clip's widest-open mouth (carphone_pristine.mp4)


# ------------------------------------------------------------------------------------------ weights


def tiny_pack(folder: Path) -> tuple[Path, PaperModel]:
    """A Mimic pack (folder/tiny.safetensors) imported from tiny random weights written in the published
    formats (best_model.pt, restyle.pt), and the paper model it holds."""
    from engine.runtime.weights import import_weights
    from tests.checkpoint_writers import tiny_inverter, tiny_paper, write_paper, write_restyle

    model = tiny_paper()
    inverter = tiny_inverter(model.decoder)
    pack = folder / "tiny.safetensors"
    import_weights(write_paper(folder / "best_model.pt", model), write_restyle(folder / "restyle.pt", inverter), out=pack)
    return pack, model


# ------------------------------------------------------------------------------------------ windows

OPEN_WINDOWS: list[Any] = []


def keep_until_teardown(window: Any) -> Any:
    """Hold `window` until the end of the current test, then close it (tests/conftest.py does it).

    A window that is garbage-collected without being closed leaves its session running, and its
    MediaPipe and torch threads then abort the process at exit ("terminate called without an active
    exception") after every test passed. The strong reference here keeps it until it is closed.
    """
    OPEN_WINDOWS.append(window)
    return window


def close_open_windows() -> None:
    """Close every window kept by keep_until_teardown (closeEvent stops its session)."""
    if not OPEN_WINDOWS:
        return
    from PyQt6 import sip

    while OPEN_WINDOWS:
        window = OPEN_WINDOWS.pop()
        if not sip.isdeleted(window):  # qtbot may have closed and deleted it already
            window.close()


def open_window(qtbot, settings: AppSettings, source: Path, factory=None, audio: str | None = None,
                frames: int = 3) -> MainWindow:
    """The main window on `source` (a clip as the camera), shown, closed at the end of the test; returns once
    its first reenactor is in place and the driver preview has shown `frames` frames.

    factory: the reenactor factory (default: the app's own); audio: LaunchOptions.audio.
    """
    from app.gui.main_window import LaunchOptions, MainWindow, default_reenactor_factory

    window = MainWindow(LaunchOptions(source=str(source), audio=audio), settings,
                        reenactor_factory=factory or default_reenactor_factory)
    qtbot.addWidget(window)
    keep_until_teardown(window)
    window.show()
    qtbot.waitUntil(lambda: window.session.state.reenactor is not None, timeout=LONG)
    qtbot.waitUntil(lambda: window.view_panel.driver_view.frames_shown >= frames, timeout=LONG)
    return window


# ------------------------------------------------------------------------------------------ driving data


def extreme_meshes(neutral: np.ndarray) -> dict[str, np.ndarray]:
    """Driver meshes far beyond anything a face does, built from a real neutral mesh [478, 3]."""
    from engine.warp.mesh import EYE_LIDS, LIP_PAIRS, RIGID

    centre = neutral[list(RIGID)].mean(0)
    height = float(np.ptp(neutral[:, 1]))
    below_mouth = neutral[:, 1] > neutral[[61, 291], 1].mean()
    rng = np.random.default_rng(0)

    def rotated(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
        a, b, c = np.radians([yaw_deg, pitch_deg, roll_deg])
        ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
        rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
        rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
        return (neutral - centre) @ (rz @ rx @ ry).T + centre

    jaw = neutral.copy()
    jaw[below_mouth, 1] += 0.6 * height
    squeezed = neutral.copy()
    for upper, lower in EYE_LIDS:
        squeezed[upper, 1] += 3 * (neutral[lower, 1] - neutral[upper, 1])
    pressed = neutral.copy()
    for upper, lower in LIP_PAIRS:
        pressed[lower, 1] -= 0.1 * height
    shifted = rotated(0, 0, 45) * 1.6
    return {
        "jaw dropped": jaw, "lids past each other": squeezed, "lips pressed through": pressed,
        "yaw 60": rotated(60, 0, 0), "pitch -45": rotated(0, -45, 0), "roll 45, zoom, shift": shifted,
        "noise": neutral + rng.normal(0, 0.05 * height, neutral.shape),
    }


def clip_with_clicks(path: Path, seconds: float, flashes: list[float], size: tuple[int, int] = (64, 48)) -> None:
    """A 30 fps clip (size: width, height) with white frames and clicks in its own audio track at the same
    media times."""
    import av

    rate = 44100
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=30, options={"tune": "zerolatency"})
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        audio = container.add_stream("aac", rate=rate)
        audio.layout = "mono"
        sound = np.zeros(round(seconds * rate), np.float32)
        for f in flashes:
            sound[round(f * rate):round(f * rate) + 90] = 0.8
        for i in range(round(seconds * 30)):
            white = any(abs(i / 30 - f) < 1 / 60 for f in flashes)
            frame = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), 255 if white else 0, np.uint8), "rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, 30)
            container.mux(video.encode(frame))
        for i in range(0, len(sound), 1024):
            chunk = av.AudioFrame.from_ndarray(sound[None, i:i + 1024], format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts, chunk.time_base = rate, i, Fraction(1, rate)
            container.mux(audio.encode(chunk))
        container.mux(video.encode(None))
        container.mux(audio.encode(None))
