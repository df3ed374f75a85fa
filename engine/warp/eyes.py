"""The irises: taken out of the target before the warp, drawn back after it at their own shape.

Prepared once per target and eye: the iris disc (MediaPipe's iris centre and rim), the eye opening
(the lid ring) as a soft mask, and the eyeball, the eye with its iris inpainted away. The warp moves the
portrait with its eyeballs in place of the eyes; per frame each iris is drawn back over its warped eye,
carried by the eye's corners (a similarity: an eyeball does not stretch when the lids open, so a widened
eye shows a round iris in more white, not a tall oval), moved by the driver's gaze change (engine.warp.gaze,
in eye widths) and clipped to the moved eye opening. Where the iris moves out from under lids that hid
part of it at rest, the iris's own median colour fills in. An eye cannot turn its iris out of sight: a
shift is shortened so that the iris centre stays KEEP_INSIDE of its radius inside the opening at rest (or
where it is at rest, if that is nearer the lids: a portrait looking sideways).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engine.warp.gaze import IRIS_CENTRES, eye_frame, iris_radius
from engine.warp.mesh import EYE_CORNERS, EYE_LEFT_RING, EYE_RIGHT_RING

MAX_SHIFT = (0.22, 0.10)  # |u|, |v| of the gaze change in eye widths (further would leave the eye opening)
KEEP_INSIDE = 0.6  # a moved iris centre stays this share of the iris radius inside the eye opening
SHIFT_STEPS = 8  # how finely a shift that would hide the iris is shortened
IRIS_EDGE = 0.25  # the drawn iris fades out over this share of its radius (a 1 px edge looked pasted on)


@dataclass
class _Eye:
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 of the eye region in the target image
    centre: np.ndarray  # [2] the iris centre at rest, box pixels
    radius: float  # iris radius (pixels)
    axis: np.ndarray  # [2] unit vector along the eye (corner to corner)
    normal: np.ndarray  # [2] unit vector across it, pointing down
    width: float  # eye width (pixels)
    opening: np.ndarray  # [h, w] float32 soft mask of the eye opening, box pixels
    ball: np.ndarray  # [h, w, 3] float32 the eye region with the iris inpainted away (the eyeball)
    cut: np.ndarray  # [h, w] float32 how much of the eyeball replaces the portrait (`remove`)
    iris: np.ndarray  # [h, w, 3] float32 the eye region, iris colour where the lids hide it
    disc: np.ndarray  # [h, w] float32 the iris disc at rest, soft-edged
    corners: np.ndarray  # [2, 2] the eye's corners at rest, image pixels
    ring: tuple[int, ...]  # mesh indices of the lid ring (the eye opening's contour)
    parting: np.ndarray  # [16, 2] the lid ring as detected minus as the warp has it at rest (lids parted)
    room: np.ndarray  # [h, w] float32 distance (pixels) to the edge of the eye opening, 0 outside it
    keep: float  # the least room a moved iris centre may have (KEEP_INSIDE, or its room at rest)
    yy: np.ndarray  # [h, w] float32 row coordinates (box pixels)
    xx: np.ndarray  # [h, w] float32 column coordinates


class Irises:
    """Both irises of one target: taken out before the warp (`remove`), drawn back after it (`draw`)."""

    def __init__(self, image: np.ndarray, mesh: np.ndarray, rest: np.ndarray) -> None:
        """mesh: the target's detected mesh [478, ≥2] (its iris points on the irises); rest: the warp's mesh
        at rest, lids parted (engine.warp.mesh.open_contours)."""
        self.eyes = [_prepare(image, mesh, rest, eye) for eye in range(2)]

    def remove(self, image: np.ndarray) -> np.ndarray:
        """A copy of `image` (the target at rest, RGB or RGB + alpha) with both eyes' irises inpainted away
        inside their openings."""
        out = image.copy()
        for eye in self.eyes:
            x0, y0, x1, y1 = eye.box
            region = out[y0:y1, x0:x1, :3].astype(np.float32)
            region += (eye.ball - region) * eye.cut[..., None]
            out[y0:y1, x0:x1, :3] = np.clip(region, 0, 255).astype(out.dtype)
        return out

    def draw(self, image: np.ndarray, moved: np.ndarray, gaze: np.ndarray) -> None:
        """Draw both irises onto the warped frame [H, W, 3] (in place). moved: the warp's mesh [478, 2];
        gaze [2, 2]: each iris's shift (u, v in eye widths)."""
        for index, (eye, (du, dv)) in enumerate(zip(self.eyes, gaze)):
            du, dv = np.clip(du, -MAX_SHIFT[0], MAX_SHIFT[0]), np.clip(dv, -MAX_SHIFT[1], MAX_SHIFT[1])
            shift = _in_sight(eye, (du * eye.axis + dv * eye.normal) * eye.width)
            _draw(image, eye, shift, moved[list(EYE_CORNERS[index]), :2], moved[list(eye.ring), :2])


