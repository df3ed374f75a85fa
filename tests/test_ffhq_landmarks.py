"""Optional FFHQ-exact landmarks (requirements-ffhq.txt): dlib's 68 points place target crops."""
from __future__ import annotations

import numpy as np
import pytest

from engine.face import ffhq_landmarks
from engine.face.align import align_face
from engine.face.landmarks import FaceMeshDetector, MeshConfig
from engine.media.video_io import read_image

IDENTITY = np.array([[0, 0], [0, 1023], [1023, 1023], [1023, 0]], float)  # an aligned image's own quad


@pytest.fixture(scope="module")
def aligned_faces(fixtures_dir):
    return [read_image(p) for p in sorted((fixtures_dir / "aligned").glob("*.png"))]


def corner_error(quad: np.ndarray) -> float:
    return float(np.linalg.norm(quad - IDENTITY, axis=1).mean())


def test_dlib_landmarks_realign_ffhq_frames_nearly_exactly(aligned_faces):
    if ffhq_landmarks.load() is None:
        pytest.skip("requirements-ffhq.txt (dlib-bin, face_recognition_models) not installed")
    with FaceMeshDetector(MeshConfig(static_images=True)) as detector:
        dlib = [align_face(img, 1024, detector, ffhq_landmarks=True) for img in aligned_faces]
        mesh = [align_face(img, 1024, detector) for img in aligned_faces]
    assert {a.source for a in dlib} == {"dlib 68 points"} and {a.source for a in mesh} == {"mesh"}
    dlib_err, mesh_err = np.mean([corner_error(a.quad) for a in dlib]), np.mean([corner_error(a.quad) for a in mesh])
    assert dlib_err < 8.0 and dlib_err < 0.5 * mesh_err  # the fixtures were aligned with dlib's landmarks


def test_without_dlib_nothing_changes(aligned_faces, monkeypatch):
    monkeypatch.setattr(ffhq_landmarks, "load", lambda: None)
    with FaceMeshDetector(MeshConfig(static_images=True)) as detector:
        a = align_face(aligned_faces[0], 256, detector, ffhq_landmarks=True)
        b = align_face(aligned_faces[0], 256, detector)
    assert a.source == "mesh"
    np.testing.assert_array_equal(a.quad, b.quad)
    np.testing.assert_array_equal(a.image, b.image)
