"""Small faces: the full-range detector and a crop around the face, for targets, `align` and live frames."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from app.cli import main
from engine.face.align import LiveAligner, align_face, quad_side
from engine.errors import NoFaceError
from engine.face.landmarks import FaceMeshDetector, MeshConfig
from engine.reenactor import TargetSpec
from engine.media.video_io import read_image, write_image

CANVAS = 2000
FACE_SHARE = 0.08  # the face's crop quad: 8 % of the canvas side


@pytest.fixture(scope="module")
def astronaut(fixtures_dir):
    return read_image(fixtures_dir / "portraits" / "astronaut.png")


@pytest.fixture(scope="module")
def reference_quad(astronaut):
    return align_face(astronaut, size=256).quad


def small_face(astronaut, reference_quad, offset=(1300, 400), share=FACE_SHARE,
               canvas_side=CANVAS) -> tuple[np.ndarray, np.ndarray]:
    """(canvas with the portrait shrunk so its face quad is `share` of the side, the expected quad)."""
    s = share * canvas_side / quad_side(reference_quad)
    small = cv2.resize(astronaut, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    canvas = np.full((canvas_side, canvas_side, 3), 90, np.uint8)
    x, y = offset
    canvas[y:y + small.shape[0], x:x + small.shape[1]] = small
    scale = small.shape[1] / astronaut.shape[1]
    return canvas, (reference_quad + 0.5) * scale - 0.5 + offset


def quad_error(quad: np.ndarray, expected: np.ndarray) -> float:
    """Worst corner distance as a share of the quad side."""
    return float(np.linalg.norm(quad - expected, axis=1).max() / quad_side(expected))


def test_small_face_is_found_and_aligned(astronaut, reference_quad):
    canvas, expected = small_face(astronaut, reference_quad)
    with FaceMeshDetector(MeshConfig(static_images=True)) as detector:
        aligned = align_face(canvas, size=256, detector=detector)
        assert detector.last_source == "full-range detector + crop"
    assert quad_error(aligned.quad, expected) <= 0.015
    with FaceMeshDetector(MeshConfig(static_images=True, find_small_faces=False)) as detector:
        with pytest.raises(NoFaceError):  # what happened before the fallback
            align_face(canvas, size=256, detector=detector)


def test_live_frames_mesh_a_crop_around_the_small_face(astronaut, reference_quad):
    """A person stepping back from a 1280² camera: the face shrinks from 12 % to 6 % of the frame."""
    with LiveAligner(size=256, smoothing=0.0) as live:
        sources = []
        for i, share in enumerate(np.linspace(0.12, 0.06, 8)):
            canvas, expected = small_face(astronaut, reference_quad, (800 - 6 * i, 300 + 4 * i), share, 1280)
            aligned = live.align(canvas)
            assert aligned is not None, live.last_reason
            assert quad_error(aligned.quad, expected) <= 0.03
            sources.append(live.detector.last_source)
    assert sources[0] == "full-range detector + crop" and set(sources[1:]) == {"crop"}


def test_align_command_and_warp_target_take_a_small_face(astronaut, reference_quad, tmp_path, capsys):
    canvas, expected = small_face(astronaut, reference_quad)
    write_image(tmp_path / "group.png", canvas)
    assert main(["align", str(tmp_path / "group.png"), "-o", str(tmp_path / "a.png"), "--size", "256",
                 "--json", str(tmp_path / "q.json")]) == 0
    assert quad_error(np.array(json.loads((tmp_path / "q.json").read_text())["quad"]), expected) <= 0.015
    assert "full-range detector + crop)" in capsys.readouterr().out  # (landmarks: …), whichever placed the crop
    from engine.warp import WarpReenactor

    warp = WarpReenactor()
    warp.set_target(TargetSpec.from_image(canvas))
    assert warp.output_size == (512, 512)


def test_no_face_anywhere_is_still_no_face():
    with FaceMeshDetector(MeshConfig(static_images=True)) as detector:
        assert detector.detect(np.full((1200, 1600, 3), 128, np.uint8)) is None
        assert detector.last_source == "none"