def _prepare(image: np.ndarray, mesh: np.ndarray, rest: np.ndarray, eye: int) -> _Eye:
    p = np.asarray(mesh, np.float64)[:, :2]
    ids = list((EYE_LEFT_RING, EYE_RIGHT_RING)[eye])
    ring = p[ids]
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
    ball = cv2.inpaint(np.ascontiguousarray(roi), disc, max(2.0, radius / 2), cv2.INPAINT_TELEA)
    visible = (disc > 0) & (opening > 0.5)
    colour = np.median(roi[visible], 0) if visible.sum() >= 4 else roi[disc > 0].mean(0)
    # The iris as a layer over the eyeball: at rest iris·a + what `remove` leaves·(1 − a) is the portrait (a: the
    # soft disc inside the opening, as `draw` lays it), so a still driver changes nothing. `remove` takes the iris
    # out only as far as that layer can give it back in 0…255 (at a lash line over the iris, less); hidden under
    # the lids at rest, the iris is its median colour.
    edge = max(IRIS_EDGE * radius, 1.0)
    soft = np.clip((radius + 1.5 - np.hypot(xx - centre[0], yy - centre[1])) / edge, 0.0, 1.0).astype(np.float32)
    roi32, ball32 = roi.astype(np.float32), ball.astype(np.float32)
    a = (soft * opening)[..., None]
    gap = ball32 - roi32
    headroom = np.where(gap > 0, roi32, 255 - roi32) * a / np.maximum(np.abs(gap) * (1 - a), 1e-6)
    cut = np.minimum(opening, headroom.min(-1))  # [h, w] how much of the iris `remove` takes out
    below = roi32 + gap * cut[..., None]
    unmixed = (roi32 - below * (1 - a)) / np.maximum(a, 1e-3)
    iris = np.where(a > 0.01, np.clip(unmixed, 0, 255), colour.astype(np.float32)).astype(np.float32)
    room = cv2.distanceTransform((opening > 0.5).astype(np.uint8), cv2.DIST_L2, 5)
    keep = min(KEEP_INSIDE * radius, _room_at(room, centre))
    return _Eye((int(x0), int(y0), int(x1), int(y1)), centre, radius, axis, normal, width, opening,
                ball32, cut.astype(np.float32), iris, soft, p[list(EYE_CORNERS[eye])].copy(),
                tuple(ids), ring - np.asarray(rest, np.float64)[ids, :2], room, keep, yy, xx)


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


def _draw(image: np.ndarray, eye: _Eye, shift: np.ndarray, corners: np.ndarray, ring: np.ndarray) -> None:
    """Draw one iris (moved by `shift`, box pixels at rest) over its eye, carried from the eye's corners at rest
    to `corners` [2, 2] by a similarity, inside the warped lid ring `ring` [16, 2] (output pixels; in place)."""
    h, w = image.shape[:2]
    a, b = eye.corners
    k = complex(*(corners[1] - corners[0])) / complex(*(b - a))  # rotation and scale, as a complex factor
    turn = np.array([[k.real, -k.imag], [k.imag, k.real]])
    ring = ring + eye.parting @ turn.T  # the lids as detected: at rest the opening is the portrait's own
    width = abs(k) * eye.width
    pad = abs(k) * eye.radius + 0.1 * width + 2
    x0, y0 = np.maximum(np.floor(ring.min(0) - pad).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(ring.max(0) + pad).astype(int) + 1, (w, h))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    # a pixel q of the eye's box at rest lands at turn @ (q + box origin + shift - a) + corners[0]
    move = turn @ (np.array(eye.box[:2], np.float64) + shift - a) + corners[0] - (x0, y0)
    m = np.hstack([turn, move[:, None]]).astype(np.float32)
    size = (int(x1 - x0), int(y1 - y0))
    iris = cv2.warpAffine(eye.iris, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    disc = cv2.warpAffine(eye.disc, m, size, flags=cv2.INTER_LINEAR, borderValue=0)
    opening = np.zeros(size[::-1], np.float32)
    cv2.fillPoly(opening, [np.round((ring - (x0, y0)) * 16).astype(np.int32)], 1.0, cv2.LINE_AA, shift=4)
    opening = cv2.GaussianBlur(opening, (0, 0), max(0.03 * width, 0.6))
    alpha = (disc * opening)[..., None]
    roi = image[y0:y1, x0:x1].astype(np.float32)
    image[y0:y1, x0:x1] = np.clip(roi + (iris - roi) * alpha, 0, 255).astype(np.uint8)
