"""Which part of the target portrait the output shows: a square around the face, or the whole portrait.

Shared by both reenactors, so the app, the recorder and the virtual camera see the same geometry
whichever one runs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from engine.face.landmarks import FACE_OVAL

Framing = Literal["face", "portrait"]
FRAMINGS: tuple[Framing, ...] = ("face", "portrait")


@dataclass(frozen=True)
class FramingWindow:
    """The part of the portrait the output shows, and the output's size."""

    x0: int  # left column of the window in portrait pixels
    y0: int  # top row
    width: int  # window size in portrait pixels
    height: int
    out_width: int  # output size in pixels
    out_height: int

    @property
    def scale(self) -> tuple[float, float]:
        return self.out_width / self.width, self.out_height / self.height

    @property
    def matrix(self) -> np.ndarray:
        """Affine [2, 3] portrait pixel → output pixel (pixel centres: x_out + 0.5 = (x_in + 0.5 - x0)·s)."""
        sx, sy = self.scale
        return np.array([[sx, 0.0, (0.5 - self.x0) * sx - 0.5], [0.0, sy, (0.5 - self.y0) * sy - 0.5]])

    def apply(self, image: np.ndarray) -> np.ndarray:
        """The window of `image`, resized to the output size (area when shrinking, cubic when enlarging)."""
        crop = image[self.y0:self.y0 + self.height, self.x0:self.x0 + self.width]
        sx, sy = self.scale
        interpolation = cv2.INTER_AREA if sx < 1 and sy < 1 else cv2.INTER_CUBIC
        return np.ascontiguousarray(cv2.resize(crop, (self.out_width, self.out_height), interpolation=interpolation))


def framing_window(image_size: tuple[int, int], points: np.ndarray, framing: Framing, size: int,
                   face_fraction: float) -> FramingWindow:
    """The window for a portrait of `image_size` (width, height) and its face mesh [478, ≥2].

    framing "face": a square of side = face height / face_fraction around the face (so hair, neck
    and background show), kept inside the portrait (shifted, or shrunk when the portrait is smaller),
    resized to size x size. "portrait": the whole image, its longer side resized to `size`.
    """
    w, h = image_size
    if framing == "face":
        oval = np.asarray(points)[list(FACE_OVAL), :2]
        top, bottom = oval[:, 1].min(), oval[:, 1].max()
        side = int(round(min((bottom - top) / face_fraction, w, h)))
        cx, cy = (oval[:, 0].min() + oval[:, 0].max()) / 2, (top + bottom) / 2 - 0.05 * side
        x0 = int(round(np.clip(cx - side / 2, 0, w - side)))
        y0 = int(round(np.clip(cy - side / 2, 0, h - side)))
        return FramingWindow(x0, y0, side, side, size, size)
    if framing == "portrait":
        side = max(w, h)
        return FramingWindow(0, 0, w, h, _even(w * size / side), _even(h * size / side))
    raise ValueError(f"unknown framing {framing!r} (expected 'face' or 'portrait')")


def frame_target(image: np.ndarray, points: np.ndarray, framing: Framing, size: int,
                 face_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(output-sized image, mesh [478, 3] in its pixels) for the target portrait and its mesh (see
    `framing_window`)."""
    h, w = image.shape[:2]
    window = framing_window((w, h), points, framing, size, face_fraction)
    sx, sy = window.scale
    mesh = np.asarray(points, np.float64).copy()
    mesh[:, 0] = (mesh[:, 0] + 0.5 - window.x0) * sx - 0.5
    mesh[:, 1] = (mesh[:, 1] + 0.5 - window.y0) * sy - 0.5
    mesh[:, 2] *= (sx + sy) / 2
    return window.apply(image), mesh


def _even(x: float) -> int:
    return max(2, int(round(x / 2)) * 2)
