"""What a newcomer meets: hints that say what is going on, nothing clipped or overlapping, fullscreen that fills.

Offscreen (no window manager): the window has to hold its own minimum size and fill the screen itself.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from itertools import combinations
from pathlib import Path

import pytest
from PyQt6.QtCore import QRect, Qt
from PyQt6.QtWidgets import QApplication, QCheckBox, QComboBox, QLabel, QListWidget, QPushButton, QToolButton, QWidget

from app.gui.main_window import MIN_SIZE, LaunchOptions, MainWindow
from app.gui.panels.source import NO_CAMERA, source_hint
from app.gui.panels.view import ESC_HINT
from tests.support import LONG, open_window

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def window(qtbot, settings, clip) -> MainWindow:
    window = open_window(qtbot, settings, clip)
    qtbot.waitUntil(lambda: window.session.state.cameras_listed, timeout=LONG)
    return window


def live(qtbot, window: MainWindow, portrait: Path) -> None:
    with qtbot.waitSignal(window.target_applied, timeout=LONG):
        window.session.choose_target_file(portrait)
    qtbot.waitUntil(lambda: window.view_panel.output_view.frames_shown >= 3, timeout=LONG)


def in_window(widget: QWidget) -> QRect:
    return QRect(widget.mapTo(widget.window(), widget.rect().topLeft()), widget.size())


def test_the_source_hint_follows_the_source(window, clip) -> None:
    assert window.source_panel.hint.text() == f"Playing {clip.name} in a loop as the camera."
    assert source_hint("0", [0], True) == ""
    assert source_hint("0", [], True) == NO_CAMERA
    assert source_hint("2", [0], True).startswith("Camera 2 is not connected")
    assert source_hint("0", [], False) == "Looking for cameras…"
    window.source_panel.use("0")  # camera 0, there or not: the hint tells which
    cameras = [c.index for c in window.session.state.cameras]
    assert window.source_panel.hint.text() == source_hint("0", cameras, True)
    assert (window.source_panel.hint.text() == NO_CAMERA) == (not cameras)


def test_the_source_list_shows_its_whole_text(window, clip, tmp_path) -> None:
    combo = window.source_panel.combo
    arrow = 30  # px of the drop-down arrow and padding
    window.source_panel.use("0")  # "Camera 0 (not found)" on a machine without one
    assert combo.fontMetrics().horizontalAdvance(combo.currentText()) <= combo.width() - arrow
    long_name = tmp_path / "a driving clip with a rather long name, recorded on a phone.mp4"
    long_name.symlink_to(clip)
    assert window.source_panel.use(str(long_name))
    assert combo.fontMetrics().horizontalAdvance(combo.currentText()) <= combo.width() - arrow  # elided…
    assert "…" in combo.currentText() and combo.itemData(combo.currentIndex(), Qt.ItemDataRole.ToolTipRole) \
        == str(long_name)  # …with the whole path in the tooltip


def test_record_reads_stop_while_recording(qtbot, window, portrait) -> None:
    live(qtbot, window, portrait)
    button = window.record_panel.record_button
    assert "Record" in button.text()
    window.acts.record.trigger()
    assert window.session.state.recorder is not None and "Stop" in button.text() and button.isChecked()
    with qtbot.waitSignal(window.recording_saved, timeout=LONG):
        button.click()
    assert "Record" in button.text() and not button.isChecked()


def test_a_banner_never_puts_the_caption_over_the_picture(qtbot, window, portrait) -> None:
    live(qtbot, window, portrait)
    window.resize(*MIN_SIZE)
    window.view_panel.banner.show_message("error", "a long error message " * 6)
    qtbot.wait(50)
    for view in (window.view_panel.output_view, window.view_panel.driver_view):
        assert view.caption_rect().bottom() <= view.image_rect().top()


def test_file_dialog_toolbar_icons_are_visible_on_the_dark_theme(qtbot) -> None:
    """Each toolbar button, as drawn with the app's style sheet, shows light line art in its middle."""
    from app.gui.dialogs import file_dialog
    from app.gui.theme import apply_dark_theme

    apply_dark_theme(QApplication.instance())
    dialog = file_dialog(None, "Open", str(Path.home()))
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    buttons = [b for b in dialog.findChildren(QToolButton) if b.objectName().endswith("Button")]
    assert {b.objectName() for b in buttons} >= {"backButton", "forwardButton", "toParentButton", "newFolderButton"}
    for button in buttons:
        image = button.grab().toImage()
        w, h = image.width(), image.height()
        middle = [image.pixelColor(x, y).lightness()
                  for x in range(w // 4, 3 * w // 4) for y in range(h // 4, 3 * h // 4)]
        edge = [image.pixelColor(x, h // 2).lightness() for x in (1, w - 2)]
        light = [v for v in middle if v > max(edge) + 100]
        assert len(light) >= 8, f"{button.objectName()}: no icon drawn ({len(light)} light pixels)"
        assert len(light) < 0.9 * len(middle), f"{button.objectName()}: a filled square, not an icon"


def test_fullscreen_fills_the_screen_and_says_how_to_leave(qtbot, window, portrait) -> None:
    live(qtbot, window, portrait)
    window.acts.fullscreen.trigger()
    view = window.view_panel.fullscreen_view
    qtbot.waitUntil(lambda: view.frames_shown > 0, timeout=LONG)
    assert view.geometry() == window.screen().geometry()  # no window manager makes it so: the app does
    assert view.footer == ESC_HINT
    qtbot.keyClick(view, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: window.view_panel.fullscreen_view is None, timeout=LONG)
    assert not window.acts.fullscreen.isChecked()


def test_the_smallest_window_has_nothing_overlapping_or_clipped(qtbot, window, portrait) -> None:
    live(qtbot, window, portrait)
    window.resize(600, 400)  # smaller than allowed: no window manager stops this, the window does
    qtbot.wait(50)
    assert (window.width(), window.height()) == MIN_SIZE
    window.acts.record.trigger()  # the REC chip shows in the toolbar too
    qtbot.wait(300)
    leaves = (QLabel, QPushButton, QComboBox, QCheckBox, QListWidget, QToolButton)
    for panel in (window.source_panel, window.target_panel, window.model_panel, window.record_panel,
                  window.view_panel):
        widgets = [w for w in panel.findChildren(QWidget) if isinstance(w, leaves) and w.isVisible()
                   and w.parent() is panel]
        for a, b in combinations(widgets, 2):
            assert not in_window(a).intersects(in_window(b)), f"{a.text() if hasattr(a, 'text') else a} overlaps " \
                                                              f"{b.text() if hasattr(b, 'text') else b}"
        for w in widgets:  # nothing cut off at the sidebar's or the window's right edge
            assert in_window(w).right() < window.width()
    for button in window.view_panel.findChildren(QToolButton):  # the toolbar's labels are whole
        assert button.width() >= button.sizeHint().width(), button.text()
    bar = window.statusBar()
    assert in_window(bar).bottom() < window.height() and bar.isVisible()
    for chip in (window.fps_chip, window.latency_chip, window.source_chip, window.device_chip):
        assert chip.isVisible() and in_window(bar).contains(in_window(chip)), chip.text()
        assert chip.width() >= chip.fontMetrics().horizontalAdvance(chip.text())  # elided, never cut
    window.acts.record.trigger()


def test_the_window_comes_back_where_it_was(qtbot, window, settings, clip) -> None:
    window.resize(900, 750)  # within the offscreen screen (800x800): restoring keeps a window on its screen
    qtbot.wait(50)
    window.close()
    again = MainWindow(LaunchOptions(source=str(clip)), settings)
    qtbot.addWidget(again)
    again.show()
    assert (again.width(), again.height()) == (900, 750)
    again.close()


XVFB_SCRIPT = """
import sys
from pathlib import Path
from PyQt6.QtCore import QSettings, QTimer
from app.gui.app import create_app
from app.gui.main_window import LaunchOptions, MainWindow
from app.gui.settings import AppSettings

app = create_app()
settings = AppSettings(QSettings(sys.argv[2], QSettings.Format.IniFormat))
window = MainWindow(LaunchOptions(source=sys.argv[1]), settings)
window.show()

def report():
    view = window.view_panel.fullscreen_view
    g, s = view.geometry(), view.screen().geometry()
    print(f"fullscreen {g.width()}x{g.height()} screen {s.width()}x{s.height()}", flush=True)
    window.close()
    app.quit()

QTimer.singleShot(1500, lambda: window.acts.fullscreen.setChecked(True))
QTimer.singleShot(3500, report)
sys.exit(app.exec())
"""


@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="xvfb-run is not installed (scripts/setup.sh test)")
def test_fullscreen_fills_an_x_screen_without_a_window_manager(clip, tmp_path) -> None:
    out = subprocess.run(
        ["xvfb-run", "-a", "-s", "-screen 0 1280x800x24", sys.executable, "-c", XVFB_SCRIPT, str(clip),
         str(tmp_path / "settings.ini")],
        cwd=ROOT, env={**os.environ, "QT_QPA_PLATFORM": "xcb", "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "fullscreen 1280x800 screen 1280x800" in out.stdout, out.stdout
