"""Dense piecewise-affine warp of the target's pixels, plus a mouth interior and eyelids.

The backward map (output pixel → source pixel) is rasterised per triangle at a reduced
resolution, upsampled smoothly, and applied with one cv2.remap at full resolution.
"""
from __future__ import annotations

import cv2
import numpy as np

from engine.warp.mesh import EYE_CORNERS, EYE_LEFT_RING, EYE_LIDS, EYE_RIGHT_RING, INNER_LIPS, LOWER_INNER_LIP, \
    MOUTH_CORNERS, UPPER_INNER_LIP


def signed_areas(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    a, b, c = points[triangles[:, 0]], points[triangles[:, 1]], points[triangles[:, 2]]
    return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))


def edges_of(triangles: np.ndarray) -> np.ndarray:
    """Unique undirected edges [E, 2] of a triangulation, both directions listed ([2E, 2])."""
    e = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    e = np.unique(np.sort(e, axis=1), axis=0)
    return np.concatenate([e, e[:, ::-1]])


def fold_free(rest: np.ndarray, rigid: np.ndarray, moved: np.ndarray, triangles: np.ndarray, edges: np.ndarray,
              rounds: int = 12, min_area: float = 1.0) -> np.ndarray:
    """Remove fold-overs from `moved` while keeping the warp smooth.

    The non-rigid displacement (moved − rigid) of vertices of folded triangles is relaxed towards
    the mean of their neighbours' (a local Laplacian smoothing) until no triangle with a rest area
    above `min_area` px² is flipped relative to `rigid` (the pose-only positions); whatever still
    folds then is attenuated globally (bisection on α in rigid + α·(moved − rigid)).
    """
    rest_area = signed_areas(rest, triangles)
    rest_sign = np.where(np.abs(rest_area) >= min_area, np.sign(signed_areas(rigid, triangles)), 0)

    def folded(points: np.ndarray) -> np.ndarray:
        return (np.sign(signed_areas(points, triangles)) != rest_sign) & (rest_sign != 0)

    disp = moved - rigid
    degree = np.bincount(edges[:, 0], minlength=len(rest)).astype(np.float64)[:, None]
    for _ in range(rounds):
        bad = folded(rigid + disp)
        if not bad.any():
            return rigid + disp
        idx = np.unique(triangles[bad])
        mean = np.zeros_like(disp)
        np.add.at(mean, edges[:, 0], disp[edges[:, 1]])
        mean /= np.maximum(degree, 1)
        disp[idx] = 0.3 * disp[idx] + 0.7 * mean[idx]
    lo, hi = 0.0, 1.0
    for _ in range(6):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if not folded(rigid + mid * disp).any() else (lo, mid)
    return rigid + lo * disp


def backward_map(rest: np.ndarray, moved: np.ndarray, triangles: np.ndarray, size: int, grid: int) -> np.ndarray:
    """map [size, size, 2] float32: for each output pixel, where to sample the source (piecewise affine)."""
    scale = grid / size
    ids = np.zeros((grid, grid), np.int32)
    dst = moved[triangles]  # [T, 3, 2]
    for k, tri in enumerate(np.round(dst * scale * 16).astype(np.int32)):
        cv2.fillConvexPoly(ids, tri, k + 1, lineType=cv2.LINE_8, shift=4)
    # per-triangle affine dst → src:  M = S · inv(D)
    d = np.concatenate([dst.transpose(0, 2, 1), np.ones((len(triangles), 1, 3))], axis=1)  # [T, 3, 3]
    s = rest[triangles].transpose(0, 2, 1)  # [T, 2, 3]
    ok = np.abs(np.linalg.det(d)) > 1e-6
    m = np.zeros((len(triangles) + 1, 2, 3))
    m[0] = [[1, 0, 0], [0, 1, 0]]  # uncovered pixels: identity
    m[1:][ok] = s[ok] @ np.linalg.inv(d[ok])
    m[1:][~ok] = m[0]
    centres = (np.arange(grid) + 0.5) / scale - 0.5
    xs, ys = np.meshgrid(centres, centres)
    mm = m[ids]  # [g, g, 2, 3]
    coarse = mm[..., 0] * xs[..., None] + mm[..., 1] * ys[..., None] + mm[..., 2]  # [g, g, 2]
    # identity offsets interpolate better than absolute positions
    offset = (coarse - np.stack([xs, ys], -1)).astype(np.float32)
    offset = cv2.resize(offset, (size, size), interpolation=cv2.INTER_LINEAR)
    full = np.arange(size, dtype=np.float32)
    gx, gy = np.meshgrid(full, full)
    return offset + np.stack([gx, gy], -1)


def warp(image: np.ndarray, mapping: np.ndarray) -> np.ndarray:
    return cv2.remap(image, mapping[..., 0], mapping[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)


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
