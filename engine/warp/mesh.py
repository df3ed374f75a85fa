"""Mesh topology for the warp: named landmark rings, control points around the face, triangulation."""
from __future__ import annotations

import cv2
import numpy as np

# Closed rings of MediaPipe mesh indices (ordered around the contour).
INNER_LIPS = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95)
EYE_LEFT_RING = (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7)  # image left
EYE_RIGHT_RING = (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249)
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148,
             176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
UPPER_INNER_LIP, LOWER_INNER_LIP = 13, 14
MOUTH_CORNERS = (61, 291)
EYE_LIDS = ((159, 145), (386, 374))  # (upper, lower) mid-lid points of each eye
EYE_CORNERS = ((33, 133), (362, 263))
N_MESH = 478

HALO_SCALES = (1.35, 1.8)  # rings of control points around the face (relative to the face oval), for hair/neck
HALO_WEIGHTS = (0.85, 0.45)  # how much of the head's rigid motion each ring follows
HALO_POINTS = 24


def halo_points(oval: np.ndarray, centre: np.ndarray) -> list[np.ndarray]:
    """Rings of points around the face oval [K, 2], scaled about `centre`, one array per ring."""
    angles = np.linspace(0, 2 * np.pi, HALO_POINTS, endpoint=False)
    radius = np.linalg.norm(oval - centre, axis=1)
    oval_angles = np.arctan2(oval[:, 1] - centre[1], oval[:, 0] - centre[0])
    order = np.argsort(oval_angles)
    r = np.interp(angles, oval_angles[order], radius[order], period=2 * np.pi)
    unit = np.stack([np.cos(angles), np.sin(angles)], 1)
    return [centre + unit * (r * s)[:, None] for s in HALO_SCALES]


def border_points(size: int, per_side: int = 8) -> np.ndarray:
    """Fixed points on the frame border [4·per_side, 2]."""
    t = np.linspace(0, size - 1, per_side + 1)[:-1]
    e = size - 1
    return np.concatenate([np.stack([t, np.zeros_like(t)], 1), np.stack([np.full_like(t, e), t], 1),
                           np.stack([e - t, np.full_like(t, e)], 1), np.stack([np.zeros_like(t), e - t], 1)])


def triangulate(points: np.ndarray, size: int) -> np.ndarray:
    """Delaunay triangles [T, 3] (indices into `points` [N, 2]) of points inside a size x size frame."""
    if (points < 0).any() or (points > size - 1).any():
        raise ValueError("points must lie inside the frame")
    subdiv = cv2.Subdiv2D((-1, -1, size + 2, size + 2))
    clipped = points.astype(np.float32)
    index = {}
    for i, (x, y) in enumerate(clipped):
        key = (round(float(x), 3), round(float(y), 3))
        if key in index:
            continue
        index[key] = i
        subdiv.insert((float(x), float(y)))
    triangles = []
    for t in subdiv.getTriangleList():
        ids = [index.get((round(float(t[2 * k]), 3), round(float(t[2 * k + 1]), 3))) for k in range(3)]
        if None not in ids:
            triangles.append(ids)
    return np.array(triangles, dtype=np.int32)


def ring_interior_triangles(triangles: np.ndarray, ring: tuple[int, ...], points: np.ndarray) -> np.ndarray:
    """Mask of triangles whose three vertices lie on `ring` and whose centroid is inside it."""
    ring_set = set(ring)
    polygon = points[list(ring)].astype(np.float32)
    mask = np.zeros(len(triangles), bool)
    for k, tri in enumerate(triangles):
        if all(int(v) in ring_set for v in tri):
            c = points[tri].mean(0)
            mask[k] = cv2.pointPolygonTest(polygon, (float(c[0]), float(c[1])), False) >= 0
    return mask
