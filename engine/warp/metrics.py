"""Landmark measures used to check that an output follows its driver (benchmark and tests); the mouth
opening also tells the mouth painter how far a mouth is open.

All take MediaPipe mesh points [478, ≥2] in pixels and use x, y only:

- mouth opening = |p13 − p14| / |p61 − p291|: inner-lip gap at the lip centre over the outer mouth width;
- roll = angle of the line from the outer eye corner p33 to p263, in degrees;
- outside_face: the pixels beyond the face oval grown by a margin (where a still driver must change nothing);
- background_change: mean change over the pixels outside the person (at rest and in the output), grown.
- yaw proxy = (|p1 − p234| − |p1 − p454|) / |p234 − p454|: the nose tip against the two face-contour
  points level with the eyes; 0 facing the camera, its sign tells the side the head is turned to.
"""
from __future__ import annotations

import cv2
import numpy as np

from engine.warp.mesh import CHEEKS, EYE_OUTER_CORNERS, FACE_OVAL, LOWER_INNER_LIP, MOUTH_CORNERS, NOSE_TIP, \
    UPPER_INNER_LIP


def mouth_opening(points: np.ndarray) -> float:
    p = np.asarray(points, np.float64)[:, :2]
    gap = np.linalg.norm(p[UPPER_INNER_LIP] - p[LOWER_INNER_LIP])
    return float(gap / max(np.linalg.norm(p[MOUTH_CORNERS[0]] - p[MOUTH_CORNERS[1]]), 1e-9))


def roll(points: np.ndarray) -> float:
    p = np.asarray(points, np.float64)[:, :2]
    d = p[EYE_OUTER_CORNERS[1]] - p[EYE_OUTER_CORNERS[0]]
    return float(np.degrees(np.arctan2(d[1], d[0])))


def yaw(points: np.ndarray) -> float:
    p = np.asarray(points, np.float64)[:, :2]
    left, right = p[CHEEKS[0]], p[CHEEKS[1]]
    nose = p[NOSE_TIP]
    return float((np.linalg.norm(nose - left) - np.linalg.norm(nose - right)) / max(np.linalg.norm(left - right), 1e-9))


MEASURES = {"mouth": mouth_opening, "yaw": yaw, "roll": roll}


def pearson(a: list[float] | np.ndarray, b: list[float] | np.ndarray) -> float:
    return float(np.corrcoef(np.asarray(a, np.float64), np.asarray(b, np.float64))[0, 1])


def outside_face(points: np.ndarray, shape: tuple[int, ...], grow: float = 0.1) -> np.ndarray:
    """Mask [h, w] of the pixels outside the face oval of `points`, grown by `grow` face widths."""
    p = np.asarray(points, np.float64)[:, :2]
    oval = p[list(FACE_OVAL)]
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(oval).astype(np.int32)], 1)
    r = max(int(round(grow * np.ptp(oval[:, 0]))), 1)
    mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    return mask == 0


def background_change(output: np.ndarray, rest: np.ndarray, person: list[np.ndarray], grow: float = 0.02) -> float:
    """Mean |output − rest| (0–255) over the background: the pixels outside every mask in `person`
    ([h, w] alphas, e.g. the person at rest and where it is in this output), each taken at 0.5 and grown by
    `grow` of the image side."""
    inside = np.zeros(rest.shape[:2], bool)
    for alpha in person:
        inside |= alpha > 0.5
    r = max(int(round(grow * max(inside.shape))), 1)
    inside = cv2.dilate(inside.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    outside = inside == 0
    return float(np.abs(output.astype(np.float32) - rest.astype(np.float32))[outside].mean())
