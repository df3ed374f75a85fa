"""Which part of the target portrait the output shows: a square around the face, or the whole portrait."""
from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

from engine.warp.mesh import FACE_OVAL

Framing = Literal["face", "portrait"]


def frame_target(image: np.ndarray, points: np.ndarray, framing: Framing, size: int,
                 face_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(output-sized image, mesh [478, 3] in its pixels) for the target portrait and its mesh.

    framing "face": a square of side = face height / face_fraction around the face (so hair, neck
    and background show), kept inside the portrait (shifted, or shrunk when the portrait is smaller),
    resized to size x size. "portrait": the whole image, its longer side resized to `size`.
    """
    h, w = image.shape[:2]
    if framing == "face":
        oval = points[list(FACE_OVAL), :2]
        top, bottom = oval[:, 1].min(), oval[:, 1].max()
        side = int(round(min((bottom - top) / face_fraction, w, h)))
        cx, cy = (oval[:, 0].min() + oval[:, 0].max()) / 2, (top + bottom) / 2 - 0.05 * side
        x0 = int(round(np.clip(cx - side / 2, 0, w - side)))
        y0 = int(round(np.clip(cy - side / 2, 0, h - side)))
        crop, out_w, out_h = image[y0:y0 + side, x0:x0 + side], size, size
    elif framing == "portrait":
        x0 = y0 = 0
        side = max(w, h)
        crop = image
        out_w, out_h = _even(w * size / side), _even(h * size / side)
    else:
        raise ValueError(f"unknown framing {framing!r} (expected 'face' or 'portrait')")
    ch, cw = crop.shape[:2]
    sx, sy = out_w / cw, out_h / ch
    shrink = sx < 1 and sy < 1
    framed = cv2.resize(crop, (out_w, out_h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    mesh = np.asarray(points, np.float64).copy()
    # pixel centres: x_out + 0.5 = (x_in + 0.5 - x0)·s
    mesh[:, 0] = (mesh[:, 0] + 0.5 - x0) * sx - 0.5
    mesh[:, 1] = (mesh[:, 1] + 0.5 - y0) * sy - 0.5
    mesh[:, 2] *= (sx + sy) / 2
    return np.ascontiguousarray(framed), mesh


def _even(x: float) -> int:
    return max(2, int(round(x / 2)) * 2)
