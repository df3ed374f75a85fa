"""Head pose and expression transfer of the landmark warp (engine/warp/motion.py): the turn is deepened by
DEPTH_GAIN, the roll is not, a still driver leaves the target at rest, wide eyes open wider, and the mouth's
gap moves through the target's own range, in its own mouth's size; lips thin to half their thickness at most."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.face.landmarks import FaceMeshDetector, MeshConfig
from engine.media.video_io import read_image
from engine.warp.mesh import INNER_LIPS, LIP_THICKNESS, LOWER_INNER_LIP, NOSE_TIP, OUTER_LIPS, RIGID, UPPER_INNER_LIP
from engine.warp.metrics import roll
from engine.warp.motion import DEPTH_GAIN, LIP_KEEP, MOUTH_WIDEST, MotionTransfer, lip_gap, lip_thickness


@pytest.fixture(scope="module")
def mesh(fixtures_dir: Path) -> np.ndarray:
    with FaceMeshDetector(MeshConfig(static_images=True)) as detector:
        face = detector.detect(read_image(fixtures_dir / "portraits" / "astronaut.png"))
    assert face is not None
    return face.points.astype(np.float64)


def _turned(mesh: np.ndarray, yaw: float = 0.0, pitch: float = 0.0, roll_: float = 0.0) -> np.ndarray:
    a, b, c = np.radians([yaw, pitch, roll_])
    ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    centre = mesh[list(RIGID)].mean(0)
    return (mesh - centre) @ (rz @ rx @ ry).T + centre


def _nose_offset(points: np.ndarray) -> np.ndarray:
    """The nose tip against the rigid points' centre, in the image plane [2]."""
    return points[NOSE_TIP, :2] - points[list(RIGID), :2].mean(0)


def test_a_still_driver_leaves_the_target_at_rest(mesh: np.ndarray) -> None:
    motion = MotionTransfer(mesh)
    motion.set_neutral(mesh)
    out = motion(mesh)
    assert np.abs(out.animated[:, :2] - mesh[:, :2]).max() < 1e-6
    assert np.abs(out.posed[:, :2] - mesh[:, :2]).max() < 1e-6


@pytest.mark.parametrize("yaw, pitch", [(15.0, 0.0), (0.0, 12.0)], ids=["yaw", "pitch"])
def test_a_turn_moves_the_nose_by_the_deepened_face(mesh: np.ndarray, yaw: float, pitch: float) -> None:
    """Self-reenactment without expression: the nose tip moves DEPTH_GAIN times as far as the driver's
    (its depth is what a turn swings sideways), the rest of the face with it."""
    assert DEPTH_GAIN > 1.0
    motion = MotionTransfer(mesh, translation_gain=1.0)
    motion.set_neutral(mesh)
    driver = _turned(mesh, yaw, pitch)
    out = motion(driver)
    driven = _nose_offset(driver) - _nose_offset(mesh)
    moved = _nose_offset(out.posed) - _nose_offset(mesh)
    axis = 0 if yaw else 1
    assert moved[axis] / driven[axis] == pytest.approx(DEPTH_GAIN, rel=0.06)
    # the expression is the driver's own (none): the animated mesh is the posed one
    assert np.abs(out.animated[:, :2] - out.posed[:, :2]).max() < 1e-6 * float(np.ptp(mesh[:, 0])) + 1e-6


def test_a_tilted_driver_nods_an_upright_portrait_about_its_own_axis(mesh: np.ndarray) -> None:
    """A driver whose head is tilted 15° at rest (the fixture clip's is 12–17° against the portraits) nods:
    in the image his nose moves along his tilted face. The portrait, upright, nods about its own axis —
    its nose moves straight down its face, as far as when an upright driver nods (round ten)."""
    tilted = _turned(mesh, roll_=15.0)
    nodding = _turned(_turned(mesh, pitch=12.0), roll_=15.0)  # the same nod, in the tilted head's axes
    motion = MotionTransfer(mesh, translation_gain=1.0)
    motion.set_neutral(tilted)
    moved = _nose_offset(motion(nodding).posed) - _nose_offset(mesh)
    upright = MotionTransfer(mesh, translation_gain=1.0)
    upright.set_neutral(mesh)
    expected = _nose_offset(upright(_turned(mesh, pitch=12.0)).posed) - _nose_offset(mesh)
    assert abs(expected[1]) > 5.0  # px: the nod moves the nose
    assert np.linalg.norm(moved - expected) < 0.05 * abs(expected[1])  # turned about the image's axes: 0.26
    assert abs(moved[0]) < 0.05 * abs(moved[1])


