"""Retargeting controls of the landmark warp: each does what it says, none folds a triangle at its limits,
and `render` takes them as flags."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from app.cli import main
from engine.face.landmarks import FaceMeshDetector, MeshConfig
from engine.reenactor import TargetSpec
from engine.media.video_io import VideoReader, read_image
from engine.warp import WarpConfig, WarpReenactor
from engine.warp.mesh import EYE_CORNERS, EYE_LIDS, signed_areas
from engine.warp.metrics import mouth_opening, roll
from engine.warp.retarget import RANGES, Retargeting
from tests.support import MOUTH_OPEN_FRAME, extreme_meshes

LIMITS = [
    Retargeting(expression=2.0, head=2.0, eyes=-1.0, mouth=2.0),
    Retargeting(expression=2.0, head=2.0, eyes=1.0, mouth=2.0),
    Retargeting(expression=0.0, head=0.0, eyes=1.0, mouth=0.0),
    Retargeting(expression=2.0, head=0.0, eyes=-1.0, mouth=0.0, eye_contact=True),
]


@pytest.fixture(scope="module")
def meshes(fixtures_dir: Path) -> dict[str, np.ndarray]:
    """Driver meshes of the clip's first frame (neutral) and its widest-open mouth; the target's warp."""
    with VideoReader(fixtures_dir / "video" / "carphone_pristine.mp4") as video:
        frames = list(video)
    with FaceMeshDetector(MeshConfig(static_images=True)) as detector:
        return {"neutral": detector.detect(frames[0]).points.astype(np.float64),
                "open": detector.detect(frames[MOUTH_OPEN_FRAME]).points.astype(np.float64)}


@pytest.fixture(scope="module")
def warp(fixtures_dir: Path) -> Iterator[WarpReenactor]:
    reenactor = WarpReenactor()
    reenactor.set_target(TargetSpec.from_image(read_image(fixtures_dir / "portraits" / "astronaut.png")))
    yield reenactor
    reenactor.close()


def _moved(warp: WarpReenactor, controls: Retargeting, neutral: np.ndarray, driver: np.ndarray) -> np.ndarray:
    target = warp.target
    assert target is not None
    warp.retargeting = controls
    target.motion.set_neutral(neutral)
    return target.control_points(target.motion(driver))


def _eye_gap(points: np.ndarray) -> float:
    return float(np.mean([np.linalg.norm(points[u] - points[low]) / np.linalg.norm(points[a] - points[b])
                          for (u, low), (a, b) in zip(EYE_LIDS, EYE_CORNERS)]))


@pytest.mark.parametrize("controls", LIMITS, ids=lambda c: f"G{c.expression}-H{c.head}-E{c.eyes}-M{c.mouth}")
def test_no_folds_with_the_controls_at_their_limits(warp: WarpReenactor, meshes: dict, controls: Retargeting) -> None:
    target = warp.target
    assert target is not None
    drivers = {"clip: open mouth": meshes["open"], **extreme_meshes(meshes["neutral"])}
    for name, driver in drivers.items():
        moved = _moved(warp, controls, meshes["neutral"], driver)
        areas = signed_areas(moved, target.control.triangles)
        assert areas.min() >= -1e-6, f"{name}: {int((areas < -1e-6).sum())} folded triangles"
        assert np.isfinite(target.warp.backward_map(moved)).all(), name
    warp.retargeting = Retargeting()


def test_each_control_does_what_it_says(warp: WarpReenactor, meshes: dict) -> None:
    neutral = meshes["neutral"]
    opened = neutral + 0.4 * (meshes["open"] - neutral)  # a mouth opened less than the clip's widest
    rest = warp.target.mesh[:, :2]
    default = _moved(warp, Retargeting(), neutral, opened)
    # mouth gain: 0 keeps the rest opening, 2 opens wider than 1
    closed = _moved(warp, Retargeting(mouth=0.0), neutral, opened)
    warp.retargeting = Retargeting(mouth=2.0)  # before the fold repair, which tames the lower lip over the chin
    wide = warp.target.motion(opened).animated
    assert abs(mouth_opening(closed) - mouth_opening(rest)) < 0.25 * (mouth_opening(default) - mouth_opening(rest))
    assert mouth_opening(wide) > mouth_opening(default) + 0.05
    # expression 0: the rest face in the driver's pose (here: the neutral pose, so the rest mesh)
    still = _moved(warp, Retargeting(expression=0.0), neutral, opened)
    assert abs(mouth_opening(still) - mouth_opening(rest)) < 0.01
    # eyes: −1 shuts, +1 widens, relative to the default
    shut = _moved(warp, Retargeting(eyes=-1.0), neutral, neutral)
    wider = _moved(warp, Retargeting(eyes=1.0), neutral, neutral)
    assert _eye_gap(shut) < 0.2 * _eye_gap(rest) < _eye_gap(rest) < _eye_gap(wider)
    # head strength: a 20° roll of the driver → 0° at 0, ~40° at 2
    centre = neutral[:, :2].mean(0)
    a = np.radians(20)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    rolled = neutral.copy()
    rolled[:, :2] = (neutral[:, :2] - centre) @ rot.T + centre
    base = roll(rest)
    assert abs(roll(_moved(warp, Retargeting(head=0.0), neutral, rolled)) - base) < 1.0
    assert abs(roll(_moved(warp, Retargeting(head=1.0), neutral, rolled)) - base - 20) < 3.0
    assert abs(roll(_moved(warp, Retargeting(head=2.0), neutral, rolled)) - base - 40) < 5.0
    warp.retargeting = Retargeting()


@pytest.mark.parametrize("name", sorted(RANGES))
def test_out_of_range_controls_raise(name: str) -> None:
    lo, hi = RANGES[name]
    with pytest.raises(ValueError, match=f"{name} must be within"):
        Retargeting(**{name: hi + 0.5})
    with pytest.raises(ValueError, match=f"{name} must be within"):
        Retargeting(**{name: lo - 0.5})


def test_config_controls_reach_the_motion(fixtures_dir: Path) -> None:
    controls = Retargeting(expression=0.5, head=1.5, eyes=-0.2, mouth=1.2, eye_contact=True)
    reenactor = WarpReenactor(WarpConfig(retargeting=controls))
    reenactor.set_target(TargetSpec.from_image(read_image(fixtures_dir / "aligned" / "1.png")))
    assert reenactor.target.motion.retargeting == controls


def test_render_flags(fixtures_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "one.png"
    args = ["render", "--driving", str(fixtures_dir / "aligned" / "1.png"),
            "--target", str(fixtures_dir / "portraits" / "astronaut.png"), "-o", str(out)]
    assert main(args + ["--expression", "1.5", "--head", "0.5", "--eyes", "0.3", "--mouth", "2", "--eye-contact"]) == 0
    assert read_image(out).shape == (512, 512, 3)
    with pytest.raises(SystemExit):
        main(args + ["--mouth", "2.5"])
    assert "error: argument --mouth: expected a mouth openness gain, a number from 0 to 2, got '2.5'" in capsys.readouterr().err
    assert main(args + ["--weights", str(tmp_path / "none.safetensors"), "--head", "0"]) == 2
    assert "apply to the landmark warp only" in capsys.readouterr().err
