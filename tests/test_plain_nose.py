"""The driver's nose tip from MediaPipe's plain mesh model (engine/face/landmarks.py, `plain_nose`): its points
are the plain model's on the same frames, every other point is the attention model's, and where the plain model
finds no face the nose keeps its last offset, forgotten once the face is lost (docs/warp-quality.md, round
fifteen)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.face.landmarks import PLAIN_NOSE, FaceMeshDetector, MeshConfig
from engine.media.video_io import VideoReader

OTHERS = [i for i in range(478) if i not in PLAIN_NOSE]


@pytest.fixture(scope="module")
def frames(fixtures_dir: Path) -> list[np.ndarray]:
    with VideoReader(fixtures_dir / "video" / "carphone_pristine.mp4") as video:
        return [frame for _, frame in zip(range(12), video)]


def _plain_model_nose(frames: list[np.ndarray]) -> list[np.ndarray]:
    """The plain model (refine_landmarks=False) tracking the frames on its own: PLAIN_NOSE [6, 3] per frame."""
    import mediapipe as mp

    noses = []
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1, refine_landmarks=False) as mesh:
        for frame in frames:
            h, w = frame.shape[:2]
            landmarks = mesh.process(frame).multi_face_landmarks[0].landmark
            noses.append(np.array([(landmarks[i].x * w, landmarks[i].y * h, landmarks[i].z * w) for i in PLAIN_NOSE]))
    return noses


def test_the_nose_is_the_plain_models_and_the_rest_the_attention_models(frames: list[np.ndarray]) -> None:
    with FaceMeshDetector(MeshConfig(plain_nose=True)) as spliced, FaceMeshDetector(MeshConfig()) as attention:
        both = [(spliced.detect(f), attention.detect(f)) for f in frames]
    plain = _plain_model_nose(frames)
    moved = []
    for (s, a), nose in zip(both, plain):
        assert s is not None and a is not None
        np.testing.assert_allclose(s.points[OTHERS], a.points[OTHERS], atol=1e-4)
        np.testing.assert_allclose(s.points[list(PLAIN_NOSE)], nose, atol=0.01)
        moved.append(np.abs(s.points[list(PLAIN_NOSE), :2] - a.points[list(PLAIN_NOSE), :2]).max())
    assert max(moved) > 0.1  # the two models do differ there (pixels of the 176x144 clip)


def test_photos_keep_the_attention_models_nose(frames: list[np.ndarray]) -> None:
    with FaceMeshDetector(MeshConfig(static_images=True, plain_nose=True)) as spliced, \
            FaceMeshDetector(MeshConfig(static_images=True)) as attention:
        s, a = spliced.detect(frames[0]), attention.detect(frames[0])
    assert s is not None and a is not None
    np.testing.assert_array_equal(s.points, a.points)


def test_where_the_plain_model_finds_no_face_the_nose_keeps_its_last_offset(frames: list[np.ndarray]) -> None:
    with FaceMeshDetector(MeshConfig(plain_nose=True)) as spliced, FaceMeshDetector(MeshConfig()) as attention:
        before = spliced.detect(frames[0])
        at_rest = attention.detect(frames[0])
        assert before is not None and at_rest is not None
        offset = before.points[list(PLAIN_NOSE)] - at_rest.points[list(PLAIN_NOSE)]
        nxt = attention.detect(frames[1])
        assert nxt is not None
        # the plain model run on a blank image (it finds no face there): the attention model's nose,
        # shifted as last seen
        blank = np.zeros_like(frames[1])
        kept = spliced._with_plain_nose(nxt, spliced._start_plain(blank, "blank"), (176, 144), 0, 0)
    np.testing.assert_allclose(kept.points[list(PLAIN_NOSE)], nxt.points[list(PLAIN_NOSE)] + offset, atol=1e-5)
    np.testing.assert_array_equal(kept.points[OTHERS], nxt.points[OTHERS])


def test_a_lost_face_forgets_the_plain_noses_offset(frames: list[np.ndarray]) -> None:
    """After a frame without a face the next face may be another person's: where the plain model then misses,
    the nose is the attention model's own."""
    with FaceMeshDetector(MeshConfig(plain_nose=True)) as spliced, FaceMeshDetector(MeshConfig()) as attention:
        assert spliced.detect(frames[0]) is not None
        assert spliced.detect(np.zeros_like(frames[0])) is None
        face = attention.detect(frames[1])
        assert face is not None
        blank = np.zeros_like(frames[1])
        kept = spliced._with_plain_nose(face, spliced._start_plain(blank, "blank"), (176, 144), 0, 0)
    np.testing.assert_array_equal(kept.points, face.points)
