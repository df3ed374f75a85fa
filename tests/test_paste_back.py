"""Paste-back of generated aligned crops into the framed target portrait (engine/face/paste_back.py)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from engine.face.align import align_face
from engine.face.framing import frame_target
from engine.face.landmarks import FaceMeshDetector, MeshConfig
from engine.face.paste_back import PasteBack, PasteBackConfig
from engine.media.video_io import read_image


@pytest.fixture(scope="module")
def astronaut(fixtures_dir):
    return read_image(fixtures_dir / "portraits" / "astronaut.png")


@pytest.fixture(scope="module")
def detector():
    with FaceMeshDetector(MeshConfig(static_images=True)) as d:
        yield d


def rotated(image: np.ndarray, angle: float, scale: float) -> np.ndarray:
    """The portrait turned by `angle` degrees and scaled, on a canvas 1.3x its scaled size (reflected)."""
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    size = (int(w * scale * 1.3), int(h * scale * 1.3))
    m[:, 2] += ((size[0] - w) / 2, (size[1] - h) / 2)
    return cv2.warpAffine(image, m, size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


@pytest.mark.parametrize("angle,scale,framing", [(0, 1.0, "face"), (20, 0.6, "portrait"), (-25, 2.0, "face"),
                                                 (10, 3.5, "portrait")])
def test_pasting_the_targets_own_crop_gives_the_portrait(astronaut, detector, angle, scale, framing):
    portrait = rotated(astronaut, angle, scale)
    aligned = align_face(portrait, size=1024, detector=detector)
    paste = PasteBack(portrait, aligned, PasteBackConfig(framing=framing, output_size=512))
    out = paste(aligned.image)  # a stand-in generator: returns its aligned input crop
    inside = paste.alpha > 0
    diff = np.abs(out.astype(int) - paste.framed.astype(int)).mean(-1)
    assert out.shape == paste.framed.shape and max(out.shape[:2]) == 512
    assert diff[inside].mean() <= 2.0
    np.testing.assert_array_equal(out[~inside], paste.framed[~inside])
    assert 0.01 < inside.mean() < 0.9  # the mask covers the face, not the whole output


def test_framing_equals_the_warps(astronaut, detector):
    aligned = align_face(astronaut, size=1024, detector=detector)
    for framing in ("face", "portrait"):
        paste = PasteBack(astronaut, aligned, PasteBackConfig(framing=framing, output_size=384))
        framed, _ = frame_target(astronaut, detector.detect(astronaut).points, framing, 384, 0.45)
        np.testing.assert_array_equal(paste.framed, framed)


def test_mask_holds_forehead_not_background(astronaut, detector):
    aligned = align_face(astronaut, size=1024, detector=detector)
    paste = PasteBack(astronaut, aligned, PasteBackConfig(framing="portrait", output_size=512))
    mesh = detector.detect(astronaut).xy  # 512² portrait: output pixels = portrait pixels
    forehead = np.rint(mesh[10]).astype(int)  # the top of the face oval
    nose = np.rint(mesh[1]).astype(int)
    assert paste.alpha[nose[1], nose[0]] == 1.0
    assert paste.alpha[forehead[1], forehead[0]] > 0.5
    assert paste.alpha[:20].max() == 0 and paste.alpha[:, :20].max() == 0  # the background stays


def test_colour_is_matched_at_the_seam(astronaut, detector):
    aligned = align_face(astronaut, size=1024, detector=detector)
    paste = PasteBack(astronaut, aligned, PasteBackConfig(output_size=512))
    shifted = np.clip(aligned.image.astype(int) + (30, 5, -25), 0, 255).astype(np.uint8)  # warmer light, brighter
    plain = PasteBack(astronaut, aligned, PasteBackConfig(output_size=512, colour_match=False))
    ring = (paste.alpha > 0.05) & (paste.alpha < 0.95)
    err = lambda out: np.abs(out.astype(int) - paste.framed.astype(int))[ring].mean()  # noqa: E731
    assert err(paste(shifted)) < 0.3 * err(plain(shifted))
