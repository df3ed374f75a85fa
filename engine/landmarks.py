"""MediaPipe face mesh (legacy `solutions` API, 478 points incl. irises, models inside the wheel).

`FaceMeshDetector.detect(frame)` returns the landmarks of the chosen face in
input pixels, or None when there is no face. With several faces it picks the
largest on the first frame, then the one nearest to the face it tracked last.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

N_POINTS = 478  # 468 mesh points + 2 x 5 iris points (refine_landmarks=True)
# the face's outline, clockwise in the image from the top of the forehead (MediaPipe's FACEMESH_FACE_OVAL)
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148,
             176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)


@dataclass(frozen=True)
class MeshConfig:
    static_images: bool = False  # True: every call is an independent photo (targets); False: a video stream
    max_faces: int = 4  # faces MediaPipe looks for; one of them is chosen
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5


@dataclass
class FaceMesh:
    """Landmarks of one face."""

    points: np.ndarray  # [478, 3] float32: x, y in input pixels, z in the same pixel scale (MediaPipe's relative depth)
    image_size: tuple[int, int]  # (width, height) of the frame they belong to

    @property
    def xy(self) -> np.ndarray:
        """[478, 2] pixel coordinates."""
        return self.points[:, :2]

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        x0, y0 = self.xy.min(axis=0)
        x1, y1 = self.xy.max(axis=0)
        return float(x0), float(y0), float(x1), float(y1)

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.bbox
        return (x1 - x0) * (y1 - y0)

    @property
    def center(self) -> np.ndarray:
        return self.xy.mean(axis=0)


class FaceMeshDetector:
    """Wraps MediaPipe FaceMesh; not thread-safe (use one per thread)."""

    def __init__(self, config: MeshConfig = MeshConfig()) -> None:
        import mediapipe as mp  # imported lazily: heavy, and absent in some test environments

        self.config = config
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=config.static_images,
            max_num_faces=config.max_faces,
            refine_landmarks=True,
            min_detection_confidence=config.min_detection_confidence,
            min_tracking_confidence=config.min_tracking_confidence,
        )
        self._last_center: np.ndarray | None = None

    def detect(self, frame: np.ndarray) -> FaceMesh | None:
        """Landmarks of the tracked face in an RGB uint8 frame [H, W, 3], or None."""
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 image [H, W, 3], got {frame.dtype} {frame.shape}")
        h, w = frame.shape[:2]
        result = self._mesh.process(np.ascontiguousarray(frame))
        if not result.multi_face_landmarks:
            self._last_center = None
            return None
        faces = [self._to_pixels(lms, w, h) for lms in result.multi_face_landmarks]
        face = self._choose(faces)
        self._last_center = face.center
        return face

    def _choose(self, faces: list[FaceMesh]) -> FaceMesh:
        if len(faces) == 1:
            return faces[0]
        if self._last_center is None or self.config.static_images:
            return max(faces, key=lambda f: f.area)
        return min(faces, key=lambda f: float(np.linalg.norm(f.center - self._last_center)))

    @staticmethod
    def _to_pixels(landmarks, width: int, height: int) -> FaceMesh:
        pts = np.array([(p.x, p.y, p.z) for p in landmarks.landmark], dtype=np.float32)
        pts[:, 0] *= width
        pts[:, 1] *= height
        pts[:, 2] *= width
        return FaceMesh(points=pts, image_size=(width, height))

    def close(self) -> None:
        self._mesh.close()

    def __enter__(self) -> "FaceMeshDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
