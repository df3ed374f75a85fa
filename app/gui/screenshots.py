"""Screenshots of the main window's states for the docs (docs/app.md) (run under a real X server, e.g. Xvfb).

    xvfb-run -s "-screen 0 1600x1000x24" .venv/bin/python -m app.gui.screenshots CLIP PORTRAIT docs/media \
        [--pack PACK]

States (docs/media/state-*.png): first launch (no target), live with the landmark warp (landmarks on),
no face in view, recording (side by side), the smallest window (900x600, recording still on), the
window at 1600x1000, and with --pack the paper model live.
Settings go to a temporary file, so the user's own settings are untouched.
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
from PyQt6.QtCore import QSettings, Qt, QTimer
from PyQt6.QtGui import QImage

from app.gui.app import create_app
from app.gui.main_window import MIN_SIZE, LaunchOptions, MainWindow
from app.gui.settings import AppSettings
from engine.media.video_io import H264Writer, VideoReader
from engine.runtime.threads import reserve_cpu_for_live

log = logging.getLogger(__name__)

WIDTH = 1280  # saved width of each screenshot (px)


def faceless_clip(clip: Path, out: Path) -> Path:
    """The clip's top-left corner (car ceiling and window), scaled up: a driver that shows no face."""
    with VideoReader(clip) as video:
        frames = [cv2.resize(f[:44, :54], (176, 144)) for f in video]
    with H264Writer.constant_rate(out, 30, (176, 144)) as writer:
        for frame in frames:
            writer.write(frame)
    return out


def _save_small_png(image: QImage, path: Path) -> None:
    """A 256-colour PNG: a fraction of the size of a full-colour one, hardly different for a UI."""
    from PIL import Image

    rgb = image.convertToFormat(QImage.Format.Format_RGB888)
    pixels = np.frombuffer(rgb.constBits().asstring(rgb.sizeInBytes()), np.uint8)
    rows = pixels.reshape(rgb.height(), rgb.bytesPerLine())[:, : rgb.width() * 3]
    pixels = rows.reshape(rgb.height(), rgb.width(), 3)
    Image.fromarray(pixels).quantize(256, dither=Image.Dither.FLOYDSTEINBERG).save(path, optimize=True)


Step = tuple  # (delay in ms, condition to wait for or None, action)


def _steps(window: MainWindow, save, clip: Path, portrait: Path, no_face: Path, pack: Path | None) -> list[Step]:
    """What to do, in order: each step waits its delay, then until its condition holds (polled), then acts."""
    session, views = window.session, window.view_panel

    def shown(view, n: int = 8):
        start = view.frames_shown
        return lambda: view.frames_shown >= start + n

    live = lambda: session.state.live and not session.busy  # noqa: E731
    steps: list[Step] = [
        (4000, lambda: session.state.reenactor is not None, lambda: save("state-first-launch")),
        (200, None, lambda: session.choose_target_file(portrait)),
        (500, live, lambda: window.acts.landmarks.setChecked(True)),
        (1500, None, lambda: save("state-live-warp")),
        (200, None, lambda: window.acts.landmarks.setChecked(False)),
        (200, None, lambda: window.source_panel.use(str(no_face))),
        (3000, None, lambda: save("state-no-face")),
        (200, None, lambda: window.source_panel.use(str(clip))),
        (200, None, lambda: window.record_panel.side_by_side_box.setChecked(True)),
        (2500, None, lambda: window.acts.record.setChecked(True)),
        (3200, None, lambda: save("state-recording")),
        (200, None, lambda: window.resize(*MIN_SIZE)),
        (1500, None, lambda: save("state-small-window", MIN_SIZE[0])),
        (200, None, lambda: window.acts.record.setChecked(False)),
        (1000, None, lambda: window.setGeometry(0, 0, 1600, 1000)),
        (2000, None, lambda: save("state-1600x1000", 1600)),
        (200, None, lambda: window.resize(1440, 860)),
    ]
    if pack is not None:
        steps += [
            (500, None, lambda: session.load_model(pack)),
            (1000, lambda: session.state.model_pack == pack and live(), lambda: None),
            (3000, None, lambda: None),
            (0, shown(views.output_view), lambda: save("state-live-paper")),
        ]
    return steps + [(2000, None, lambda: window.close())]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", type=Path, help="driving video with a face")
    parser.add_argument("portrait", type=Path, help="target portrait")
    parser.add_argument("out", type=Path, help="folder for the PNGs")
    parser.add_argument("--pack", type=Path, help="a model pack: also the paper model live (state-live-paper)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    reserve_cpu_for_live()  # as `python -m app gui` does; torch is not loaded yet
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="mimic-shots-"))
    no_face = faceless_clip(args.clip, tmp / "no-face.mp4")

    app = create_app()
    settings = AppSettings(QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat))
    settings.output_dir = tmp / "recordings"
    settings.mirror = False
    window = MainWindow(LaunchOptions(source=str(args.clip)), settings)
    window.resize(1440, 860)
    window.show()

    def save(name: str, width: int = WIDTH) -> None:
        image = window.grab().toImage()
        if image.width() != width:
            image = image.scaledToWidth(width, Qt.TransformationMode.SmoothTransformation)
        path = args.out / f"{name}.png"
        _save_small_png(image, path)
        log.info("saved %s", path)

    steps = _steps(window, save, args.clip, args.portrait, no_face, args.pack) + [(500, None, app.quit)]

    def run(i: int = 0) -> None:
        if i < len(steps):
            delay, _, _ = steps[i]
            QTimer.singleShot(delay, lambda: when_ready(i))

    def when_ready(i: int) -> None:
        _, condition, action = steps[i]
        if condition is not None and not condition():
            QTimer.singleShot(200, lambda: when_ready(i))
            return
        action()
        run(i + 1)

    run()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
