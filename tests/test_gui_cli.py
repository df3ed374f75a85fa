"""The app's start commands as README (Quick start) and docs/app.md write them, run as written
(offscreen), each quitting once the window is live.

`--screenshot` is the one flag added: it saves the window once the output shows frames and quits.
Each run uses its own settings folder, so the user's settings are untouched.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def readme_files(fixtures_dir: Path, tmp_path: Path) -> Path:
    """clip.mp4 and portrait.png, the names the docs use, in a folder of their own."""
    (tmp_path / "clip.mp4").symlink_to(fixtures_dir / "video" / "carphone_pristine.mp4")
    (tmp_path / "portrait.png").symlink_to(fixtures_dir / "portraits" / "astronaut.png")
    return tmp_path


def app_env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path / "config")}


def assert_live_screenshot(path: Path) -> None:
    with Image.open(path) as image:
        assert image.width >= 900 and image.height >= 600  # the whole window, not a placeholder
        colours = image.convert("RGB").resize((64, 40)).getcolors(64 * 40)
    assert colours is None or len(colours) > 200  # pictures in both views, not an empty window


def test_python_m_app_with_flags_and_no_command_opens_the_window(readme_files: Path) -> None:
    shot = readme_files / "window.png"
    out = subprocess.run(
        [sys.executable, "-m", "app", "--source", "clip.mp4", "--target", "portrait.png", "--screenshot", str(shot)],
        cwd=readme_files, env={**app_env(readme_files), "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=180,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert_live_screenshot(shot)


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_run_with_args_as_readme_writes_it(readme_files: Path) -> None:
    shot = readme_files / "window.png"
    args = f"--source {readme_files / 'clip.mp4'} --target {readme_files / 'portrait.png'} --screenshot {shot}"
    out = subprocess.run(["make", "run", f"ARGS={args}"], cwd=ROOT, env=app_env(readme_files),
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert_live_screenshot(shot)


def test_flags_alone_mean_the_window_and_a_word_stays_a_command(capsys) -> None:
    from app.cli import main, with_default_command

    assert with_default_command([]) == ["gui"]
    assert with_default_command(["-v", "--source", "a.mp4"]) == ["-v", "gui", "--source", "a.mp4"]
    assert with_default_command(["render", "--help"]) == ["render", "--help"]
    assert with_default_command(["--help"]) == ["--help"]
    with pytest.raises(SystemExit):
        main(["rendr", "x.mp4"])  # a typo of a command is named as one
    assert "invalid choice: 'rendr'" in capsys.readouterr().err
