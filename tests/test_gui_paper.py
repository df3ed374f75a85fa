"""The paper-model panel: paste-back, motion, smoothing and expression reach the StyleGAN reenactor, persisted."""
from __future__ import annotations

from pathlib import Path

import pytest
from PyQt6.QtCore import QSettings
from PyQt6.QtWidgets import QSlider

from app.gui.main_window import MainWindow, reenactor_factory_for
from app.gui.settings import AppSettings
from tests.support import LONG, open_window, tiny_pack


@pytest.fixture(scope="module")
def pack(tmp_path_factory) -> Path:
    return tiny_pack(tmp_path_factory.mktemp("weights"))[0]


def open_paper_window(qtbot, settings, clip) -> MainWindow:
    # eager: torch.compile's first-call tracing would dominate a test with a tiny model
    return open_window(qtbot, settings, clip, factory=reenactor_factory_for("eager", "cpu"))


def test_paper_controls_drive_the_stylegan_reenactor(qtbot, settings, tmp_path, fixtures_dir, pack, monkeypatch) -> None:
    monkeypatch.setenv("MIMIC_CACHE_DIR", str(tmp_path / "cache"))
    clip = fixtures_dir / "video" / "carphone_pristine.mp4"
    window = open_paper_window(qtbot, settings, clip)
    panel = window.paper_panel
    assert not panel.controls.isVisibleTo(window)  # the landmark warp runs: nothing to set
    with qtbot.waitSignal(window.target_applied, timeout=LONG):
        window.session.choose_target_file(fixtures_dir / "portraits" / "astronaut.png")
    window.session.load_model(pack)
    qtbot.waitUntil(lambda: window.session.state.model_pack == pack and window.session.pipeline.reenactor is not None,
                    timeout=LONG)
    reenactor = window.session.state.reenactor
    assert panel.paste_back.isVisibleTo(window) and reenactor.output_size == (512, 512)  # pasted back into the portrait

    panel.paste_back.setChecked(False)
    assert reenactor.output_size == (64, 64 - 240 * 64 // 1024)  # the generated crop
    panel.motion.setCurrentIndex(panel.motion.findData("absolute"))
    panel.smoothing.findChild(QSlider).setValue(0)
    panel.expression.findChild(QSlider).setValue(10)  # 0.5
    assert (reenactor.options.motion, reenactor.options.smoothing, reenactor.options.expression) == ("absolute", 0.0, 0.5)
    assert reenactor.motion.config.mode == "absolute"
    panel.paste_back.setChecked(True)
    assert reenactor.output_size == (512, 512)

    qtbot.waitUntil(lambda: reenactor.motion.neutral is not None, timeout=LONG)  # frames with a face arrived
    panel.motion.setCurrentIndex(panel.motion.findData("relative"))
    retaken: list[int] = []
    reset = reenactor.motion.reset_neutral
    reenactor.motion.reset_neutral = lambda: (retaken.append(reenactor.motion._neutral_count), reset())
    window.acts.neutral.trigger()  # re-take neutral: reaches the reenactor on the inference thread
    qtbot.waitUntil(lambda: bool(retaken) and reenactor.motion.neutral is not None, timeout=LONG)

    again = AppSettings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    assert again.option("paper_paste_back", False) is True and again.option("paper_motion", "") == "relative"
    assert again.option("paper_smoothing", 1.0) == 0.0 and again.option("paper_expression", 1.0) == 0.5


def test_only_the_running_reenactors_options_show(qtbot, settings, tmp_path, fixtures_dir, pack, monkeypatch) -> None:
    """Paper-model controls while the paper's model runs, retargeting while the warp runs; else one line why."""
    monkeypatch.setenv("MIMIC_CACHE_DIR", str(tmp_path / "cache"))
    window = open_paper_window(qtbot, settings, fixtures_dir / "video" / "carphone_pristine.mp4")
    paper, retarget = window.paper_panel, window.retarget_panel

    def shown(panel) -> tuple[bool, bool]:
        return panel.controls.isVisibleTo(window), panel.reason.isVisibleTo(window)

    assert shown(paper) == (False, True) and "model pack" in paper.reason.text()
    assert shown(retarget) == (True, False)
    window.session.load_model(pack)
    qtbot.waitUntil(lambda: window.session.state.model_pack == pack and not window.session.busy, timeout=LONG)
    assert shown(paper) == (True, False)
    assert shown(retarget) == (False, True) and "landmark warp" in retarget.reason.text()
    assert "\n" not in retarget.reason.text() and "\n" not in paper.reason.text()  # one line (wrapped by width)
    window.acts.use_warp.trigger()
    qtbot.waitUntil(lambda: window.session.state.model_pack is None and not window.session.busy, timeout=LONG)
    assert shown(paper) == (False, True) and shown(retarget) == (True, False)
