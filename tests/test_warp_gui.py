"""The retargeting panel: sliders and eye contact reach the running warp, are saved, restored and reset."""
from __future__ import annotations

from pathlib import Path

from PyQt6.QtCore import QSettings

from app.gui.main_window import MainWindow
from app.gui.panels.retarget import STEPS
from app.gui.settings import AppSettings
from engine.warp import WarpReenactor
from engine.warp.retarget import Retargeting
from tests.support import LONG, open_window


def test_retargeting_controls_reach_the_warp_are_saved_and_reset(qtbot, settings, clip, tmp_path: Path) -> None:
    window: MainWindow = open_window(qtbot, settings, clip)
    panel = window.retarget_panel
    warp = window.session.state.reenactor
    assert isinstance(warp, WarpReenactor)
    assert warp.retargeting == Retargeting()  # the defaults were sent at once
    panel.sliders["expression"].setValue(STEPS // 4)  # 0 … 2: 0.5
    panel.sliders["eyes"].setValue(STEPS)  # -1 … 1: 1.0
    panel.sliders["mouth"].setValue(0)
    panel.sliders["head"].setValue(STEPS)
    panel.eye_contact.setChecked(True)
    assert warp.retargeting == Retargeting(expression=0.5, head=2.0, eyes=1.0, mouth=0.0, eye_contact=True)
    saved = AppSettings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    assert saved.option("expression", 1.0) == 0.5 and saved.option("eye_contact", False) is True
    panel.reset()
    assert warp.retargeting == Retargeting()
    assert {k: window.session.state.options[k] for k in ("expression", "head", "eyes", "mouth", "eye_contact")} == \
        {"expression": 1.0, "head": 1.0, "eyes": 0.0, "mouth": 1.0, "eye_contact": False}


def test_saved_controls_are_restored_at_the_next_launch(qtbot, settings, clip) -> None:
    settings.set_option("mouth", 1.5)
    settings.set_option("eye_contact", True)
    window: MainWindow = open_window(qtbot, settings, clip)
    assert window.retarget_panel.sliders["mouth"].value() == round(1.5 / 2 * STEPS)
    assert window.retarget_panel.eye_contact.isChecked()
    qtbot.waitUntil(lambda: window.session.state.reenactor.retargeting.mouth == 1.5, timeout=LONG)
    assert window.session.state.reenactor.retargeting.eye_contact
