"""What the warp alone cannot show: the inside of an opened mouth, and lids over a closing eye."""
from __future__ import annotations

import cv2
import numpy as np

from engine.warp.mesh import EYE_CORNERS, EYE_LEFT_RING, EYE_LIDS, EYE_RIGHT_RING, INNER_LIPS, LOWER_INNER_LIP, \
    MOUTH_CORNERS, UPPER_INNER_LIP


def opening(points: np.ndarray, pair: tuple[int, int], corners: tuple[int, int]) -> float:
    """Gap between two points relative to the distance between two corners."""
    gap = np.linalg.norm(points[pair[0]] - points[pair[1]])
    return float(gap / max(np.linalg.norm(points[corners[0]] - points[corners[1]]), 1e-6))


def _smoothstep(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3 - 2 * x)


def draw_mouth_interior(image: np.ndarray, rest: np.ndarray, moved: np.ndarray) -> None:
    """Fill the opened inner-lip polygon with a shaded mouth cavity and a hint of upper teeth (in place)."""
    open_now = opening(moved, (UPPER_INNER_LIP, LOWER_INNER_LIP), MOUTH_CORNERS)
    open_rest = opening(rest, (UPPER_INNER_LIP, LOWER_INNER_LIP), MOUTH_CORNERS)
    strength = _smoothstep((open_now - open_rest - 0.02) / 0.08)
    if strength <= 0:
        return
    poly = moved[list(INNER_LIPS)]
    x0, y0 = np.floor(poly.min(0)).astype(int) - 3
    x1, y1 = np.ceil(poly.max(0)).astype(int) + 4
    h, w = image.shape[:2]
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    mask = np.zeros((y1 - y0, x1 - x0), np.float32)
    cv2.fillPoly(mask, [np.round((poly - (x0, y0)) * 16).astype(np.int32)], 1.0, cv2.LINE_AA, shift=4)
    mask = cv2.GaussianBlur(mask, (0, 0), 1.0)
    top = moved[UPPER_INNER_LIP][1] - y0
    gap = max(moved[LOWER_INNER_LIP][1] - moved[UPPER_INNER_LIP][1], 1.0)
    yy = (np.arange(y1 - y0, dtype=np.float32)[:, None] - top) / gap  # 0 at the upper lip, 1 at the lower
    xx = np.linspace(-1, 1, x1 - x0, dtype=np.float32)[None, :]
    shade = np.clip(1.0 - 0.6 * (1 - np.abs(2 * yy - 1)) - 0.3 * xx**2, 0.2, 1.0)  # darkest in the middle
    cavity = np.array([70, 28, 30], np.float32) * shade[..., None]
    teeth = _smoothstep((gap / max(np.linalg.norm(moved[MOUTH_CORNERS[0]] - moved[MOUTH_CORNERS[1]]), 1) - 0.12) / 0.1)
    band = np.clip(1 - np.abs(yy - 0.12) / 0.14, 0, 1) * (1 - xx**2) * teeth
    cavity = cavity * (1 - band[..., None]) + np.array([225, 218, 205], np.float32) * band[..., None] * (0.8 + 0.2 * shade[..., None])
    alpha = (mask * strength)[..., None]
    roi = image[y0:y1, x0:x1].astype(np.float32)
    image[y0:y1, x0:x1] = (roi * (1 - alpha) + cavity * alpha).astype(np.uint8)


def draw_eyelids(image: np.ndarray, rest: np.ndarray, moved: np.ndarray) -> None:
    """Cover closing eyes with skin sampled below them and a lash line, so closure reads as a blink (in place)."""
    for ring, lids, corners in ((EYE_LEFT_RING, EYE_LIDS[0], EYE_CORNERS[0]), (EYE_RIGHT_RING, EYE_LIDS[1], EYE_CORNERS[1])):
        closure = 1.0 - opening(moved, lids, corners) / max(opening(rest, lids, corners), 1e-6)
        strength = _smoothstep((closure - 0.35) / 0.4)
        if strength <= 0:
            continue
        poly = moved[list(ring)]
        width = np.linalg.norm(moved[corners[0]] - moved[corners[1]])
        centre = poly.mean(0)
        # skin: median colour of a patch one eye-height below the eye
        sx, sy = int(centre[0]), int(centre[1] + 0.45 * width)
        patch = image[max(sy - 3, 0):sy + 4, max(sx - int(width / 4), 0):sx + int(width / 4)]
        if patch.size == 0:
            continue
        skin = np.median(patch.reshape(-1, 3), axis=0).astype(np.float32)
        x0, y0 = np.floor(poly.min(0) - width * 0.15).astype(int)
        x1, y1 = np.ceil(poly.max(0) + width * 0.15).astype(int)
        h, w = image.shape[:2]
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        mask = np.zeros((y1 - y0, x1 - x0), np.float32)
        grown = centre + (poly - centre) * 1.25
        cv2.fillPoly(mask, [np.round((grown - (x0, y0)) * 16).astype(np.int32)], 1.0, cv2.LINE_AA, shift=4)
        mask = cv2.GaussianBlur(mask, (0, 0), max(width * 0.06, 1.0))
        lash = np.zeros_like(mask)
        lid_y = int(round((moved[lids[0]][1] + moved[lids[1]][1]) / 2)) - y0
        c0, c1 = moved[corners[0]] - (x0, y0), moved[corners[1]] - (x0, y0)
        cv2.line(lash, (int(c0[0]), int(c0[1])), (int((c0[0] + c1[0]) / 2), lid_y), 1.0, max(int(width * 0.04), 1), cv2.LINE_AA)
        cv2.line(lash, (int((c0[0] + c1[0]) / 2), lid_y), (int(c1[0]), int(c1[1])), 1.0, max(int(width * 0.04), 1), cv2.LINE_AA)
        roi = image[y0:y1, x0:x1].astype(np.float32)
        a = (mask * strength)[..., None]
        out = roi * (1 - a) + skin * 0.97 * a
        la = (cv2.GaussianBlur(lash, (0, 0), 0.8) * strength * 0.6)[..., None]
        out = out * (1 - la) + skin * 0.45 * la
        image[y0:y1, x0:x1] = out.astype(np.uint8)
