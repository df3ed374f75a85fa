"""benchmarks/warp_stages.py's signals from a MediaPipe mesh (no dlib needed): they move as dlib's do, are
scale-free, and the warp exposes the mesh it draws."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.warp_stages import MESH_BROWS, mesh_signals
from engine.media.video_io import read_image
from engine.reenactor import TargetSpec
from engine.warp import WarpConfig, WarpReenactor
from engine.warp.mesh import LID_PAIRS


def test_mesh_signals_follow_a_blink_and_a_brow_raise_and_ignore_scale(neutral: np.ndarray) -> None:
    rest = mesh_signals(neutral)
    assert 0.15 < rest["eye_l"] < 0.6 and 0.15 < rest["eye_r"] < 0.6, rest
    assert 0.0 < rest["pitch"] < 1.0 and rest["brows"] > 0, rest
    scaled = neutral.copy()
    scaled[:, :2] = 2.5 * scaled[:, :2] + 40.0
    assert all(abs(mesh_signals(scaled)[k] - v) < 1e-9 for k, v in rest.items())
    wink = neutral.copy()
    for upper, lower in LID_PAIRS[:7]:  # the image-left eye shut
        wink[upper, :2] = wink[lower, :2] = (neutral[upper, :2] + neutral[lower, :2]) / 2
    shut = mesh_signals(wink)
    assert shut["eye_l"] < 0.2 * rest["eye_l"] and abs(shut["eye_r"] - rest["eye_r"]) < 1e-9
    raised = neutral.copy()
    raised[list(MESH_BROWS), 1] -= 0.1 * np.ptp(neutral[:, 0])  # brows up by a tenth of the face's width
    assert mesh_signals(raised)["brows"] > rest["brows"] + 0.1


def test_the_warp_exposes_the_mesh_it_draws(fixtures_dir: Path, neutral: np.ndarray, closing) -> None:
    warp = closing(WarpReenactor(WarpConfig(smoothing=0.0)))
    assert warp.animated_mesh is None
    warp.set_target(TargetSpec.from_image(read_image(fixtures_dir / "portraits" / "astronaut.png")))
    warp.animate(warp.target, neutral, {})
    assert warp.animated_mesh.shape == (478, 2)
    assert np.abs(warp.animated_mesh - warp.target.mesh[:, :2]).max() < 1e-6  # at rest: the target's own mesh
