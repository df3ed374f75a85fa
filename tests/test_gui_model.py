"""The window with the paper pipeline: import original checkpoints (tiny random weights), load, random identity."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from PyQt6.QtCore import QTimer

from app.gui.import_dialog import ImportWeightsDialog
from app.gui.main_window import MainWindow, reenactor_factory_for
from engine.reenactor import ReenactorKind
from tests.checkpoint_writers import tiny_inverter, tiny_paper, write_paper, write_restyle
from tests.support import LONG, open_window


@pytest.fixture(scope="module")
def originals(tmp_path_factory) -> tuple[Path, Path]:
    """best_model.pt and restyle.pt in the published formats, holding tiny random networks."""
    folder = tmp_path_factory.mktemp("originals")
    model = tiny_paper()
    inverter = tiny_inverter(model.decoder)
    return write_paper(folder / "best_model.pt", model), write_restyle(folder / "restyle.pt", inverter)


@pytest.fixture
def window(qtbot, settings, clip, tmp_path, monkeypatch) -> MainWindow:
    monkeypatch.setenv("MIMIC_CACHE_DIR", str(tmp_path / "cache"))
    # eager: torch.compile's first-call tracing would dominate a test with a tiny model
    return open_window(qtbot, settings, clip, factory=reenactor_factory_for("eager", "cpu"))


def test_import_load_and_animate_a_random_identity(qtbot, window, originals, tmp_path) -> None:
    assert not window.target_panel.random_button.isEnabled()  # the warp cannot invent faces
    paper, restyle = originals
    dialog = ImportWeightsDialog(window)
    dialog.imported.connect(window.session.load_model)
    qtbot.addWidget(dialog)
    dialog.open()
    dialog.paper.edit.setText(str(paper))
    dialog.restyle.edit.setText(str(tmp_path / "missing.pt"))
    dialog.output.edit.setText(str(tmp_path / "tiny.safetensors"))
    dialog.import_button.click()
    qtbot.waitUntil(lambda: dialog._job is not None and dialog._job.done, timeout=LONG)
    qtbot.waitUntil(lambda: "missing.pt" in dialog.status.text(), timeout=LONG)  # a message, not a crash
    assert dialog.isVisible()

    dialog.restyle.edit.setText(str(restyle))
    with qtbot.waitSignal(dialog.imported, timeout=LONG) as imported:
        dialog.import_button.click()
    pack = imported.args[0]
    assert pack == tmp_path / "tiny.safetensors" and pack.is_file()

    qtbot.waitUntil(lambda: window.session.state.model_pack == pack, timeout=LONG)
    assert window.session.state.reenactor.kind == ReenactorKind.STYLEGAN
    assert window.device_chip.text() == window.session.state.reenactor.describe()
    assert window.target_panel.random_button.isEnabled()
    assert window.settings.model_pack == pack

    # A random identity is rendered and re-inverted on a worker thread while the GUI keeps ticking.
    ticks: list[float] = []
    timer = QTimer(interval=10, timeout=lambda: ticks.append(time.monotonic()))
    timer.start()
    with qtbot.waitSignal(window.target_applied, timeout=LONG):
        window.target_panel.random_button.click()
    timer.stop()
    gaps = [(b - a) * 1000 for a, b in zip(ticks, ticks[1:])]
    print(f"\nGUI ticks during a tiny-StyleGAN random identity: {len(ticks)}, longest gap {max(gaps, default=0):.0f} ms")
    assert max(gaps, default=0) < 100
    assert window.session.pipeline.reenactor is window.session.state.reenactor
    assert window.record_panel.record_button.isEnabled()
    qtbot.waitUntil(lambda: window.view_panel.output_view.frames_shown >= 2, timeout=LONG)  # the paper pipeline runs live
    assert window.session.latest.result.image.shape[1::-1] == window.session.state.reenactor.output_size


def test_a_wrong_file_as_model_pack_keeps_the_running_model(qtbot, window, originals) -> None:
    running = window.session.state.reenactor
    paper, _ = originals
    window.session.load_model(paper)  # an original checkpoint, not a pack
    qtbot.waitUntil(lambda: window.session.state.loading is None, timeout=LONG)
    assert window.view_panel.banner.kind == "error" and "best_model.pt" in window.view_panel.banner.text
    assert window.session.state.reenactor is running