def test_a_roll_is_not_deepened(mesh: np.ndarray) -> None:
    motion = MotionTransfer(mesh, translation_gain=1.0)
    motion.set_neutral(mesh)
    out = motion(_turned(mesh, roll_=20.0))
    assert roll(out.posed) - roll(mesh) == pytest.approx(20.0, abs=0.5)


def test_wide_eyes_open_the_portraits_eyes_twice_as_wide(mesh: np.ndarray) -> None:
    """A driver whose eyes open 30 % wider than at rest: the portrait's lids part 2x as far beyond the
    tracking's jitter (LID_GAIN_OPEN; a stretched eye reads as less open than a real wide one), each eye
    alone, and the rest of the face stays."""
    from engine.warp.mesh import EYE_LEFT_RING, EYE_LIDS
    from engine.warp.motion import LID_GAIN_OPEN, LID_STILL

    assert LID_GAIN_OPEN >= 2.0
    motion = MotionTransfer(mesh)
    motion.set_neutral(mesh)
    upper, lower = EYE_LIDS[0]
    gap = lambda m: float(np.linalg.norm(m[lower, :2] - m[upper, :2]))  # noqa: E731
    wide = mesh.copy()
    ring = list(EYE_LEFT_RING)
    centre = mesh[[upper, lower], :2].mean(0)
    wide[ring, 1] = centre[1] + 1.3 * (mesh[ring, 1] - centre[1])  # the left eye 30 % taller
    out = motion(wide).animated
    expected = 1.0 + LID_STILL + (0.3 - LID_STILL) * LID_GAIN_OPEN  # the target's eyes are the driver's own size
    assert gap(out) / gap(mesh) == pytest.approx(expected, rel=0.05)
    right_upper = EYE_LIDS[1][0]
    assert np.linalg.norm(out[right_upper, :2] - mesh[right_upper, :2]) < 0.01  # px (eye corners are rigid)


def _mouth_opened(mesh: np.ndarray, by: float) -> np.ndarray:
    """The mesh with everything below the inner lips' midline moved down by `by` eye distances."""
    out = mesh.copy()
    midline = (mesh[UPPER_INNER_LIP, 1] + mesh[LOWER_INNER_LIP, 1]) / 2
    out[mesh[:, 1] > midline, 1] += by * _eye_distance(mesh)
    return out


def _eye_distance(mesh: np.ndarray) -> float:
    return float(np.linalg.norm(mesh[[362, 263], :2].mean(0) - mesh[[33, 133], :2].mean(0)))


def test_a_mouth_open_at_rest_opens_into_its_room_and_shuts_with_the_driver(mesh: np.ndarray) -> None:
    """The driver's gap moves through the target's range as through its own: opening, its way from its
    rest gap to MOUTH_WIDEST maps onto the target's, so a portrait whose mouth is open at rest opens by
    less and stays below the widest (before: its own gap plus the driver's whole opening, 0.99 eye
    distances on aligned/2.png); closing, its way to shut, so that portrait shuts when the driver does
    (before: it closed by the driver's few hundredths and stayed open). A target whose gap is the driver's
    takes the driver's motion as it is."""
    shut = -lip_gap(mesh)
    drivers = {by: _mouth_opened(mesh, by) for by in (0.5, -0.05, shut)}
    open_mouth = _mouth_opened(mesh, 0.4)
    gaps = {}
    for name, target in (("same", mesh), ("open", open_mouth)):
        motion = MotionTransfer(target)
        motion.set_neutral(mesh)
        gaps[name] = {by: lip_gap(motion(d).animated) for by, d in drivers.items()}
    rest, rest_open = lip_gap(mesh), lip_gap(open_mouth)
    room = (MOUTH_WIDEST - rest_open) / (MOUTH_WIDEST - rest)
    assert 0.4 < room < 0.6
    for by in (0.5, -0.05):  # a target at the driver's own gap follows it as it is
        assert gaps["same"][by] == pytest.approx(lip_gap(drivers[by]), abs=0.01)
    assert gaps["open"][0.5] - rest_open == pytest.approx(0.5 * room, rel=0.03)
    assert gaps["open"][0.5] < MOUTH_WIDEST
    assert rest_open - gaps["open"][-0.05] == pytest.approx(0.05 * rest_open / rest, rel=0.05)
    assert lip_gap(drivers[shut]) < 0.02 and gaps["same"][shut] < 0.02
    assert gaps["open"][shut] < 0.02  # shut with the driver (lips closer than SHUT of their rest gap meet)


