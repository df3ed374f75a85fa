"""Fold-free control points and the dense piecewise-affine warp they define.

The backward map (output pixel → source pixel) is evaluated on a reduced grid: each triangle's rows of
grid pixels (spans) are found at once, each span's pixels take its triangle's affine, and the map is
upsampled and applied with one cv2.remap at full resolution.
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
    way, and then only where they fold themselves: a fold in the cheek beside the mouth's corner (`aligned/2`
    turned, the clip's frame 116) no longer closes the mouth to half its opening. What still folds is toned
    down towards `rigid` within `radius` (rest pixels) of the fold, a reach widened (FOLD_REACHES) while
    anything still folds, and, failing that, everywhere. Only the first `movable` points move (the canvas
    border stays).
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
    neighbours) until none is flipped or `rounds` are done; `pinned` points sit out the first half, and the
    second half too unless they are corners of a flipped triangle themselves."""
    disp = points - base
    n = len(points)
    degree = np.maximum(np.bincount(edges[:, 0], minlength=n), 1).astype(np.float64)
    for k in range(rounds):
        bad = _flipped(base + disp, triangles)
        if not bad.any():
            break
        folded = np.zeros(n, bool)
        folded[triangles[bad]] = True
        near = folded.copy()
        near[edges[near[edges[:, 0]], 1]] = True
        near[movable:] = False
        if pinned is not None:
            near[pinned if k < rounds // 2 else pinned[~folded[pinned]]] = False
        for axis in (0, 1):
            mean = np.bincount(edges[:, 0], weights=disp[edges[:, 1], axis], minlength=n) / degree
            disp[near, axis] = 0.3 * disp[near, axis] + 0.7 * mean[near]
    return base + disp


def row_spans(corners: np.ndarray, width: int, height: int) -> tuple[np.ndarray, ...]:
    """The pixels whose centres lie in each triangle, as runs along rows: (triangle, row, first, count) [S].

    `corners` [T, 3, 2] are in pixels of a width × height grid, pixel centres at integers. A pixel on an
    edge belongs to the triangle on its right (or below it, on a level edge): triangles that tile the grid
    cover every pixel exactly once, with no gap and no overlap.
    """
    v = np.take_along_axis(corners, np.argsort(corners[:, :, 1], axis=1)[:, :, None], axis=1)  # top to bottom
    x, y = v[..., 0], v[..., 1]  # [T, 3]
    upper, lower = [0, 0, 1], [2, 1, 2]  # the long edge 0→2, then the short ones 0→1 and 1→2
    with np.errstate(divide="ignore", invalid="ignore"):  # a level edge spans no row: its inf / NaN is never read
        slope = (x[:, lower] - x[:, upper]) / (y[:, lower] - y[:, upper])  # [T, 3] x = at + slope·y
        at = (x[:, upper] - y[:, upper] * slope).ravel()
    slope = slope.ravel()
    finite = np.isfinite(v).all((1, 2))  # a triangle with a corrupt corner covers nothing
    top = np.clip(np.ceil(np.where(finite, y[:, 0], 0)), 0, height).astype(np.int64)
    rows = np.clip(np.ceil(np.where(finite, y[:, 2], 0)), 0, height).astype(np.int64) - top
    tri = np.repeat(np.arange(len(v)), rows)
    row = np.arange(len(tri)) - np.repeat(np.cumsum(rows) - rows - top, rows)
    yy = row.astype(np.float64)
    long = 3 * tri
    short = long + np.where(yy < y[tri, 1], 1, 2)  # above the middle corner, below it
    x_long, x_short = at[long] + yy * slope[long], at[short] + yy * slope[short]
    first = np.clip(np.ceil(np.minimum(x_long, x_short)), 0, width).astype(np.int64)
    count = np.clip(np.ceil(np.maximum(x_long, x_short)), 0, width).astype(np.int64) - first
    kept = count > 0
    return tri[kept], row[kept], first[kept], count[kept]


class DenseWarp:
    """Piecewise-affine backward warp of a fixed triangulation whose output vertices move each frame."""

    def __init__(self, rest: np.ndarray, triangles: np.ndarray, size: tuple[int, int], step: int) -> None:
        self.size = size  # (width, height) of the output
        w, h = size
        self.grid = (max(-(-w // step), 2), max(-(-h // step), 2))  # (gw, gh) resolution of the rasterised map
        gw, gh = self.grid
        self._fx, self._fy = gw / w, gh / h  # full-res → grid, pixel centres aligned as in cv2.resize
        xs = (np.arange(gw) + 0.5) / self._fx - 0.5  # full-res x of each grid column
        self._ys = (np.arange(gh) + 0.5) / self._fy - 0.5  # ... and y of each grid row
        self._raster_xs = np.tile(xs, gh).astype(np.float32)  # [gh·gw] x of every grid pixel in raster order
        self._at_rest = np.stack(np.meshgrid(xs, self._ys), -1).reshape(-1, 2).astype(np.float32)  # [gh·gw, 2]
        self._coarse = np.empty_like(self._at_rest)  # the map on the grid, rewritten whole by each frame
        # Upsampling is exact for a linear map except where cv2.resize holds the outermost grid value (the last
        # half grid pixel at each side): there the identity goes on and the offset from it is held.
        self._edge_x, self._edge_y = _held_by_resize(w, gw), _held_by_resize(h, gh)
        self._triangles = triangles
        self._src = rest[triangles]  # [T, 3, 2]

    def backward_map(self, moved: np.ndarray) -> np.ndarray:
        """[h, w, 2] float32: for each output pixel, the source pixel it shows."""
        dst = moved[self._triangles]  # [T, 3, 2]
        src = self._src
        e1, e2 = dst[:, 1] - dst[:, 0], dst[:, 2] - dst[:, 0]
        s1, s2 = src[:, 1] - src[:, 0], src[:, 2] - src[:, 0]
        det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]  # twice the signed area
        # affine output → source per triangle, source = A·output + t: A = [s1 s2]·[e1 e2]⁻¹, t = src0 − A·dst0
        a = np.stack([s1[:, 0] * e2[:, 1] - s2[:, 0] * e1[:, 1], s2[:, 0] * e1[:, 0] - s1[:, 0] * e2[:, 0],
                      s1[:, 1] * e2[:, 1] - s2[:, 1] * e1[:, 1], s2[:, 1] * e1[:, 0] - s1[:, 1] * e2[:, 0]], 1)
        sliver = det * (self._fx * self._fy) <= 2e-3  # flipped or under ~1/1000 grid pixel: A is ill-conditioned
        a /= np.where(sliver, 1.0, det)[:, None]
        a[sliver] = (1.0, 0.0, 0.0, 1.0)  # a sliver's pixels show its source's centroid
        t = src[:, 0] - np.stack([a[:, 0] * dst[:, 0, 0] + a[:, 1] * dst[:, 0, 1],
                                  a[:, 2] * dst[:, 0, 0] + a[:, 3] * dst[:, 0, 1]], 1)
        t[sliver] = (src[sliver] - dst[sliver]).mean(1)
        gw, gh = self.grid
        tri, row, first, count = row_spans((dst + 0.5) * (self._fx, self._fy) - 0.5, gw, gh)
        # along a grid row at y the source is linear in x: (a00·x + a01·y + t0, a10·x + a11·y + t1)
        y, affine = self._ys[row], np.concatenate([a, t], 1)[tri]  # [S], [S, 6]
        runs = np.stack([affine[:, 0], affine[:, 1] * y + affine[:, 4],
                         affine[:, 2], affine[:, 3] * y + affine[:, 5]], 1).astype(np.float32)  # [S, 4]
        start = row * gw + first
        order = np.argsort(start)
        tri, start, count, runs = tri[order], start[order], count[order], runs[order]
        coarse = self._coarse
        if len(start) and start[0] == 0 and start[-1] + count[-1] == gw * gh \
                and np.array_equal(start[1:], (start + count)[:-1]):
            # the triangles tile the grid (each pixel in one run, runs in raster order): expand the runs in place
            per_pixel, xs, at = np.repeat(runs, count, axis=0), self._raster_xs, slice(None)
        else:  # a fold overlaps triangles (larger ones win the pixels they share) or leaves gaps (left at rest)
            coarse[:] = self._at_rest
            order = np.argsort(det[tri], kind="stable")
            start, count, runs = start[order], count[order], runs[order]
            at = np.repeat(start - (np.cumsum(count) - count), count) + np.arange(int(count.sum()))
            at, last = np.unique(at[::-1], return_index=True)  # a pixel drawn twice keeps its last run
            per_pixel, xs = np.repeat(runs, count, axis=0)[::-1][last], self._raster_xs[at]
        coarse[at, 0] = per_pixel[:, 0] * xs + per_pixel[:, 1]
        coarse[at, 1] = per_pixel[:, 2] * xs + per_pixel[:, 3]
        full = cv2.resize(coarse.reshape(gh, gw, 2), self.size, interpolation=cv2.INTER_LINEAR)
        for index, fix in self._edge_x:
            full[:, index, 0] += fix
        for index, fix in self._edge_y:
            full[index, :, 1] += fix
        return full

    def __call__(self, image: np.ndarray, moved: np.ndarray) -> np.ndarray:
        """`image` (the target at rest, output-sized) warped so that the rest points land on `moved`."""
        return self.apply(image, self.backward_map(moved))

    @staticmethod
    def apply(image: np.ndarray, mapping: np.ndarray) -> np.ndarray:
        """`image` resampled by a backward map [h, w, 2] (from backward_map)."""
        return cv2.remap(image, mapping, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)


def _held_by_resize(full: int, grid: int) -> list[tuple[int, float]]:
    """(full-res index, correction) where cv2.resize's linear upsampling from `grid` to `full` samples holds the
    outermost grid value instead of going on linearly (grid pixel i lies at full-res (i + 0.5)·full/grid − 0.5)."""
    scale = full / grid
    at_grid = (np.arange(full) + 0.5) / scale - 0.5
    held = np.clip(at_grid, 0, grid - 1)
    return [(int(i), float((at_grid[i] - held[i]) * scale)) for i in np.flatnonzero(at_grid != held)]
