"""FFHQ face alignment from MediaPipe's mesh (the recipe of FFHQ / pSp / ReStyle / the paper).

The recipe needs dlib's eye contours (6 points each) and outer mouth corners (48, 54); the
MediaPipe mesh points at the same anatomical places are listed below. Two paths:

- `align_face`: quality path for targets — shrink, crop with a border, reflect-pad with a
  blurred blend where the quad leaves the image, resample the quad (supersampled 2x, then
  area-downsampled) to the output size;
- `LiveAligner`: fast path for live frames — temporally smoothed quad, one affine warp
  straight to the output size, inverse transform for pasting results back.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np

from engine.errors import NoFaceError
from engine.landmarks import FaceMesh, FaceMeshDetector, MeshConfig
from engine.smoothing import OneEuroConfig, OneEuroFilter

# MediaPipe mesh indices matching dlib's 68-point eye contours (order: outer corner, upper ×2,
# inner corner, lower ×2) and outer mouth corners. "Left"/"right" are as seen in the image.
EYE_LEFT = (33, 160, 158, 133, 153, 144)  # dlib 36..41
EYE_RIGHT = (362, 385, 387, 263, 373, 380)  # dlib 42..47
MOUTH_LEFT, MOUTH_RIGHT = 61, 291  # dlib 48, 54


@dataclass
class AlignedFace:
    """An aligned crop and how it maps to the source frame."""

    image: np.ndarray  # [S, S, 3] RGB uint8
    quad: np.ndarray  # [4, 2] source pixels: top-left, bottom-left, bottom-right, top-right of the crop
    matrix: np.ndarray  # [2, 3] affine: source pixel centre → crop pixel centre
    landmarks: np.ndarray | None = None  # [478, 2] mesh points in source pixels

    @property
    def size(self) -> int:
        return self.image.shape[0]


def ffhq_quad(points: np.ndarray) -> np.ndarray:
    """The FFHQ crop quad [4, 2] (TL, BL, BR, TR) from mesh points [478, ≥2] in pixels."""
    pts = np.asarray(points, dtype=np.float64)[:, :2]
    eye_left, eye_right = pts[list(EYE_LEFT)].mean(0), pts[list(EYE_RIGHT)].mean(0)
    eye_avg = (eye_left + eye_right) / 2
    eye_to_eye = eye_right - eye_left
    mouth_avg = (pts[MOUTH_LEFT] + pts[MOUTH_RIGHT]) / 2
    eye_to_mouth = mouth_avg - eye_avg
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def quad_matrix(quad: np.ndarray, size: int) -> np.ndarray:
    """Affine [2, 3] mapping source pixel centres onto crop pixel centres (the reference's QUAD transform)."""
    src = np.float32([quad[0], quad[1], quad[3]])
    dst = np.float32([[-0.5, -0.5], [-0.5, size - 0.5], [size - 0.5, -0.5]])
    return cv2.getAffineTransform(src, dst)


def align_face(image: np.ndarray, size: int = 1024, detector: FaceMeshDetector | None = None) -> AlignedFace:
    """Quality alignment of a portrait (RGB uint8). Raises NoFaceError."""
    own = detector is None
    detector = detector or FaceMeshDetector(MeshConfig(static_images=True))
    try:
        mesh = detector.detect(image)
    finally:
        if own:
            detector.close()
    if mesh is None:
        raise NoFaceError("no face found in the image; try a frontal, well-lit portrait")
    quad = ffhq_quad(mesh.points)
    crop = _resample_quad(image, quad, size)
    return AlignedFace(crop, quad, quad_matrix(quad, size), mesh.xy.copy())


def _resample_quad(image: np.ndarray, quad: np.ndarray, size: int) -> np.ndarray:
    """The reference's shrink / crop / reflect-pad-and-blend / transform, on float arrays."""
    img = image
    quad = quad.copy()
    qsize = np.hypot(*(quad[3] - quad[0]))
    shrink = int(np.floor(qsize / size * 0.5))
    if shrink > 1:
        h, w = img.shape[:2]
        img = cv2.resize(img, (int(np.rint(w / shrink)), int(np.rint(h / shrink))), interpolation=cv2.INTER_AREA)
        quad /= shrink
        qsize /= shrink
    border = max(int(np.rint(qsize * 0.1)), 3)
    h, w = img.shape[:2]
    x0, y0 = np.floor(quad.min(0)).astype(int)
    x1, y1 = np.ceil(quad.max(0)).astype(int)
    cx0, cy0, cx1, cy1 = max(x0 - border, 0), max(y0 - border, 0), min(x1 + border, w), min(y1 + border, h)
    if cx1 - cx0 < w or cy1 - cy0 < h:
        img = img[cy0:cy1, cx0:cx1]
        quad -= (cx0, cy0)
    h, w = img.shape[:2]
    x0, y0 = np.floor(quad.min(0)).astype(int)
    x1, y1 = np.ceil(quad.max(0)).astype(int)
    pad = np.array([max(-x0 + border, 0), max(-y0 + border, 0), max(x1 - w + border, 0), max(y1 - h + border, 0)])
    if pad.max() > border - 4:
        pad = np.maximum(pad, int(np.rint(qsize * 0.3)))
        f = np.pad(img.astype(np.float32), ((pad[1], pad[3]), (pad[0], pad[2]), (0, 0)), "reflect")
        ph, pw = f.shape[:2]
        yy, xx = np.ogrid[:ph, :pw]
        mask = np.maximum(
            1.0 - np.minimum(xx.astype(np.float32) / pad[0], (pw - 1 - xx).astype(np.float32) / pad[2]),
            1.0 - np.minimum(yy.astype(np.float32) / pad[1], (ph - 1 - yy).astype(np.float32) / pad[3]),
        )[..., None]
        sigma = qsize * 0.02
        f += (cv2.GaussianBlur(f, (0, 0), sigma) - f) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
        f += (np.median(f, axis=(0, 1)) - f) * np.clip(mask, 0.0, 1.0)
        img = np.uint8(np.clip(np.rint(f), 0, 255))
        quad += pad[:2]
    # Supersample 2x with bilinear sampling, then area-downsample: close to the reference's 4096 + ANTIALIAS.
    big = cv2.warpAffine(img, quad_matrix(quad, 2 * size), (2 * size, 2 * size), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REFLECT)
    return cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA)