def _mouth_width(points: np.ndarray) -> float:
    """The outer mouth corners' distance in eye distances."""
    return float(np.linalg.norm(points[61, :2] - points[291, :2])) / _eye_distance(points)


@pytest.mark.parametrize("widened", [1.25, 0.85])
def test_a_wider_mouth_opens_in_its_own_proportions(mesh: np.ndarray, widened: float) -> None:
    """The lower face's expression is scaled by the ratio of the mouth widths: a portrait whose mouth is a
    quarter wider than the driver's opens a quarter wider, so its gap over its width (how open it looks,
    and what dlib's mouth signal reads) changes as the driver's (in face units alone it changed by 1/1.25
    of it: the astronaut's smile read 0.65 of the driver's opening). It still shuts when the driver does."""
    lips = sorted(set(OUTER_LIPS + INNER_LIPS))
    centre = mesh[lips, 0].mean()
    target = mesh.copy()
    target[lips, 0] = centre + widened * (mesh[lips, 0] - centre)
    motion = MotionTransfer(target)
    motion.set_neutral(mesh)
    driver = _mouth_opened(mesh, 0.3)
    looks = lambda m: lip_gap(m) / _mouth_width(m)  # noqa: E731
    assert _mouth_width(target) / _mouth_width(mesh) == pytest.approx(widened, rel=0.01)
    change = looks(motion(driver).animated) - looks(target)
    assert change == pytest.approx(looks(driver) - looks(mesh), rel=0.08)
    assert lip_gap(motion(_mouth_opened(mesh, -lip_gap(mesh))).animated) < 0.02


def test_a_lip_thins_to_half_its_thickness_at_most(mesh: np.ndarray) -> None:
    """A driver's upper lip thinned past nothing (its inner edge raised above its outer edge): the portrait's
    upper lip keeps half its thickness, its outer edge giving way, and the mouth's opening is the driver's.
    (The driver's own lips thin to 0.54–0.62 across the middle at the fixture clip's widest "O"; carried in
    face units, or in a wide mouth's size, that exceeded the astronaut's thin smiling lip, which turned inside
    out, and the fold repair then held her mouth to 0.42 of its opening.)"""
    rest = lip_thickness(mesh)
    upper = [inner for _, inner in LIP_THICKNESS[:9]]
    driver = mesh.copy()
    driver[upper, 1] -= 1.5 * rest[:9].max()  # every upper inner point above its outer partner
    assert lip_thickness(driver)[:9].max() < 0
    motion = MotionTransfer(mesh)
    motion.set_neutral(mesh)
    out = motion(driver).animated
    assert (lip_thickness(out) >= LIP_KEEP * rest - 1e-6).all()
    assert lip_thickness(out)[9:] == pytest.approx(rest[9:], abs=1e-6)  # the lower lip as it was
    assert lip_gap(out) == pytest.approx(lip_gap(driver), rel=0.01)


def test_a_squint_is_not_a_nod(mesh: np.ndarray) -> None:
    """MediaPipe's refined eye contour moves the eye corners with the lids: a squint (the contour pulled in
    towards the eye's middle, corners and all) must not move the head, only the eyes (round fifteen)."""
    from engine.warp.mesh import EYE_LEFT_RING, EYE_RIGHT_RING

    motion = MotionTransfer(mesh)
    motion.set_neutral(mesh)
    squint = mesh.copy()
    for ring in (EYE_LEFT_RING, EYE_RIGHT_RING):
        ids = list(ring)
        middle = mesh[ids].mean(0)
        squint[ids] = middle + (mesh[ids] - middle) * (0.8, 0.5, 1.0)  # narrower and much less open
    out = motion(squint)
    assert np.abs(out.posed[:, :2] - mesh[:, :2]).max() < 1e-6
    assert np.abs(out.animated[list(EYE_LEFT_RING), 1] - mesh[list(EYE_LEFT_RING), 1]).max() > 1.0
