"""The desktop app's side: RemoteReenactor (a live server behind the Reenactor interface) and
`python -m app --remote URL`."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

pytest.importorskip("aiortc", reason="the remote mode needs aiortc (requirements.txt)")

from tests.server_support import TOKEN, ServerThread, clip_frames, need_network  # noqa: E402

pytestmark = pytest.mark.timeout(300)


def drive_until(reenactor, frames, outputs: int, limit_s: float = 120.0):
    """Drive at the camera's pace until `outputs` results came back (MimicErrors counted, not raised)."""
    from engine.errors import MimicError

    results, errors, k = [], [], 0
    deadline = time.monotonic() + limit_s
    while len(results) < outputs and time.monotonic() < deadline:
        try:
            results.append(reenactor.drive(frames[k % len(frames)]))
        except MimicError as exc:
            errors.append(str(exc))
            time.sleep(0.2)
        k += 1
        time.sleep(1 / 30)
    assert len(results) >= outputs, f"{len(results)} outputs; errors {errors[-3:]}"
    return results, errors


def test_remote_reenactor_animates_reconnects_and_reports_a_wrong_token(clip: Path, portrait: Path) -> None:
    need_network()
    from engine.errors import MimicError
    from engine.reenactor import Reenactor, TargetSpec, apply_option
    from engine.server.remote_reenactor import RemoteReenactor
    from engine.media.video_io import read_image

    frames = clip_frames(clip)
    server = ServerThread(None)
    try:
        with pytest.raises(MimicError, match="wrong token"):
            RemoteReenactor(server.url, "wrong-token-0123456789")
        remote = RemoteReenactor(server.url, TOKEN)
        try:
            assert isinstance(remote, Reenactor)
            assert remote.describe().startswith("remote · Landmark warp")
            remote.set_target(TargetSpec.from_image(read_image(portrait), portrait))
            assert apply_option(remote, "expression", 0.8) and not apply_option(remote, "no such option", 1)
            results, _ = drive_until(remote, frames, 15)
            assert results[-1].image.shape == (256, 256, 3) and any(r.face_found for r in results)
            assert remote.latency_ms is not None and "round_trip" in results[-1].timings_ms
            assert any(r.lag_ms > 0 for r in results)  # outputs show earlier frames: the live loop adds the lag
            server.stop()  # the server goes away …
            from engine.errors import NotReady

            failure = None
            for frame in frames * 3:  # NotReady while outputs may still come, then the loss is said
                try:
                    remote.drive(frame)
                except NotReady:
                    continue
                except MimicError as exc:
                    failure = str(exc)
                    break
            assert failure is not None and ("lost the connection" in failure or "no output" in failure), failure
            server.start()  # … and comes back on the same port: the remote reconnects, target included
            results, errors = drive_until(remote, frames, 10)
            assert results[-1].image.shape == (256, 256, 3)
            assert all("\n" not in e for e in errors)
        finally:
            remote.close()
    finally:
        server.close()


def test_python_m_app_remote_runs_the_window_on_the_servers_output(clip: Path, portrait: Path,
                                                                  tmp_path: Path) -> None:
    """`python -m app --remote URL --token-file F …`: the live window animates through the server; a
    wrong token is one error line."""
    need_network()
    import os
    import subprocess
    import sys

    from PIL import Image

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "PYTHONPATH": str(root)}
    token_file, wrong = tmp_path / "token", tmp_path / "wrong"
    token_file.write_text(TOKEN)
    wrong.write_text("wrong-token-0123456789")
    server = ServerThread(None)
    try:
        shot = tmp_path / "window.png"
        out = subprocess.run([sys.executable, "-m", "app", "--remote", server.url, "--token-file", str(token_file),
                              "--source", str(clip), "--target", str(portrait), "--screenshot", str(shot)],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
        sessions_seen = server.server.scheduler.rounds
    finally:
        server.close()
    assert out.returncode == 0, out.stderr[-3000:]
    assert sessions_seen > 0  # the frames were animated by the server
    with Image.open(shot) as image:
        colours = image.convert("RGB").resize((64, 40)).getcolors(64 * 40)
        image.save(tmp_path / "kept.png")
    assert colours is None or len(colours) > 200
    refused = subprocess.run([sys.executable, "-m", "app", "--remote", "http://127.0.0.1:9", "--weights", "x.pt"],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and refused.stderr.startswith("error: ") and refused.stderr.count("\n") == 1


def test_file_remote_server_dialog_switches_the_window_to_a_server_and_back(qtbot, clip: Path, settings) -> None:
    """File → Remote server…: address and token (remembered) → the window animates on the server; a
    wrong token is a notice and the running model stays; Use landmark warp comes back to this machine."""
    need_network()
    from PyQt6.QtWidgets import QDialogButtonBox

    from app.gui.main_window import LaunchOptions, MainWindow, reenactor_factory_for

    server = ServerThread(None)
    window = MainWindow(LaunchOptions(source=str(clip)), settings, reenactor_factory_for("eager", "cpu"))
    qtbot.addWidget(window)
    try:
        window.show()
        qtbot.waitUntil(lambda: window.session.state.reenactor is not None, timeout=60_000)
        panel = window.model_panel

        def connect(token: str) -> None:
            panel.remote_dialog()
            dialog = panel.remote
            dialog.url_edit.setText(server.url)
            dialog.token_edit.setText(token)
            dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Ok).click()

        connect("wrong-token-0123456789")
        qtbot.waitUntil(lambda: window.session.state.loading is None, timeout=60_000)
        assert not window.session.state.reenactor.describe().startswith("remote")  # the local one stays
        connect(TOKEN)
        qtbot.waitUntil(lambda: window.session.state.reenactor.describe().startswith("remote · Landmark warp"),
                        timeout=60_000)
        assert settings.remote_url == server.url and settings.remote_token == TOKEN
        from PyQt6.QtWidgets import QLabel

        qtbot.waitUntil(lambda: any(label.text().startswith("remote · Landmark warp")
                                    for label in window.statusBar().findChildren(QLabel)), timeout=60_000)
        assert any(a.text() == "Remote server…" for m in window.menuBar().actions() for a in m.menu().actions())
        panel._load_local(None)
        qtbot.waitUntil(lambda: window.session.state.reenactor is not None and
                        not window.session.state.reenactor.describe().startswith("remote"), timeout=60_000)
    finally:
        window.close()
        server.close()
