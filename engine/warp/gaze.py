"""Where each iris sits in its eye: MediaPipe's iris centres relative to that eye's corners.

The offset of one eye is (u, v) in eye widths: u along the line from the eye's first corner to its
second (image left to right), v perpendicular to it (image down), both from the corners' midpoint.
The benchmark and tests measure gaze with the same function on driver and output meshes.
"""
from __future__ import annotations

import numpy as np

from engine.warp.mesh import EYE_CORNERS, EYE_LIDS
from engine.warp.ramp import smoothstep

IRIS_CENTRES = (468, 473)  # iris of the image-left eye (corners 33, 133) and of the image-right eye
IRIS_RIMS = ((469, 470, 471, 472), (474, 475, 476, 477))


def eye_frame(points: np.ndarray, eye: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(midpoint [2], unit axis along the eye [2], unit normal pointing down [2], eye width)."""
    a, b = (np.asarray(points, np.float64)[list(EYE_CORNERS[eye]), :2])
    axis = b - a
    width = max(float(np.linalg.norm(axis)), 1e-9)
    axis = axis / width
    return (a + b) / 2, axis, np.array([-axis[1], axis[0]]), width


def gaze_offsets(points: np.ndarray) -> np.ndarray:
    """[2, 2]: (u, v) of each eye's iris centre, in eye widths from the middle of its corners."""
    p = np.asarray(points, np.float64)
    out = np.zeros((2, 2))
    for eye, centre in enumerate(IRIS_CENTRES):
        mid, axis, normal, width = eye_frame(p, eye)
        rel = p[centre, :2] - mid
        out[eye] = (rel @ axis / width, rel @ normal / width)
    return out


def iris_radius(points: np.ndarray, eye: int) -> float:
    """Mean distance of the iris rim points from the iris centre (pixels)."""
    p = np.asarray(points, np.float64)[:, :2]
    return float(np.linalg.norm(p[list(IRIS_RIMS[eye])] - p[IRIS_CENTRES[eye]], axis=1).mean())


def eye_openness(points: np.ndarray) -> np.ndarray:
    """[2] mid-lid gap over eye width of each eye."""
    p = np.asarray(points, np.float64)[:, :2]
    return np.array([np.linalg.norm(p[u] - p[low]) / max(np.linalg.norm(p[a] - p[b]), 1e-9)
                     for (u, low), (a, b) in zip(EYE_LIDS, EYE_CORNERS)])


def gaze_change(driver: np.ndarray, neutral: np.ndarray) -> np.ndarray:
    """[2, 2] the driver's iris offsets against its neutral's, faded out as an eye closes (MediaPipe's
    iris points wander under a closing lid)."""
    open_share = eye_openness(driver) / np.maximum(eye_openness(neutral), 1e-6)
    fade = np.clip((open_share - 0.35) / 0.35, 0.0, 1.0)
    return (gaze_offsets(driver) - gaze_offsets(neutral)) * smoothstep(fade)[:, None]
