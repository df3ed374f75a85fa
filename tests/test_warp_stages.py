"""benchmarks/warp_stages.py without dlib: its signals from a MediaPipe mesh move as dlib's do and are
scale-free, the warp exposes the mesh it draws, the self-reenactment's residuals ignore the head's pose, and
its MediaPipe stand-ins for dlib's 68 points come in dlib's order."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.quality_bench import residual
from benchmarks.warp_stages import DLIB_GROUPS, MESH_AS_DLIB, MESH_BROWS, MESH_EYES, brow_picture, in_rest_axes, \
    mesh_signals
from engine.media.video_io import read_image
from engine.reenactor import TargetSpec
from engine.warp import WarpConfig, WarpReenactor
from engine.warp.mesh import LID_PAIRS, MOUTH_CORNERS


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


def _turned(points: np.ndarray, degrees: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    a = np.radians(degrees)
    rotation = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return scale * points @ rotation.T + np.array(shift)


def test_the_residual_ignores_the_head_pose_and_keeps_the_expression(neutral: np.ndarray) -> None:
    face = neutral[:468, :2]
    moved = _turned(face, 25.0, 1.7, (30.0, -12.0))
    assert np.abs(residual(moved, face)).max() < 1e-6  # a turned, scaled, shifted copy: no expression
    smiling = face.copy()
    smiling[list(MOUTH_CORNERS), 1] -= 4.0  # the mouth's corners up by 4 px
    res = residual(_turned(smiling, -10.0, 0.8, (5.0, 5.0)), face)
    assert np.abs(res[list(MOUTH_CORNERS)]).max() > 3.0  # most of it stays on the corners
    others = np.setdiff1d(np.arange(468), MOUTH_CORNERS)
    assert np.linalg.norm(res[others], axis=1).max() < 0.2


def test_residuals_are_compared_in_the_resting_face_axes(neutral: np.ndarray) -> None:
    rest = neutral[:468, :2]
    offsets = np.zeros_like(rest)
    offsets[:, 0] = 1.0  # one pixel to the face's right
    turned = _turned(rest, 90.0, 2.0, (100.0, 0.0))  # the head rolled a quarter turn and twice as near
    back = in_rest_axes(_turned(offsets, 90.0, 2.0, (0.0, 0.0)), turned, rest)
    assert np.allclose(back, offsets, atol=1e-9)


def test_the_mesh_stands_in_for_dlibs_68_points(neutral: np.ndarray) -> None:
    assert len(MESH_AS_DLIB) == 68 and all(0 <= i < 468 for i in MESH_AS_DLIB)
    assert len(set(MESH_AS_DLIB)) == 68
    assert sum(len(ids) for ids in DLIB_GROUPS.values()) == 68
    eyes = MESH_AS_DLIB[36:48]
    assert (eyes[0], eyes[1], eyes[2], eyes[4], eyes[5]) == tuple(MESH_EYES["eye_l"][i] for i in (0, 1, 2, 4, 5))
    assert (MESH_AS_DLIB[48], MESH_AS_DLIB[54]) == MOUTH_CORNERS
    p = neutral[list(MESH_AS_DLIB), :2]
    # dlib's order: the jaw from the image-left temple round the chin, the nose below the eyes, the mouth below it
    assert p[0, 0] < p[8, 0] < p[16, 0] and p[8, 1] > p[57, 1] > p[33, 1] > p[27, 1]
    assert p[36:42, 0].mean() < p[42:48, 0].mean() and p[17:22, 1].mean() < p[36:42, 1].mean()


def test_the_brow_picture_shows_the_lowest_and_highest_brows_of_open_eyes(neutral: np.ndarray) -> None:
    mesh = neutral[:, :2] * 3.0  # the clip is small: a face a few hundred pixels wide
    image = np.full((int(mesh[:, 1].max()) + 40, int(mesh[:, 0].max()) + 40, 3), 128, np.uint8)
    judged = np.zeros((68, 2)) + mesh.mean(0)
    brows = np.array([0.30, 0.55, 0.45, 0.35])  # frame 1 the highest, but its eyes are shut (a blink)
    eyes = np.array([0.30, 0.05, 0.31, 0.29])
    picture, picked = brow_picture([image] * 4, [mesh] * 4, [judged] * 4, brows, eyes)
    assert picked == [0, 2]
    assert picture.ndim == 3 and picture.shape[2] == 3 and picture.shape[0] > picture.shape[1] / 2
    red = (picture[..., 0] > 200) & (picture[..., 1] < 60)
    assert red.sum() > 2 * 10 * 20  # the mesh's ten brow points drawn in each of the two tiles
