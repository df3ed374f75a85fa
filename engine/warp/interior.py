"""What the warp alone cannot show: the inside of an opened mouth, and the lid over a closing eye.

Colours come from the target itself (its lips, its upper eyelids, its lashes), so a painting gets
painted-looking teeth and lids. Everything is drawn in small regions around the mouth and eyes.
"""
from __future__ import annotations

import cv2
import numpy as np

from engine.warp.mesh import EYE_CORNERS, INNER_LIPS, LID_PAIRS, OUTER_LIPS
from engine.warp.metrics import mouth_opening
from engine.warp.ramp import smoothstep

UPPER_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)  # corner to corner along the upper lip
LOWER_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
# upper lid margin corner to corner, and the lower brow point above each eye (image left, then right)
UPPER_LIDS = ((33, 246, 161, 160, 159, 158, 157, 173, 133), (362, 398, 384, 385, 386, 387, 388, 466, 263))
BROWS = (52, 282)
TEETH = np.array([238.0, 230.0, 212.0])  # a light, warm ivory before matching the portrait
TEETH_ACROSS = 4.0  # upper teeth showing across the mouth opening
TEETH_CAST = 0.35  # how much of the skin's colour cast (its colour over its grey) the teeth take
TEETH_PALER = 0.7  # a portrait's own teeth: at most this share of its lips' chroma
MOUTH_SOFTNESS = 0.012  # blur of the drawn mouth interior, in mouth widths
CAVITY_TINT = np.array([1.15, 0.8, 0.8], np.float32)  # the mouth's inside is redder than the lips
# The cavity's brightness against the lips: 0.21 at its front middle, falling to 0.10 deep inside and at the
# corners; the tongue in its shadow, 0.3 of the lips. A cavity twice as light, with a tongue at 0.72 of the lips
# (before round six), read as a lip-coloured bowl: the independent judge (dlib) put the lower lip on the tongue
# and the upper one on the teeth, reading the widest mouths at half their opening (docs/warp-quality.md).
CAVITY_LIGHT = (0.21, 0.11, 0.1)  # front middle; less in depth; less at the corners
TONGUE_LIGHT = 0.3
# Between MediaPipe's inner-lip contours at rest lies what the portrait shows there: lip (a closed mouth's
# contours sit apart on the lips' inner edges), the line where the lips meet, or a smile's teeth. Opening, the
# lips keep their thickness: that band stays at each lip as it was (the warp carries it) and the inside is
# painted only in the gap beyond it. Painted over the whole gap, a talking mouth's slight parting became a dark
# hole with teeth, and a smile's teeth were covered by a grey cavity (docs/warp-quality.md, round eight).
TEETH_FADE = 0.15  # the painted teeth come into view as the painted gap opens to this share of the mouth width
LID_SHADE = 0.82  # a closed lid's brightness at its lash line against its top
# how far above the open upper lid (in its opening) a closing lid is painted: over the lashes and the crease,
# which left in place above a closed lid drew the outline of an open eye (so dlib saw one)
LID_REACH = 0.4
LID_SAMPLE = 0.1  # how far above the painted lid (in its opening) its top colour is taken
LASH_WIDTH = 0.06  # a closed lid's lash line, in eye widths (0.035 was a hairline dlib did not read as a shut eye)


def _polygon_mask(points: np.ndarray, shape: tuple[int, int], origin: np.ndarray) -> np.ndarray:
    mask = np.zeros(shape, np.float32)
    cv2.fillPoly(mask, [np.round((points - origin) * 16).astype(np.int32)], 1.0, cv2.LINE_AA, shift=4)
    return mask


