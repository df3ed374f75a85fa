"""The window's sound controls against a private PulseAudio: the microphone picker (persisted), the level
meter, and a recording made from the window with sound (the fixture clip as the camera, the landmark warp)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from app.gui.main_window import MainWindow
from engine.media.audio import FileAudio
from tests.audio_server import MIC, ClickPlayer
from tests.support import LONG, clip_with_clicks, open_window

ROOT = Path(__file__).resolve().parents[1]

def picker_values(window: MainWindow) -> list[str]:
    combo = window.record_panel.sound_combo
    return [combo.itemData(i) for i in range(combo.count())]


def pick(window: MainWindow, value: str) -> None:
    combo = window.record_panel.sound_combo
    index = combo.findData(value)
    assert index >= 0, f"{value!r} not in the picker: {picker_values(window)}"
    combo.setCurrentIndex(index)
    combo.activated.emit(index)


def test_picker_meter_and_persistence(qtbot, pulse, settings, fixtures_dir: Path) -> None:
    clip = fixtures_dir / "video" / "carphone_pristine.mp4"
    window = open_window(qtbot, settings, clip)  # first launch: the default microphone
    session, panel = window.session, window.record_panel
    qtbot.waitUntil(lambda: session.state.audio is not None and MIC in picker_values(window), timeout=LONG)
    assert picker_values(window)[:2] == ["none", "default"] and "source" in picker_values(window)  # a file source
    assert panel.level_meter.isVisibleTo(window)

    start = time.monotonic() + 0.2
    with ClickPlayer([start + 0.05 * k for k in range(120)]):  # 6 s of clicks, 20 a second
        qtbot.waitUntil(lambda: panel.level_meter.value() > 50, timeout=LONG)  # -30 dBFS or louder
    qtbot.waitUntil(lambda: panel.level_meter.value() < 20, timeout=LONG)  # silence again

    pick(window, "none")
    assert settings.audio == "none" and session.state.audio is None and session.state.audio_spec == "none"
    assert not panel.level_meter.isVisibleTo(window)
    window.close()

    again = open_window(qtbot, settings, clip)  # the choice is restored
    assert again.session.state.audio_spec == "none"
    assert again.record_panel.sound_combo.currentData() == "none"
    qtbot.waitUntil(lambda: MIC in picker_values(again), timeout=LONG)  # the microphone list comes in the background
    pick(again, MIC)
    qtbot.waitUntil(lambda: again.session.state.audio is not None, timeout=LONG)
    assert settings.audio == MIC
    again.close()


def test_recording_from_the_window_has_sound(qtbot, pulse, settings, fixtures_dir: Path) -> None:
    clip = fixtures_dir / "video" / "carphone_pristine.mp4"
    window = open_window(qtbot, settings, clip, audio=MIC)
    qtbot.waitUntil(lambda: window.session.state.audio is not None, timeout=LONG)
    qtbot.waitUntil(lambda: window.session.state.audio.blocks_captured > 0, timeout=LONG)
    with qtbot.waitSignal(window.target_applied, timeout=LONG):
        window.session.choose_target_file(fixtures_dir / "portraits" / "astronaut.png")
    window.acts.record.trigger()
    assert window.session.state.recorder is not None
    assert not window.record_panel.sound_combo.isEnabled()  # the sound does not change mid-recording
    start = time.monotonic() + 0.3
    with ClickPlayer([start + 0.5 * k for k in range(5)]):
        qtbot.wait(3000)
    with qtbot.waitSignal(window.recording_saved, timeout=LONG) as saved:
        window.acts.record.trigger()
    stats = saved.args[0]
    assert stats.error is None and stats.audio_s > 2.0
    assert "of sound" in window.view_panel.banner.text
    with av.open(str(stats.path)) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]
        sound = sum(frame.samples for frame in container.decode(audio=0)) / 48000
    assert sound == pytest.approx(stats.duration_s, abs=0.6)
    window.close()


def test_readme_command_records_with_the_clips_own_sound(tmp_path: Path) -> None:
    """docs/app.md: `.venv/bin/python -m app gui --source clip.mp4 --audio source` (+ --screenshot to quit)."""
    clip_with_clicks(tmp_path / "clip.mp4", 2.0, [0.5, 1.5])
    shot = tmp_path / "window.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "app", "gui", "--source", "clip.mp4", "--audio", "source",
                          "--screenshot", str(shot)], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    assert shot.is_file() and "error" not in out.stderr.lower()


def test_launch_option_source_records_the_clips_own_sound(qtbot, settings, tmp_path: Path) -> None:
    """What `--audio source` hands the window: the video source's own track becomes the sound."""
    clip = tmp_path / "clip.mp4"
    clip_with_clicks(clip, 2.0, [0.5, 1.5])
    window = open_window(qtbot, settings, clip, audio="source")
    qtbot.waitUntil(lambda: window.session.state.audio is not None, timeout=LONG)
    assert isinstance(window.session.state.audio, FileAudio)
    assert window.record_panel.sound_combo.currentData() == "source"
    qtbot.waitUntil(lambda: window.record_panel.level_meter.value() > 50, timeout=LONG)  # the clip's clicks
    window.close()
