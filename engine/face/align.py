"""FFHQ face alignment from MediaPipe's mesh (the recipe of FFHQ / pSp / ReStyle / the paper).

The recipe needs dlib's eye contours (6 points each) and outer mouth corners (48, 54); the
MediaPipe mesh points at the same anatomical places are listed below (they re-align the
FFHQ-aligned fixtures best of the choices tried; see docs/alignment.md). Two paths:

- `align_face`: quality path for targets — shrink, crop with a border, reflect-pad with a
  blurred blend where the quad leaves the image, resample the quad to the output size
  (bilinear, supersampled by the downscale factor, then area-averaged);
- `LiveAligner`: fast path for live frames — One-Euro-smoothed quad, one affine warp straight
  to the output size, the inverse transform for pasting results back (engine/face/paste_back.py).

Coordinates are pixel centres (pixel (0, 0) is the point (0, 0)), as dlib's and MediaPipe's.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np

from engine.errors import NoFaceError
from engine.face.landmarks import FaceMesh, FaceMeshDetector, MeshConfig
from engine.face.smoothing import OneEuroConfig, OneEuroFilter

# MediaPipe mesh indices at dlib's 68-point eye contours (order: outer corner, upper ×2, inner
# corner, lower ×2) and outer mouth corners. "Left"/"right" are as seen in the image.
EYE_LEFT = (33, 160, 158, 133, 153, 144)  # dlib 36..41
EYE_RIGHT = (362, 385, 387, 263, 373, 380)  # dlib 42..47
MOUTH_LEFT, MOUTH_RIGHT = 61, 291  # dlib 48, 54

MAX_SUPERSAMPLE = 4  # the reference shrinks the source once the quad is 4x the output, so 4 suffices


@dataclass
class AlignedFace:
    """An aligned crop and how it maps to the source frame."""

    image: np.ndarray  # [S, S, 3] RGB uint8
    quad: np.ndarray  # [4, 2] source pixels: top-left, bottom-left, bottom-right, top-right of the crop
    matrix: np.ndarray  # [2, 3] affine: source pixel → crop pixel (S x S)
    landmarks: np.ndarray | None = None  # [478, 2] mesh points in source pixels (unsmoothed)
    source: str = "mesh"  # which landmarks placed the crop: "mesh", "full-range detector + crop" (a small
    # face), "dlib 68 points" (requirements-ffhq.txt; "… (face found by the full-range detector + crop)")

    @property
    def size(self) -> int:
        return self.image.shape[0]


def ffhq_quad(points: np.ndarray) -> np.ndarray:
    """The FFHQ crop quad [4, 2] (TL, BL, BR, TR) in pixels from mesh points [478, ≥2]."""
    pts = np.asarray(points, dtype=np.float64)[:, :2]
    return quad_from_features(pts[list(EYE_LEFT)].mean(0), pts[list(EYE_RIGHT)].mean(0),
                              pts[MOUTH_LEFT], pts[MOUTH_RIGHT])


def quad_from_features(eye_left: np.ndarray, eye_right: np.ndarray, mouth_left: np.ndarray,
                       mouth_right: np.ndarray) -> np.ndarray:
    """The FFHQ recipe: crop quad [4, 2] (TL, BL, BR, TR) from eye centres and mouth corners [2]."""
    eye_avg = (eye_left + eye_right) / 2
    eye_to_eye = eye_right - eye_left
    eye_to_mouth = (mouth_left + mouth_right) / 2 - eye_avg
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]  # eye line, tilted by the eye→mouth axis
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)  # half the crop side
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def quad_side(quad: np.ndarray) -> float:
    """Side length of a crop quad in source pixels."""
    return float(np.hypot(*(quad[3] - quad[0])))


def quad_matrix(quad: np.ndarray, size: int) -> np.ndarray:
    """Affine [2, 3] taking the quad's corners to the outer corners of a size x size crop.

    The quad's corners are pixel-centre points; they land on the crop's pixel *edges* (±0.5),
    as in the reference's PIL QUAD transform of `quad + 0.5`.
    """
    src = np.float32([quad[0], quad[1], quad[3]])
    dst = np.float32([[-0.5, -0.5], [-0.5, size - 0.5], [size - 0.5, -0.5]])
    return cv2.getAffineTransform(src, dst).astype(np.float64)


# ------------------------------------------------------------------------------------- quality path


def align_face(image: np.ndarray, size: int = 1024, detector: FaceMeshDetector | None = None,
               ffhq_landmarks: bool = False) -> AlignedFace:
    """Quality alignment of a portrait (RGB uint8 [H, W, 3]); the largest face. Raises NoFaceError.

    ffhq_landmarks: place the crop with dlib's 68 points when requirements-ffhq.txt is installed
    (FFHQ's own landmarks; `AlignedFace.source` says which were used), else with the mesh's.
    """
    own = detector is None
    detector = detector or FaceMeshDetector(MeshConfig(static_images=True))
    try:
        mesh = detector.detect(image)
        found_by = detector.last_source
    finally:
        if own:
            detector.close()
    if mesh is None:
        raise NoFaceError("no face found in the image; try a frontal, well-lit portrait")
    quad, source = ffhq_quad(mesh.points), found_by
    dlib = _dlib() if ffhq_landmarks else None
    if dlib is not None:
        pts = dlib.points(image, mesh)
        quad = quad_from_features(pts[36:42].mean(0), pts[42:48].mean(0), pts[48], pts[54])
        source = "dlib 68 points" + ("" if found_by == "mesh" else f" (face found by the {found_by})")
    prepared, local_quad = prepare_source(image, quad, size)
    crop = resample_quad(prepared, local_quad, size)
    return AlignedFace(crop, quad, quad_matrix(quad, size), mesh.xy.copy(), source)


def _dlib():
    from engine.face.ffhq_landmarks import load

    return load()


def prepare_source(image: np.ndarray, quad: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference's shrink / crop / reflect-pad-with-blurred-blend steps.

    Returns the prepared image and the quad in its pixels; resampling that quad gives the crop.
    """
    img, quad = image, np.asarray(quad, np.float64).copy()
    qsize = quad_side(quad)
    shrink = int(np.floor(qsize / size * 0.5))
    if shrink > 1:  # area-downscale sources far larger than the output
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
    if pad.max() > border - 4:  # the quad (nearly) leaves the image: reflect, then blur and fade the padding
        pad = np.maximum(pad, int(np.rint(qsize * 0.3)))
        f = np.pad(img.astype(np.float32), ((pad[1], pad[3]), (pad[0], pad[2]), (0, 0)), "reflect")
        ph, pw = f.shape[:2]
        yy = np.arange(ph, dtype=np.float32)[:, None]
        xx = np.arange(pw, dtype=np.float32)[None, :]
        # < 0 inside the original image, 0 at its edge, rising to 1 at the outer edge of the padding
        mask = np.maximum(1.0 - np.minimum(xx / pad[0], (pw - 1 - xx) / pad[2]),
                          1.0 - np.minimum(yy / pad[1], (ph - 1 - yy) / pad[3]))
        blur = np.clip(mask * 3.0 + 1.0, 0.0, 1.0)  # the padding and a third of it inward: blurred
        f = cv2.blendLinear(_wide_blur(f, qsize * 0.02), f, blur, 1.0 - blur)
        fade = np.clip(mask, 0.0, 1.0)  # the padding fades to the image's median colour
        f = cv2.blendLinear(np.full_like(f, np.median(f, axis=(0, 1))), f, fade, 1.0 - fade)
        img = np.uint8(np.clip(np.rint(f), 0, 255))
        quad += pad[:2]
    return img, quad


def _wide_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with a large sigma, run at 1/k scale (k ≈ sigma / 5): ~80 dB from the exact blur
    at sigma 20, 20x faster."""
    k = max(int(sigma // 5), 1)
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(round(w / k), 1), max(round(h / k), 1)), interpolation=cv2.INTER_AREA)
    small_sigma = np.sqrt(max(sigma**2 - (k**2 - 1) / 12, 0.25)) / k  # the box average already blurred a little
    blurred = cv2.GaussianBlur(small, (0, 0), small_sigma, borderType=cv2.BORDER_REFLECT)
    return cv2.resize(blurred, (w, h), interpolation=cv2.INTER_LINEAR) if k > 1 else blurred


def resample_quad(image: np.ndarray, quad: np.ndarray, size: int) -> np.ndarray:
    """Resample `quad` of `image` to size x size: bilinear at k·size (k = the downscale factor,
    rounded up, ≤ 4), then k x k area averaging — the reference's 4096² bilinear + Lanczos at a
    fraction of the cost (≥ 47 dB PSNR against it, see benchmarks/align_bench.py)."""
    k = int(np.clip(np.ceil(quad_side(quad) / size - 1e-6), 1, MAX_SUPERSAMPLE))
    big = cv2.warpAffine(image, quad_matrix(quad, k * size), (k * size, k * size), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REFLECT)
    return big if k == 1 else cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA)


# ---------------------------------------------------------------------------------------- live path


class LiveAligner:
    """Fast path for live frames: mesh → FFHQ quad → One-Euro smoothing → one affine warp.

    `align(frame)` returns the crop, or None with the reason in `last_reason`. The detector
    (video mode) picks the largest face first, then tracks it. Not thread-safe.
    """

    def __init__(
        self,
        size: int = 256,  # output side in pixels
        smoothing: float = 0.6,  # One-Euro strength: 0 (off) … 1 (very smooth, some lag on fast moves)
        min_eye_distance: float = 8.0,  # px; faces smaller than this are refused (crop would be mush)
        detector: FaceMeshDetector | None = None,  # default: a video-mode MediaPipe mesh owned by the aligner
    ) -> None:
        self.size = size
        self.min_eye_distance = min_eye_distance
        self._own_detector = detector is None
        self.detector = detector or FaceMeshDetector(MeshConfig(static_images=False))
        self._filter = OneEuroFilter(OneEuroConfig.from_strength(smoothing)) if smoothing > 0 else None
        self._unit = 1.0  # filter unit (px): ≈ the eye distance when the track started
        self.last_mesh: FaceMesh | None = None
        self.last_reason: str | None = None  # why the last call returned None
        self.last_timings_ms: dict[str, float] = {}

    def align(self, frame: np.ndarray, t: float | None = None) -> AlignedFace | None:
        """The aligned crop of the tracked face in an RGB uint8 frame, or None (see `last_reason`).

        `t`: the frame's time in seconds (default: now); the smoothing filter runs on it.
        """
        t0 = time.perf_counter()
        mesh = self.detector.detect(frame)
        mesh_ms = (time.perf_counter() - t0) * 1000.0
        aligned = self.align_mesh(frame, mesh, t)
        self.last_timings_ms = {"mesh": mesh_ms, **self.last_timings_ms}
        return aligned

    def align_mesh(self, frame: np.ndarray, mesh: FaceMesh | None, t: float | None = None) -> AlignedFace | None:
        """As `align`, with landmarks the caller already has (None: no face)."""
        t0 = time.perf_counter()
        self.last_mesh = mesh
        self.last_timings_ms = {}
        if mesh is None:
            return self._none("no face in the frame")
        eyes = np.linalg.norm(mesh.xy[list(EYE_LEFT)].mean(0) - mesh.xy[list(EYE_RIGHT)].mean(0))
        if eyes < self.min_eye_distance:
            return self._none(f"face too small: eyes {eyes:.0f} px apart, needs {self.min_eye_distance:.0f} px")
        quad = ffhq_quad(mesh.points)
        if self._filter is not None:
            if self._filter.empty:
                self._unit = quad_side(quad) / 4.0  # ≈ eye distance: smoothing alike at any camera size
            now = time.perf_counter() if t is None else t
            quad = self._filter(quad / self._unit, now) * self._unit
        m = quad_matrix(quad, self.size)
        crop = cv2.warpAffine(frame, m, (self.size, self.size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        self.last_reason = None
        self.last_timings_ms = {"warp": (time.perf_counter() - t0) * 1000.0}
        return AlignedFace(crop, quad, m, mesh.xy.copy())

    def _none(self, reason: str) -> None:
        self.last_reason = reason
        self.reset()
        return None

    def reset(self) -> None:
        """Forget the smoothing history (the next face starts a fresh track)."""
        if self._filter is not None:
            self._filter.reset()

    def close(self) -> None:
        if self._own_detector:
            self.detector.close()

    def __enter__(self) -> "LiveAligner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