def _roi(points: np.ndarray, pad: float, size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """Integer box (x0, y0, x1, y1) around points, padded, clipped to the frame; None when empty."""
    w, h = size
    x0, y0 = np.floor(points.min(0) - pad).astype(int)
    x1, y1 = np.ceil(points.max(0) + pad).astype(int) + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    return (x0, y0, x1, y1) if x1 - x0 >= 2 and y1 - y0 >= 2 else None


class FacePainter:
    """Paints a mouth interior and eyelids onto warped frames of one target."""

    def __init__(self, image: np.ndarray, mesh: np.ndarray) -> None:
        p = mesh[:, :2]
        h, w = image.shape[:2]
        self.rest = p  # [478, 2] the target's (parted) mesh at rest, output pixels
        self.rest_opening = mouth_opening(p)
        zero = np.zeros(2)
        lips = _polygon_mask(p[list(OUTER_LIPS)], (h, w), zero) - _polygon_mask(p[list(INNER_LIPS)], (h, w), zero)
        lip_pixels = image[lips > 0.5]
        self.lip = (np.median(lip_pixels, 0) if len(lip_pixels) else np.array([150.0, 80.0, 80.0])).astype(np.float32)
        self.lids, self.lashes = [], []
        for k in range(2):
            eye_w = float(np.linalg.norm(p[EYE_CORNERS[k][0]] - p[EYE_CORNERS[k][1]]))
            mid = p[UPPER_LIDS[k][4]]
            # lid skin (the skin tone the teeth are matched to, and the least a closed lid's colour is): the skin
            # between the lid and the brow, its middle-to-bright part (not the crease, lashes or eyeshadow, nor
            # highlights)
            lid = _disc_pixels(image, mid + 0.5 * (p[BROWS[k]] - mid), 0.14 * eye_w)
            if len(lid) >= 8:
                lum = lid @ np.array([0.3, 0.59, 0.11])
                lid = lid[(lum >= np.percentile(lum, 45)) & (lum <= np.percentile(lum, 75))]
            margin = np.concatenate([_disc_pixels(image, p[i], 0.06 * eye_w) for i in UPPER_LIDS[k][2:7]])
            lum = margin @ np.array([0.3, 0.59, 0.11])
            self.lids.append(np.median(lid, 0).astype(np.float32) if len(lid) else self.lip)
            dark = margin[lum <= np.percentile(lum, 15)] if len(margin) else self.lip[None] * 0.3
            self.lashes.append(dark.mean(0).astype(np.float32))
        skin = np.mean(self.lids, 0)
        bright = float(np.clip(skin @ np.array([0.3, 0.59, 0.11]) / 150.0, 0.55, 1.05))
        cast = (skin / max(float(skin.mean()), 1.0)) ** TEETH_CAST  # the portrait's colour cast, from its skin
        self.teeth = np.clip(TEETH * cast * bright, 0, 255).astype(np.float32)
        inside = image[_polygon_mask(p[list(INNER_LIPS)], (h, w), zero) > 0.5].astype(np.float64)
        if self.rest_opening > 0.08 and len(inside) >= 20:  # teeth show at rest: paint teeth like them
            lum = inside @ np.array([0.3, 0.59, 0.11])
            own = np.median(inside[lum >= np.percentile(lum, 75)], 0)
            # teeth are brighter than the skin and paler than the lips (a pink tongue or lip inside is not teeth)
            if own @ np.array([0.3, 0.59, 0.11]) > 1.15 * (skin @ np.array([0.3, 0.59, 0.11])) \
                    and _chroma(own) < TEETH_PALER * _chroma(self.lip):
                self.teeth = own.astype(np.float32)

    def paint(self, image: np.ndarray, moved: np.ndarray, posed: np.ndarray) -> None:
        """Draw onto the warped frame (in place). moved: final mesh [478, 2]; posed: the pose alone [478, 2]."""
        self.mouth(image, moved)
        for eye in range(2):
            self.eyelid(image, moved, posed, eye)

    def mouth(self, image: np.ndarray, p: np.ndarray) -> None:
        """A shaded cavity, upper teeth and a hint of tongue in the inner-lip contour's opening beyond its rest."""
        opening = mouth_opening(p)
        strength = float(smoothstep((opening - self.rest_opening - 0.01) / 0.06))
        if strength <= 0:
            return
        box = _roi(p[list(INNER_LIPS)], 2, (image.shape[1], image.shape[0]))
        if box is None:
            return
        x0, y0, x1, y1 = box
        origin = np.array([x0, y0], np.float64)
        mask = cv2.GaussianBlur(_polygon_mask(p[list(INNER_LIPS)], (y1 - y0, x1 - x0), origin), (0, 0), 0.8)
        # mouth coordinates: u from corner to corner (0 … 1), t from upper lip (0) to lower lip (1)
        c0, c1 = p[UPPER_INNER[0]], p[UPPER_INNER[-1]]
        axis = c1 - c0
        width = max(float(np.linalg.norm(axis)), 1.0)
        axis /= width
        down = np.array([-axis[1], axis[0]])
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        rel = np.stack([xx - c0[0], yy - c0[1]], -1)
        u = np.clip(rel @ axis / width, 0.0, 1.0)
        v = rel @ down
        uu = lambda ids: (p[list(ids)] - c0) @ axis / width  # noqa: E731
        vv = lambda ids: (p[list(ids)] - c0) @ down  # noqa: E731
        v_up = np.interp(u, *_sorted(uu(UPPER_INNER), vv(UPPER_INNER)))
        v_low = np.interp(u, *_sorted(uu(LOWER_INNER), vv(LOWER_INNER)))
        gap = np.maximum(v_low - v_up, 1.0)
        t = np.clip((v - v_up) / gap, 0.0, 1.0)
        keep = 0.5 * min(self.rest_opening / max(opening, 1e-6), 1.0)  # share of the gap kept at each lip
        band = smoothstep(np.minimum(t - keep, 1 - keep - t) / 0.08 + 0.5)  # the painted band, soft-edged
        t = np.clip((t - keep) / (1 - 2 * keep), 0.0, 1.0)  # from here on: 0 … 1 across the painted band
        gap = gap * (1 - 2 * keep)
        side = np.abs(2 * u - 1)  # 0 in the middle, 1 at the corners
        # cavity: dark, darkest deep in the middle and towards the corners
        depth = (1 - np.abs(2 * t - 1)) * (1 - side**2)
        front, deep, corners = CAVITY_LIGHT
        shade = (front - deep * depth - corners * side**3)[..., None]
        colour = self.lip * CAVITY_TINT * shade + 6.0
        # tongue: lighter, low in the mouth, only when it is well open
        tongue = smoothstep((t - 0.62) / 0.3) * (1 - side**2) * smoothstep((opening - 0.25) / 0.25)
        colour += (self.lip * TONGUE_LIGHT - colour) * tongue[..., None]
        # upper teeth hang from the upper lip, receding into shadow at the corners; each tooth's lower edge
        # is rounded (the band's edge scalloped), the seams between them darker, the front ones the longest
        teeth_depth = np.minimum(0.17 * width / gap, 0.42)  # in t units
        phase = np.cos(2 * np.pi * TEETH_ACROSS * (u - 0.5))  # 1 in the middle of a tooth, -1 at a seam
        edge = teeth_depth * (1 - 0.25 * side**2) - 0.04 * (1 - phase) * teeth_depth
        teeth = smoothstep((edge - t) / 0.08) * (1 - smoothstep((side - 0.5) / 0.45)) \
            * smoothstep(gap / (TEETH_FADE * width))  # a slit shows no teeth: they are in its shadow
        seams = 1 - 0.16 * np.clip(-phase, 0, 1) ** 3
        under_lip = 1 - 0.3 * smoothstep((0.08 - t) / 0.08)  # the upper lip's shadow on their roots
        light = seams * under_lip * (0.78 + 0.22 * (1 - side) ** 2)
        tooth = self.teeth * light[..., None]
        colour += (tooth - colour) * teeth[..., None]
        # as sharp as the portrait's own lips: the drawn mouth is softened by a blur scaled to the mouth
        colour = cv2.GaussianBlur(colour, (0, 0), max(MOUTH_SOFTNESS * width, 0.5))
        alpha = (mask * band * strength)[..., None]
        roi = image[y0:y1, x0:x1].astype(np.float32)
        image[y0:y1, x0:x1] = np.clip(roi + (colour - roi) * alpha, 0, 255).astype(np.uint8)

    def eyelid(self, image: np.ndarray, moved: np.ndarray, posed: np.ndarray, eye: int) -> None:
        """Lid skin between where the upper lid would be (pose only) and where it is now, with a lash line."""
        ids = list(UPPER_LIDS[eye])
        top, lid = posed[ids], moved[ids]
        upper, lower = LID_PAIRS[7 * eye + 3]  # the mid-lid pair
        opening = posed[lower] - posed[upper]  # the open eye, pose only
        height = max(float(np.linalg.norm(opening)), 1e-6)
        drop = float(np.median((lid[2:7] - top[2:7]) @ (opening / height)))  # how far the lid came down
        strength = float(smoothstep((drop / height - 0.15) / 0.35))
        if strength <= 0:
            return
        top = top - LID_REACH * opening  # reach over the lashes and the crease above the open lid
        eye_w = float(np.linalg.norm(lid[0] - lid[-1]))
        lower_lid = moved[[low for _, low in LID_PAIRS[7 * eye:7 * eye + 7]]]  # now
        box = _roi(np.concatenate([top, lid, lower_lid + 0.3 * opening]), 0.12 * eye_w + 2,
                   (image.shape[1], image.shape[0]))
        if box is None:
            return
        x0, y0, x1, y1 = box
        origin = np.array([x0, y0], np.float64)
        shape = (y1 - y0, x1 - x0)
        skin = cv2.GaussianBlur(_polygon_mask(np.concatenate([top, lid[::-1]]), shape, origin), (0, 0),
                                max(0.04 * eye_w, 0.7))
        lash = np.zeros(shape, np.float32)
        thickness = max(int(round(LASH_WIDTH * eye_w * (0.6 + 0.4 * strength))), 1)
        cv2.polylines(lash, [np.round((lid - origin) * 16).astype(np.int32)], False, 1.0, thickness, cv2.LINE_AA, 4)
        lash = cv2.GaussianBlur(lash, (0, 0), 0.7)
        roi = image[y0:y1, x0:x1].astype(np.float32)
        a = (skin * strength)[..., None]
        # the closed lid is the skin around it, shaded towards its lash line: 1 at the top, LID_SHADE at the lashes
        near = np.zeros(shape, np.float32)
        cv2.polylines(near, [np.round((lid - origin) * 16).astype(np.int32)], False, 1.0,
                      max(int(round(0.25 * height)), 1), cv2.LINE_AA, 4)
        near = cv2.GaussianBlur(near, (0, 0), max(0.15 * height, 0.7))
        near = near / max(float(near.max()), 1e-6)
        shade = (1 - (1 - LID_SHADE) * near)[..., None]
        # at its top the lid takes the colour of the skin just above it, column by column, so the painted
        # lid has no upper edge (a flat patch with an edge reads as the outline of an open eye)
        rows = np.arange(shape[0], dtype=np.float64)
        xs = top[:, 0] - x0
        order = np.argsort(xs)
        y_top = np.interp(np.arange(shape[1]), xs[order], top[order, 1] - y0)  # [w] the top line per column
        y_lid = np.interp(np.arange(shape[1]), xs[order], lid[order, 1] - y0)
        above = np.clip(np.round(y_top - LID_SAMPLE * height).astype(int), 0, shape[0] - 1)
        over = roi[above, np.arange(shape[1])]  # [w, 3] the skin just above the lid
        over = cv2.GaussianBlur(over[None], (0, 0), max(0.06 * eye_w, 0.7))[0]
        # no darker than the portrait's lid skin: above an open eye that sample is often the crease or
        # eyeshadow, and a lid in its colour drew a dark socket that dlib read as an open eye (round nine)
        over = np.maximum(over, self.lids[eye][None])
        depth = (rows[:, None] - y_top[None]) / np.maximum(y_lid - y_top, 1.0)[None]  # 0 top … 1 lash line
        # towards the lash line, the skin just under the lower lid (the cheek's skin, never eyeshadow or white)
        xl = lower_lid[:, 0] - x0
        order = np.argsort(xl)
        y_under = np.interp(np.arange(shape[1]), xl[order], lower_lid[order, 1] - y0) + 0.25 * height
        below = np.clip(np.round(y_under).astype(int), 0, shape[0] - 1)
        under = cv2.GaussianBlur(roi[below, np.arange(shape[1])][None], (0, 0), max(0.06 * eye_w, 0.7))[0]
        skin_tone = over[None] + (under[None] - over[None]) * np.clip(depth, 0, 1)[..., None].astype(np.float32)
        colour = skin_tone * shade
        out = roi + (colour - roi) * a
        la = (lash * 0.85 * strength)[..., None]
        out = out + (self.lashes[eye] - out) * la
        image[y0:y1, x0:x1] = np.clip(out, 0, 255).astype(np.uint8)


def _chroma(colour: np.ndarray) -> float:
    """(max − min) / max of an RGB colour: 0 grey … 1 fully saturated."""
    return float((np.max(colour) - np.min(colour)) / max(float(np.max(colour)), 1.0))


def _sorted(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(u)
    return u[order], v[order]


def _disc_pixels(image: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    """RGB pixels [K, 3] float within `radius` of `centre` (clipped to the image)."""
    h, w = image.shape[:2]
    r = max(int(np.ceil(radius)), 1)
    cx, cy = int(round(centre[0])), int(round(centre[1]))
    x0, x1, y0, y1 = max(cx - r, 0), min(cx + r + 1, w), max(cy - r, 0), min(cy + r + 1, h)
    if x1 <= x0 or y1 <= y0:
        return np.zeros((0, 3), np.float64)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    inside = (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 <= radius**2
    return image[y0:y1, x0:x1][inside].astype(np.float64)
