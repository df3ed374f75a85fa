"""Gaze: the target's irises moved inside their eyes before the warp (which then carries the eyes along).

Prepared once per target and eye: the iris disc (MediaPipe's iris centre and rim), the eye opening
(the lid ring) as a soft mask, and an eyeball plate, the eye with its iris inpainted away. Per frame
each iris is drawn at its rest place plus the driver's gaze change (engine.warp.gaze, in eye widths),
clipped to the eye opening: where the shifted disc leaves the opening, lids cover it; where it
uncovers iris that the lids hid at rest, the iris's own median colour fills in. An eye cannot turn its
iris out of sight: a shift is shortened so that the iris centre stays KEEP_INSIDE of its radius inside
the opening (or where it is at rest, if that is nearer the lids: a portrait looking sideways).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engine.warp.gaze import IRIS_CENTRES, eye_frame, iris_radius
from engine.warp.mesh import EYE_LEFT_RING, EYE_RIGHT_RING

MAX_SHIFT = (0.22, 0.10)  # |u|, |v| of the gaze change in eye widths (further would leave the eye opening)
MIN_SHIFT_PX = 0.05  # below this the iris stays as it is (a still driver changes nothing)
KEEP_INSIDE = 0.6  # a moved iris centre stays this share of the iris radius inside the eye opening
SHIFT_STEPS = 8  # how finely a shift that would hide the iris is shortened


@dataclass
class _Eye:
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 of the eye region in the target image
    centre: np.ndarray  # [2] the iris centre at rest, box pixels
    radius: float  # iris radius (pixels)
    axis: np.ndarray  # [2] unit vector along the eye (corner to corner)
    normal: np.ndarray  # [2] unit vector across it, pointing down
    width: float  # eye width (pixels)
    opening: np.ndarray  # [h, w] float32 soft mask of the eye opening, box pixels
    plate: np.ndarray  # [h, w, 3] float32 the eye region with the iris inpainted away inside the opening
    iris: np.ndarray  # [h, w, 3] float32 the eye region, iris colour where the lids hide it
    room: np.ndarray  # [h, w] float32 distance (pixels) to the edge of the eye opening, 0 outside it
    keep: float  # the least room a moved iris centre may have (KEEP_INSIDE, or its room at rest)
    yy: np.ndarray  # [h, w] float32 row coordinates (box pixels)
    xx: np.ndarray  # [h, w] float32 column coordinates


class IrisMover:
    """Redraws both irises of one target at a gaze offset."""

    def __init__(self, image: np.ndarray, mesh: np.ndarray) -> None:
        self.eyes = [_prepare(image, mesh, eye) for eye in range(2)]

    def apply(self, image: np.ndarray, gaze: np.ndarray) -> np.ndarray:
        """`image` (the target at rest, RGB or RGB + alpha) with each iris moved by gaze [2, 2] (u, v in eye
        widths); a copy, or `image` itself when no iris moves."""
        out = image
        for eye, (du, dv) in zip(self.eyes, gaze):
            du, dv = np.clip(du, -MAX_SHIFT[0], MAX_SHIFT[0]), np.clip(dv, -MAX_SHIFT[1], MAX_SHIFT[1])
            shift = _in_sight(eye, (du * eye.axis + dv * eye.normal) * eye.width)
            if float(np.hypot(*shift)) < MIN_SHIFT_PX:
                continue
            if out is image:
                out = image.copy()
            x0, y0, x1, y1 = eye.box
            out[y0:y1, x0:x1, :3] = _draw(eye, shift)
        return out


def _prepare(image: np.ndarray, mesh: np.ndarray, eye: int) -> _Eye:
    p = np.asarray(mesh, np.float64)[:, :2]
    ring = p[list((EYE_LEFT_RING, EYE_RIGHT_RING)[eye])]
    _, axis, normal, width = eye_frame(p, eye)
    radius = max(iris_radius(p, eye), 1.0)
    h, w = image.shape[:2]
    pad = int(np.ceil(radius + 0.25 * width)) + 2
    x0, y0 = np.maximum(np.floor(ring.min(0)).astype(int) - pad, 0)
    x1, y1 = np.minimum(np.ceil(ring.max(0)).astype(int) + pad + 1, (w, h))
    origin = np.array([x0, y0], np.float64)
    roi = image[y0:y1, x0:x1]
    shape = roi.shape[:2]
    centre = p[IRIS_CENTRES[eye]] - origin
    opening = np.zeros(shape, np.float32)
    cv2.fillPoly(opening, [np.round((ring - origin) * 16).astype(np.int32)], 1.0, cv2.LINE_AA, shift=4)
    opening = cv2.GaussianBlur(opening, (0, 0), max(0.03 * width, 0.6))
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    disc = ((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 <= (radius + 1.0) ** 2).astype(np.uint8)
    plate = cv2.inpaint(np.ascontiguousarray(roi), disc, max(2.0, radius / 2), cv2.INPAINT_TELEA)
    visible = (disc > 0) & (opening > 0.5)
    colour = np.median(roi[visible], 0) if visible.sum() >= 4 else roi[disc > 0].mean(0)
    seen = opening[..., None]
    iris = roi.astype(np.float32) * seen + colour.astype(np.float32) * (1 - seen)
    plate = roi.astype(np.float32) * (1 - seen) + plate.astype(np.float32) * seen
    room = cv2.distanceTransform((opening > 0.5).astype(np.uint8), cv2.DIST_L2, 5)
    keep = min(KEEP_INSIDE * radius, _room_at(room, centre))
    return _Eye((int(x0), int(y0), int(x1), int(y1)), centre, radius, axis, normal, width, opening, plate, iris,
                room, keep, yy, xx)


def _room_at(room: np.ndarray, point: np.ndarray) -> float:
    """The eye opening's room (distance to its edge) at a point (box pixels; 0 outside the box)."""
    x, y = int(round(point[0])), int(round(point[1]))
    return float(room[y, x]) if 0 <= y < room.shape[0] and 0 <= x < room.shape[1] else 0.0


def _in_sight(eye: _Eye, shift: np.ndarray) -> np.ndarray:
    """`shift` (pixels), shortened as little as needed for the iris centre to keep `eye.keep` of room."""
    for k in range(SHIFT_STEPS, 0, -1):
        part = shift * (k / SHIFT_STEPS)
        if _room_at(eye.room, eye.centre + part) >= eye.keep:
            return part
    return shift * 0.0


def _draw(eye: _Eye, shift: np.ndarray) -> np.ndarray:
    """The eye region [h, w, 3] uint8 with its iris moved by `shift` (pixels), clipped to the opening."""
    move = np.float32([[1, 0, shift[0]], [0, 1, shift[1]]])
    size = (eye.plate.shape[1], eye.plate.shape[0])
    iris = cv2.warpAffine(eye.iris, move, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    cx, cy = eye.centre + shift
    dist = np.sqrt((eye.xx - cx) ** 2 + (eye.yy - cy) ** 2)
    disc = np.clip(eye.radius + 1.5 - dist, 0.0, 1.0)  # soft edge beyond the inpainted disc: exact at rest
    alpha = (disc * eye.opening)[..., None]
    return np.clip(eye.plate + (iris - eye.plate) * alpha, 0, 255).astype(np.uint8)
