"""Mesh topology for the warp: named MediaPipe landmarks, control points around the face, triangulation."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engine.face.landmarks import FACE_OVAL

N_MESH = 478  # MediaPipe face mesh with irises (refine_landmarks=True)

# Closed rings of mesh indices, ordered around the contour. "Left"/"right" as seen in the image.
INNER_LIPS = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95)
EYE_LEFT_RING = (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7)
EYE_RIGHT_RING = (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249)
OUTER_LIPS = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146)
UPPER_INNER_LIP, LOWER_INNER_LIP = 13, 14  # centre of the inner lip contour
# (upper, lower) points facing each other across the mouth opening and across each eye: they may meet, not cross
LIP_PAIRS = ((191, 95), (80, 88), (81, 178), (82, 87), (13, 14), (312, 317), (311, 402), (310, 318), (415, 324))
LID_PAIRS = ((246, 7), (161, 163), (160, 144), (159, 145), (158, 153), (157, 154), (173, 155),
             (466, 249), (388, 390), (387, 373), (386, 374), (385, 380), (384, 381), (398, 382))
BROW_POINTS = (70, 63, 105, 66, 107, 46, 53, 52, 65, 55,  # image-left brow: upper edge, lower edge
               300, 293, 334, 296, 336, 276, 283, 282, 295, 285)  # image-right brow
# (outer, inner) points across each lip, corner to corner: the upper lip, then the lower
LIP_THICKNESS = ((185, 191), (40, 80), (39, 81), (37, 82), (0, 13), (267, 312), (269, 311), (270, 310), (409, 415),
                 (146, 95), (91, 88), (181, 178), (84, 87), (17, 14), (314, 317), (405, 402), (321, 318), (375, 324))
MOUTH_CORNERS = (61, 291)  # outer mouth corners
EYE_LIDS = ((159, 145), (386, 374))  # (upper, lower) mid-lid points of each eye
EYE_CORNERS = ((33, 133), (362, 263))  # (outer, inner) of the left eye; (inner, outer) of the right eye
EYE_OUTER_CORNERS = (33, 263)
N_SURFACE = 468  # points before this are the face surface; the rest are the irises (not warped: too jittery)
NOSE_TIP = 1
CHEEKS = (234, 454)  # face-oval points level with the eyes, left and right

# Points that move little with expression (forehead, nose bridge, temples, cheekbones). Not the eye corners:
# MediaPipe's refined eye contour moves them with the lids, and in the head's pose fit a blink or a squint
# became a nod (without them the eyes of the fixture portraits follow the driver better, docs/warp-quality.md,
# round fifteen).
RIGID = (10, 151, 9, 8, 168, 6, 197, 195, 5, 4, 1, 234, 454, 127, 356, 109, 338, 67, 297, 116, 345, 123, 352,
         93, 323)

# Feature contours always take part in the warp; other surface points only where they are at least
# THIN_SPACING face widths from every point already taken (drops the bunched-up points along a turned
# cheek, whose tiny triangles would flip with every bit of landmark jitter).
CONTOURS = tuple(dict.fromkeys(FACE_OVAL + INNER_LIPS + OUTER_LIPS + EYE_LEFT_RING + EYE_RIGHT_RING))
THIN_SPACING = 0.015
# ... and none within LIP_CLEARANCE face widths of the outer lips: the skin points just under the lower lip
# sit so close to it that an opening mouth pushed the lip past them, and the fold repair then held the lip
# back (over the fixture clip the control points kept 0.55–0.95 of the mesh's mouth range on the fixture
# portraits; with this, the lips pinned in the repair and the canvas below the frame, 0.91–1.0)
LIP_CLEARANCE = 0.07

# Rings of control points around the face that carry hair, ears and neck along with the head. Each
# sits a fixed fraction of the way from the face oval to the frame border (so the motion always fades
# out smoothly, however tight the framing), capped at a multiple of the oval's radius, and follows
# that share of the motion of the nearest face-oval point; below the face (neck, shoulders) less so.
HALO_PLACES = (0.3, 0.65)  # fraction of the way from the oval to the frame border
HALO_CAPS = (1.3, 1.75)  # at most this many oval radii from the face centre
HALO_WEIGHTS = (0.8, 0.4)
HALO_NECK_WEIGHT = 0.5  # factor on the weights straight below the face
HALO_POINTS = 32
BORDER_POINTS_PER_SIDE = 8  # fixed points on each side of the canvas
# The fixed border's bottom side lies this share of the frame's height below the frame, so that a chin low
# in the frame drops as the mouth opens (it was held at the edge, squeezing the lower lip); the output shows
# the frame, and what moves up into it from below is the frame's bottom rows, mirrored (the neck, the chest).
CANVAS_MARGIN = 0.2


@dataclass(frozen=True)
class ControlPoints:
    """Every warp control point in output pixels at rest: mesh, halo rings, canvas border (in this order)."""

    rest: np.ndarray  # [P, 2] float64
    halo_anchor: np.ndarray  # [H] index of the face-oval mesh point each halo point follows
    halo_weight: np.ndarray  # [H] fraction of that point's motion it follows
    triangles: np.ndarray  # [T, 3] int32, each with a positive signed area at rest (see signed_areas)
    canvas: tuple[float, float, float, float]  # (x0, y0, x1, y1) where the fixed border lies, output pixels

    @property
    def halo(self) -> slice:
        return slice(N_MESH, N_MESH + len(self.halo_anchor))


MIN_LIP_GAP = 0.04  # of the mouth width: a closed mouth is parted this much in the layout (see open_contours)
MIN_LID_GAP = 0.12  # of the eye width, for closed eyes


def open_contours(mesh: np.ndarray) -> np.ndarray:
    """The mesh [478, ≥2] with a closed mouth (or closed eyes) parted by a hair (a copy).

    With the lips touching, triangles across the mouth have no area and no defined orientation, so
    an opening mouth could not be told from a fold. Parted by MIN_LIP_GAP, the triangulation gets a
    thin lens of triangles between the lips that opens and closes with them.
    """
    out = np.array(mesh, np.float64, copy=True)
    eyes = out[[EYE_LIDS[0][0], EYE_LIDS[1][0]], :2].mean(0)
    down = out[list(MOUTH_CORNERS), :2].mean(0) - eyes
    down /= max(float(np.linalg.norm(down)), 1e-9)
    mouth_width = float(np.linalg.norm(out[MOUTH_CORNERS[0], :2] - out[MOUTH_CORNERS[1], :2]))
    eye_width = float(np.mean([np.linalg.norm(out[a, :2] - out[b, :2]) for a, b in EYE_CORNERS]))
    for pairs, gap in ((LIP_PAIRS, MIN_LIP_GAP * mouth_width), (LID_PAIRS, MIN_LID_GAP * eye_width)):
        p = np.array(pairs)
        have = (out[p[:, 1], :2] - out[p[:, 0], :2]) @ down
        push = np.maximum(gap - have, 0.0)[:, None] * down / 2
        out[p[:, 0], :2] -= push
        out[p[:, 1], :2] += push
    return out


def halo_rings(mesh_xy: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points on rings around the face oval: (points [H, 2], anchor oval indices [H], weights [H])."""
    oval = mesh_xy[list(FACE_OVAL)]
    centre = oval.mean(0)
    angles = np.linspace(0, 2 * np.pi, HALO_POINTS, endpoint=False)
    oval_angles = np.arctan2(oval[:, 1] - centre[1], oval[:, 0] - centre[0])
    order = np.argsort(oval_angles)
    radius = np.interp(angles, oval_angles[order], np.linalg.norm(oval - centre, axis=1)[order], period=2 * np.pi)
    unit = np.stack([np.cos(angles), np.sin(angles)], 1)
    # distance from the centre to the frame border along each ray
    with np.errstate(divide="ignore"):
        to_x = np.where(unit[:, 0] > 0, (width - 1 - centre[0]) / unit[:, 0], -centre[0] / unit[:, 0])
        to_y = np.where(unit[:, 1] > 0, (height - 1 - centre[1]) / unit[:, 1], -centre[1] / unit[:, 1])
    border = np.minimum(np.abs(to_x), np.abs(to_y))
    # the oval point nearest in angle to each ray
    gap = np.abs(np.angle(np.exp(1j * (angles[:, None] - oval_angles[None, :]))))
    anchor = np.asarray(FACE_OVAL)[gap.argmin(1)]
    chin = mesh_xy[FACE_OVAL[18]] - centre  # p152, the chin: "below the face"
    below = np.clip(unit @ (chin / max(float(np.linalg.norm(chin)), 1e-9)), 0.0, 1.0)
    neck = 1.0 - (1.0 - HALO_NECK_WEIGHT) * below**2
    points, weights = [], []
    for place, cap, w in zip(HALO_PLACES, HALO_CAPS, HALO_WEIGHTS):
        r = np.minimum(radius + place * np.maximum(border - radius, 0.0), cap * radius)
        points.append(centre + unit * r[:, None])
        weights.append(w * neck)
    return np.concatenate(points), np.tile(anchor, len(HALO_PLACES)), np.concatenate(weights)


