"""The dense warp's rasteriser and backward map, against the piecewise-affine map they stand for."""
from __future__ import annotations

import numpy as np
import pytest

from engine.warp.mesh import signed_areas
from engine.warp.warpfield import DenseWarp, row_spans


def grid_mesh(width: int, height: int, cells: int, jitter: float,
              seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A regular triangulation of the frame (its border on the frame's outer edge, half a pixel beyond the outermost
    pixel centres): rest points, the same with the inner ones moved at random by up to `jitter` of a cell, and the
    triangles (positive areas)."""
    xs, ys = np.linspace(-0.5, width - 0.5, cells + 1), np.linspace(-0.5, height - 0.5, cells + 1)
    rest = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
    k = cells + 1
    corners = [r * k + c for r in range(cells) for c in range(cells)]  # each cell's top left
    quads = [(a, a + 1, a + k, a + k + 1) for a in corners]
    triangles = np.array([t for a, b, c, d in quads for t in ((a, b, d), (a, d, c))])
    inner = (rest[:, 0] > 0) & (rest[:, 0] < width - 1) & (rest[:, 1] > 0) & (rest[:, 1] < height - 1)
    cell = width / cells
    moved = rest + inner[:, None] * np.random.default_rng(seed).uniform(-jitter, jitter, rest.shape) * cell
    assert signed_areas(rest, triangles).min() > 0 and signed_areas(moved, triangles).min() > 0
    return rest, moved, triangles


def exact_map(rest: np.ndarray, moved: np.ndarray, triangles: np.ndarray, width: int, height: int) -> np.ndarray:
    """[h, w, 2] the piecewise-affine backward map at every pixel centre, by barycentric coordinates; NaN where
    no triangle holds the centre."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    out = np.full((height, width, 2), np.nan)
    for tri in triangles:
        (ax, ay), (bx, by), (cx, cy) = moved[tri]
        det = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
        u = ((xx - ax) * (cy - ay) - (yy - ay) * (cx - ax)) / det  # weight of b
        v = ((bx - ax) * (yy - ay) - (by - ay) * (xx - ax)) / det  # weight of c
        inside = (u >= 0) & (v >= 0) & (u + v <= 1)
        src = rest[tri]
        out[inside] = ((1 - u - v)[..., None] * src[0] + u[..., None] * src[1] + v[..., None] * src[2])[inside]
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_rows_of_a_tiling_cover_every_pixel_once_and_only_inside_its_triangle(seed: int) -> None:
    width, height = 61, 47
    _, moved, triangles = grid_mesh(width, height, 7, 0.35, seed)
    corners = moved[triangles]
    tri, row, first, count = row_spans(corners, width, height)
    owner = np.full((height, width), -1)
    covered = np.zeros((height, width), int)
    for t, r, f, c in zip(tri, row, first, count):
        owner[r, f:f + c] = t
        covered[r, f:f + c] += 1
    assert (covered == 1).all()
    yy, xx = np.mgrid[0:height, 0:width]
    for t in range(len(triangles)):
        a, b, c = corners[t]
        inside = np.ones((height, width), bool)
        for p, q in ((a, b), (b, c), (c, a)):  # positive areas: the inside lies on this side of each edge
            inside &= (q[0] - p[0]) * (yy - p[1]) - (q[1] - p[1]) * (xx - p[0]) >= 0
        assert np.array_equal(owner == t, inside), t  # the centres on an edge are measure-zero with random points


def test_at_full_resolution_the_backward_map_is_the_piecewise_affine_map() -> None:
    width, height = 64, 48
    rest, moved, triangles = grid_mesh(width, height, 6, 0.3, 3)
    mapping = DenseWarp(rest, triangles, (width, height), step=1).backward_map(moved)
    expected = exact_map(rest, moved, triangles, width, height)
    assert not np.isnan(expected).any()
    assert np.abs(mapping - expected).max() < 1e-3


def test_a_global_affine_motion_is_exact_at_half_resolution() -> None:
    """The grid's map is upsampled linearly, so a linear map survives whole. Within half a grid pixel of the
    frame's edge, where the upsampling holds the outermost grid value, the identity goes on and the offset is
    held: off by (A − I)·Δ there."""
    width, height = 80, 61  # odd: the grid does not divide the frame
    rest, _, triangles = grid_mesh(width, height, 5, 0.0, 0)
    centre = np.array([width / 2, height / 2])
    turn = np.array([[1.1, -0.03], [0.03, 1.1]])  # the moved mesh still covers the whole frame
    moved = (rest - centre) @ turn.T + centre
    mapping = DenseWarp(rest, triangles, (width, height), step=2).backward_map(moved)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    expected = (np.stack([xx, yy], -1) - centre) @ np.linalg.inv(turn).T + centre
    error = np.abs(mapping - expected).max(-1)
    assert error[1:-1, 1:-1].max() < 1e-3
    assert error.max() < 0.15 * 0.5  # each row of A⁻¹ − I sums to under 0.15, half a pixel out
    assert np.abs(mapping[[0, -1], :, 1] - expected[[0, -1], :, 1]).max() > 1e-3  # (the edge rows do differ)


def test_a_folded_mesh_still_gives_a_finite_map_inside_the_source() -> None:
    """fold_free keeps triangles from flipping; should one flip anyway, overlapping triangles are resolved
    (the larger wins) and nothing is left undefined."""
    width, height = 64, 64
    rest, moved, triangles = grid_mesh(width, height, 4, 0.0, 0)
    inner = np.flatnonzero((rest[:, 0] > 0) & (rest[:, 0] < width - 1) & (rest[:, 1] > 0) & (rest[:, 1] < height - 1))
    moved = moved.copy()
    moved[inner[4]] += (20.0, 9.0)  # past its neighbours: some triangles flip, some overlap
    assert signed_areas(moved, triangles).min() < 0
    mapping = DenseWarp(rest, triangles, (width, height), step=2).backward_map(moved)
    assert np.isfinite(mapping).all()
    assert mapping.min() > -1 and mapping[..., 0].max() < width and mapping[..., 1].max() < height
    corner = DenseWarp(rest, triangles, (width, height), step=2).backward_map(rest)[:8, :8]  # far from the fold
    assert np.abs(mapping[:8, :8] - corner).max() < 1e-3


def test_a_mesh_that_misses_the_frame_leaves_it_at_rest() -> None:
    width, height = 40, 30
    rest, _, triangles = grid_mesh(width, height, 3, 0.0, 0)
    mapping = DenseWarp(rest, triangles, (width, height), step=2).backward_map(rest + (500.0, 0.0))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    assert np.abs(mapping - np.stack([xx, yy], -1)).max() < 1e-3


def test_a_point_that_is_not_a_number_leaves_its_triangles_out() -> None:
    """A corrupt point must not stop the frame: its triangles draw nothing and those pixels stay at rest."""
    width, height = 40, 30
    rest, moved, triangles = grid_mesh(width, height, 3, 0.2, 1)
    inner = np.flatnonzero((rest[:, 0] > 0) & (rest[:, 0] < width - 1) & (rest[:, 1] > 0) & (rest[:, 1] < height - 1))
    warp = DenseWarp(rest, triangles, (width, height), step=2)
    clean = warp.backward_map(moved)
    corrupt = moved.copy()
    corrupt[inner[0]] = (10.0, np.nan)
    with np.errstate(invalid="ignore"):
        mapping = warp.backward_map(corrupt)
    assert np.isfinite(mapping).all()
    yy, xx = np.mgrid[0:height, 0:width]
    far = np.hypot(xx - moved[inner[0], 0], yy - moved[inner[0], 1]) > 1.5 * width / 3  # beyond its triangles
    assert np.abs(mapping - clean)[far].max() < 1e-3
    assert np.abs(mapping - clean)[~far].max() > 1.0  # (near it, its triangles were left out)
