"""The painted mouth interior of the landmark warp (engine/warp/interior.py): teeth in the portrait's light."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.face.landmarks import FaceMeshDetector, MeshConfig
from engine.media.video_io import read_image
from engine.warp.interior import FacePainter
from engine.warp.mesh import open_contours


@pytest.fixture(scope="module")
def portrait(fixtures_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    image = read_image(fixtures_dir / "aligned" / "3.png")  # closed at rest: the painted teeth are used
    with FaceMeshDetector(MeshConfig(static_images=True)) as detector:
        face = detector.detect(image)
    assert face is not None
    return image, open_contours(face.points.astype(np.float64))


def _painter(image: np.ndarray, mesh: np.ndarray, gains: tuple[float, float, float]) -> FacePainter:
    tinted = np.clip(image.astype(np.float32) * np.array(gains, np.float32), 0, 255).astype(np.uint8)
    return FacePainter(tinted, mesh)


def test_the_teeth_take_the_portraits_colour_cast(portrait: tuple[np.ndarray, np.ndarray]) -> None:
    """The same portrait under warm and under cool light: the painted teeth turn warm and cool with it (at
    least 0.3 as far as the skin does in the log of the red-to-blue ratio; 0.07 before), and stay lighter
    than the skin (a neutral ivory scaled to a warm, dim portrait read as grey-blue beside orange skin)."""
    image, mesh = portrait
    warm, cool = _painter(image, mesh, (1.0, 0.85, 0.65)), _painter(image, mesh, (0.75, 0.9, 1.0))
    tilt = lambda c: float(np.log(c[0] / c[2]))  # noqa: E731
    skin_warm, skin_cool = np.mean(warm.lids, 0), np.mean(cool.lids, 0)
    assert tilt(warm.teeth) - tilt(cool.teeth) >= 0.3 * (tilt(skin_warm) - tilt(skin_cool))
    for painter, skin in ((warm, skin_warm), (cool, skin_cool)):
        assert painter.teeth.mean() > skin.mean()