def border_points(canvas: tuple[float, float, float, float], per_side: int = BORDER_POINTS_PER_SIDE) -> np.ndarray:
    """Fixed points on the canvas border [4·per_side, 2], corners included."""
    x0, y0, x1, y1 = canvas
    tx = np.linspace(x0, x1, per_side + 1)[:-1]
    ty = np.linspace(y0, y1, per_side + 1)[:-1]
    return np.concatenate([
        np.stack([tx, np.full_like(tx, y0)], 1), np.stack([np.full_like(ty, x1), ty], 1),
        np.stack([x0 + x1 - tx, np.full_like(tx, y1)], 1), np.stack([np.full_like(ty, x0), y0 + y1 - ty], 1),
    ])


def triangulate(points: np.ndarray, usable: np.ndarray, canvas: tuple[float, float, float, float]) -> np.ndarray:
    """Delaunay triangles [T, 3] over the `usable` points [N, 2] (inside the canvas), areas made positive."""
    x0, y0, x1, y1 = canvas
    subdiv = cv2.Subdiv2D((int(np.floor(x0)) - 1, int(np.floor(y0)) - 1, int(np.ceil(x1 - x0)) + 3,
                           int(np.ceil(y1 - y0)) + 3))
    index: dict[tuple[float, float], int] = {}
    for i in np.flatnonzero(usable):
        key = (round(float(points[i, 0]), 2), round(float(points[i, 1]), 2))
        if key not in index:
            index[key] = int(i)
            subdiv.insert(key)
    triangles = []
    for t in subdiv.getTriangleList():
        ids = [index.get((round(float(t[2 * k]), 2), round(float(t[2 * k + 1]), 2))) for k in range(3)]
        if None not in ids:
            triangles.append(ids)
    tri = np.array(triangles, dtype=np.int32).reshape(-1, 3)
    area = signed_areas(points, tri)
    tri = tri[np.abs(area) > 1e-6]
    flip = signed_areas(points, tri) < 0
    tri[flip] = tri[flip][:, ::-1]
    return tri


