"""Fold-free control points and the dense piecewise-affine warp they define.

The backward map (output pixel → source pixel) is rasterised per triangle at a reduced
resolution (triangle ids by cv2.fillConvexPoly, then one affine per id), upsampled as an
offset field, and applied with one cv2.remap at full resolution.
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from engine.warp.mesh import signed_areas
from engine.warp.ramp import smoothstep


# How far a local tone-down reaches, in the fold radius: widened while anything still folds. At 1 the edge
# between the toned-down points and those moving freely can be so steep that it folds in turn, and the repair
# then toned down the whole face, the open mouth with it (round ten: a turned head's far cheek held
# `aligned/2`'s widest mouth to 0.83 of its opening; over the clip the least kept was 0.72–0.84 on four
# portraits, now 0.91–0.96, and 18 frames of the seven portraits were toned down whole, now 2).
FOLD_REACHES = (1.0, 1.5, 2.0, 3.0)


def fold_free(rigid: np.ndarray, moved: np.ndarray, rest: np.ndarray, triangles: np.ndarray, edges: np.ndarray,
              movable: int, radius: float, pinned: np.ndarray | None = None, rounds: int = 24) -> np.ndarray:
    """`moved` [P, 2] changed just enough that no triangle is flipped (their rest areas are all positive).

    `rigid` [P, 2] is a reference without expression (the in-plane head pose; made fold-free the same
    way against `rest` should it fold). Where triangles are flipped, the displacement from `rigid` is
    relaxed towards the mean of the neighbours' (local Laplacian smoothing: a turned cheek or an
    overshooting lip settles flat). The `pinned` points (the lips and lids) keep theirs for the first
    half of the rounds, so the skin around a wide-open mouth gives way to the lips before the lips give
    way. What still folds is toned down towards `rigid` within `radius` (rest pixels) of the fold, a reach
    widened (FOLD_REACHES) while anything still folds, and, failing that, everywhere. Only the first
    `movable` points move (the canvas border stays).
    """
    if not _flipped(moved, triangles).any():
        return moved
    if _flipped(rigid, triangles).any():  # rare: a strong roll folds the blended halo, or the frame edge
        rigid = _relax(rest, rigid, triangles, edges, movable, rounds)
        if _flipped(rigid, triangles).any():
            rigid = _tone_down(rest, rigid, triangles, lambda a: a)
    points = _relax(rigid, moved, triangles, edges, movable, rounds, pinned)
    bad = _flipped(points, triangles)
    if bad.any():
        near = np.unique(triangles[bad])
        dist = np.min(np.linalg.norm(rest[:, None, :] - rest[None, near, :], axis=2), axis=1)
        for reach in FOLD_REACHES:
            weight = np.exp(-((dist / (reach * radius)) ** 2))[:, None]  # 1 at the fold, 0 far from it
            toned = _tone_down(rigid, points, triangles, lambda a, w=weight: 1.0 - (1.0 - a) * w)
            if not _flipped(toned, triangles).any():
                break
        points = toned
    if _flipped(points, triangles).any():
        points = _tone_down(rigid, points, triangles, lambda a: a)
    return points


def _tone_down(base: np.ndarray, points: np.ndarray, triangles: np.ndarray,
               gain: Callable[[float], float | np.ndarray], steps: int = 7) -> np.ndarray:
    """base + gain(α)·(points − base) with the largest α in [0, 1] (bisection) that folds nothing."""
    disp = points - base
    lo, hi = 0.0, 1.0
    for _ in range(steps):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if not _flipped(base + gain(mid) * disp, triangles).any() else (lo, mid)
    return base + gain(lo) * disp


def keep_inside(rest: np.ndarray, moved: np.ndarray, canvas: tuple[float, float, float, float],
                reach: float = 0.7, falloff: float = 0.12) -> np.ndarray:
    """Displacements tamed near the fixed canvas border (x0, y0, x1, y1): motion towards an edge is softly
    limited (tanh) to `reach` of the distance to it, motion along an edge fades out (smoothstep) within
    `falloff` of the canvas size from it, so that triangles touching the border neither cross nor shear it."""
    disp = moved - rest
    low, high = np.array(canvas[:2]), np.array(canvas[2:])
    room = np.maximum(np.where(disp < 0, rest - low, high - rest) * reach, 1e-3)
    disp = room * np.tanh(disp / room)
    edge = np.minimum(rest - low, high - rest) / (falloff * float(np.min(high - low)))  # [P, 2] to the x / y edges
    fade = smoothstep(edge)
    disp[:, 0] *= fade[:, 1]  # sideways motion fades near the top and bottom edges
    disp[:, 1] *= fade[:, 0]  # up-down motion fades near the left and right edges
    return rest + disp


def _flipped(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    return signed_areas(points, triangles) < -1e-6


def _relax(base: np.ndarray, points: np.ndarray, triangles: np.ndarray, edges: np.ndarray, movable: int,
           rounds: int, pinned: np.ndarray | None = None) -> np.ndarray:
    """Laplacian smoothing of (points − base) around flipped triangles (their vertices and those vertices'
    neighbours) until none is flipped or `rounds` are done; `pinned` points sit out the first half."""
    disp = points - base
    n = len(points)
    degree = np.maximum(np.bincount(edges[:, 0], minlength=n), 1).astype(np.float64)
    for k in range(rounds):
        bad = _flipped(base + disp, triangles)
        if not bad.any():
            break
        near = np.zeros(n, bool)
        near[triangles[bad]] = True
        near[edges[near[edges[:, 0]], 1]] = True
        near[movable:] = False
        if pinned is not None and k < rounds // 2:
            near[pinned] = False
        for axis in (0, 1):
            mean = np.bincount(edges[:, 0], weights=disp[edges[:, 1], axis], minlength=n) / degree
            disp[near, axis] = 0.3 * disp[near, axis] + 0.7 * mean[near]
    return base + disp


class DenseWarp:
    """Piecewise-affine backward warp of a fixed triangulation whose output vertices move each frame."""

    def __init__(self, rest: np.ndarray, triangles: np.ndarray, size: tuple[int, int], step: int) -> None:
        self.size = size  # (width, height) of the output
        w, h = size
        self.grid = (max(-(-w // step), 2), max(-(-h // step), 2))  # (gw, gh) resolution of the rasterised map
        gw, gh = self.grid
        self._fx, self._fy = gw / w, gh / h  # full-res → grid, pixel centres aligned as in cv2.resize
        xs = ((np.arange(gw) + 0.5) / self._fx - 0.5).astype(np.float32)
        ys = ((np.arange(gh) + 0.5) / self._fy - 0.5).astype(np.float32)
        self._gx, self._gy = np.meshgrid(xs, ys)  # [gh, gw] full-res coordinates of the grid pixels
        fx, fy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        self._identity = np.stack([fx, fy], -1)  # [h, w, 2]
        self._triangles = triangles
        src = rest[triangles]  # [T, 3, 2]
        self._src0 = src[:, 0]  # [T, 2]
        self._src_edges = (src[:, 1] - src[:, 0], src[:, 2] - src[:, 0])  # two [T, 2]
        self._ids = np.zeros((gh, gw), np.int32)

    def backward_map(self, moved: np.ndarray) -> np.ndarray:
        """[h, w, 2] float32: for each output pixel, the source pixel it shows."""
        dst = moved[self._triangles]  # [T, 3, 2]
        e1, e2 = dst[:, 1] - dst[:, 0], dst[:, 2] - dst[:, 0]
        det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]  # twice the signed area
        drawn = np.flatnonzero(det * (self._fx * self._fy) > 2e-3)  # skip slivers below ~1/1000 grid pixel
        e1, e2, inv = e1[drawn], e2[drawn], 1.0 / det[drawn]
        s1, s2 = self._src_edges[0][drawn], self._src_edges[1][drawn]
        # affine output → source per triangle: A = [s1 s2]·[e1 e2]⁻¹, t = src0 − A·dst0; stored as offsets
        a00 = (s1[:, 0] * e2[:, 1] - s2[:, 0] * e1[:, 1]) * inv
        a01 = (s2[:, 0] * e1[:, 0] - s1[:, 0] * e2[:, 0]) * inv
        a10 = (s1[:, 1] * e2[:, 1] - s2[:, 1] * e1[:, 1]) * inv
        a11 = (s2[:, 1] * e1[:, 0] - s1[:, 1] * e2[:, 0]) * inv
        d0, s0 = dst[drawn, 0], self._src0[drawn]
        offsets = np.zeros((len(dst) + 1, 6), np.float32)  # row 0: uncovered pixels keep their place
        offsets[drawn + 1] = np.stack([
            a00 - 1.0, a01, s0[:, 0] - a00 * d0[:, 0] - a01 * d0[:, 1],
            a10, a11 - 1.0, s0[:, 1] - a10 * d0[:, 0] - a11 * d0[:, 1],
        ], 1)
        ids = self._ids
        ids.fill(0)
        order = np.argsort(det[drawn])  # small triangles first: larger ones win the pixels they share
        grid_xy = np.round((dst[drawn[order]] + 0.5) * (self._fx, self._fy) * 16 - 8).astype(np.int32)  # 1/16 px
        fill = cv2.fillConvexPoly
        for poly, tid in zip(grid_xy, (drawn[order] + 1).tolist()):
            fill(ids, poly, tid, cv2.LINE_8, 4)
        o = np.take(offsets, ids, axis=0)  # [gh, gw, 6]
        coarse = np.empty(ids.shape + (2,), np.float32)
        coarse[..., 0] = o[..., 0] * self._gx + o[..., 1] * self._gy + o[..., 2]
        coarse[..., 1] = o[..., 3] * self._gx + o[..., 4] * self._gy + o[..., 5]
        full = cv2.resize(coarse, self.size, interpolation=cv2.INTER_LINEAR)
        full += self._identity
        return full

    def __call__(self, image: np.ndarray, moved: np.ndarray) -> np.ndarray:
        """`image` (the target at rest, output-sized) warped so that the rest points land on `moved`."""
        return self.apply(image, self.backward_map(moved))

    @staticmethod
    def apply(image: np.ndarray, mapping: np.ndarray) -> np.ndarray:
        """`image` resampled by a backward map [h, w, 2] (from backward_map)."""
        return cv2.remap(image, mapping, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