def paste_back(output: np.ndarray, frame: np.ndarray, aligned: AlignedFace, feather: float = 0.1) -> np.ndarray:
    """Warp a square output (any size) back into `frame` where `aligned` was cut, with a feathered edge."""
    s = output.shape[0]
    m = quad_matrix(aligned.quad, s)
    h, w = frame.shape[:2]
    back = cv2.warpAffine(output, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    mask = np.zeros((s, s), np.float32)
    edge = max(int(s * feather), 1)
    mask[edge:-edge, edge:-edge] = 1.0
    mask = cv2.GaussianBlur(mask, (0, 0), edge / 2)
    alpha = cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)[..., None]
    return (back * alpha + frame * (1 - alpha)).astype(np.uint8)


class LiveAligner:
    """Fast path for live frames: mesh → smoothed FFHQ quad → one affine warp to size x size."""

    def __init__(self, size: int = 256, smoothing: float = 0.5, detector: FaceMeshDetector | None = None) -> None:
        self.size = size
        self.detector = detector or FaceMeshDetector(MeshConfig(static_images=False))
        self.filter = OneEuroFilter(OneEuroConfig.from_strength(smoothing)) if smoothing > 0 else None
        self.last_mesh: FaceMesh | None = None

    def align(self, frame: np.ndarray, t: float | None = None) -> AlignedFace | None:
        """The aligned crop of the tracked face, or None when there is no face."""
        mesh = self.detector.detect(frame)
        self.last_mesh = mesh
        if mesh is None:
            if self.filter is not None:
                self.filter.reset()
            return None
        quad = ffhq_quad(mesh.points)
        if self.filter is not None:
            quad = self.filter(quad, time.perf_counter() if t is None else t)
        m = quad_matrix(quad, self.size)
        crop = cv2.warpAffine(frame, m, (self.size, self.size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        return AlignedFace(crop, quad, m, mesh.xy.copy())

    def close(self) -> None:
        self.detector.close()