def build_control_points(mesh_xy: np.ndarray, width: int, height: int) -> ControlPoints:
    """Control points and triangles for a face mesh [478, 2] in a width x height output frame."""
    halo, anchor, weight = halo_rings(mesh_xy, width, height)
    canvas = (0.0, 0.0, width - 1.0, height - 1.0 + CANVAS_MARGIN * height)
    border = border_points(canvas)
    rest = np.concatenate([mesh_xy, halo, border]).astype(np.float64)
    usable = np.ones(len(rest), bool)
    usable[:N_MESH] = thinned(mesh_xy)
    # points too close to the frame edge (or outside it) stay out: their motion is unused
    margin = 2.0
    usable &= (rest[:, 0] >= margin) & (rest[:, 0] <= width - 1 - margin) & \
              (rest[:, 1] >= margin) & (rest[:, 1] <= height - 1 - margin)
    usable[-len(border):] = True
    return ControlPoints(rest, anchor, weight, triangulate(rest, usable, canvas), canvas)


def thinned(mesh_xy: np.ndarray) -> np.ndarray:
    """Mask [478] of the mesh points the warp uses: the contours, plus other surface points kept apart
    (and clear of the lips)."""
    oval = mesh_xy[list(FACE_OVAL)]
    face_width = float(np.ptp(oval[:, 0]))
    spacing = THIN_SPACING * face_width
    lips = mesh_xy[list(OUTER_LIPS)]
    near_lips = np.sum((mesh_xy[:, None, :] - lips[None]) ** 2, axis=2).min(1) < (LIP_CLEARANCE * face_width) ** 2
    keep = np.zeros(N_MESH, bool)
    keep[list(CONTOURS)] = True
    taken = mesh_xy[list(CONTOURS)]
    for i in range(N_SURFACE):
        if keep[i] or near_lips[i]:
            continue
        if np.min(np.sum((taken - mesh_xy[i]) ** 2, axis=1)) >= spacing**2:
            keep[i] = True
            taken = np.vstack([taken, mesh_xy[i]])
    return keep


def signed_areas(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Signed area of each triangle [T]; its sign flips when a triangle folds over."""
    a, b, c = points[triangles[:, 0]], points[triangles[:, 1]], points[triangles[:, 2]]
    return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))


def edges_of(triangles: np.ndarray) -> np.ndarray:
    """Edges of a triangulation, each listed in both directions [2E, 2]."""
    e = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    e = np.unique(np.sort(e, axis=1), axis=0)
    return np.concatenate([e, e[:, ::-1]])
