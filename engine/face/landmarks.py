"""MediaPipe face mesh (legacy `solutions` API, 478 points incl. irises, models inside the wheel).

`FaceMeshDetector.detect(frame)` returns the landmarks of the chosen face in
input pixels, or None when there is no face. With several faces it picks the
largest on the first frame, then the one nearest to the face it tracked last.

Small faces (docs/alignment.md, "How it works"): the mesh's own detector is short-range (a face
filling a good part of the frame). When it finds nothing, MediaPipe's full-range detector
(`face_detection_full_range_sparse.tflite`, inside the wheel) looks for faces — on the whole
image, then, for photos, on overlapping half-size tiles — and the mesh runs on a crop around
the face. In a video, a face smaller than `SMALL_FACE` of the frame is meshed on a crop
around where it was in the previous frame.

The nose (`plain_nose`, video): MediaPipe ships two mesh models. The attention model (refine_landmarks) refines
the eyes, lips and irises; its nose tip follows the head's nod less faithfully than the plain model's (on the
fixture clip, the nose tip's place between the eyes and the mouth follows an independent landmark model's
reading of it at r 0.930 from the attention model, 0.953 from the plain one; docs/warp-quality.md, round
fifteen). With `plain_nose` the plain model runs beside it on the same image, in a thread of its own (MediaPipe
lets go of the GIL: the two together take about as long as one), and gives the nose tip's points.
"""
from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

SMALL_FACE = 0.2  # video: a face narrower than this share of the frame's shorter side is meshed on a crop
CROP_FACTOR = 3.0  # the crop around a face is this many face sizes wide
TILE_FRACTION = 0.5  # photos: the full-range detector's tiles are this share of the shorter side (50 % overlap)
N_POINTS = 478  # 468 mesh points + 2 x 5 iris points (refine_landmarks=True)
PLAIN_NOSE = (1, 2, 4, 5, 19, 94)  # the nose tip and the column under it, from the plain model (plain_nose)
PLAIN_NOSE_REACH = 0.15  # a plain nose further than this share of the face's width from the other is another face's
# the face's outline, clockwise in the image from the top of the forehead (MediaPipe's FACEMESH_FACE_OVAL)
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148,
             176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)


@dataclass(frozen=True)
class MeshConfig:
    static_images: bool = False  # True: every call is an independent photo (targets); False: a video stream
    max_faces: int = 4  # faces MediaPipe looks for; one of them is chosen
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    find_small_faces: bool = True  # fall back to the full-range detector and a crop when the mesh finds nothing
    plain_nose: bool = False  # video: the nose tip's points (PLAIN_NOSE) from the plain mesh model, run alongside


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
        self.config = config
        self._mesh = self._new_mesh(config.max_faces)
        self._crop_mesh = None  # a second mesh for crops around small faces, made when first needed
        self._plain: dict[str, object] = {}  # the plain model beside each mesh ("whole", "crop"): plain_nose
        self._plain_thread: ThreadPoolExecutor | None = None  # runs the plain model while the other one runs
        self._nose_offset: np.ndarray | None = None  # [6, 3] the plain nose's offset from the other, last seen
        self._finder: FaceFinder | None = None
        self._last_center: np.ndarray | None = None
        self._small_box: tuple[float, float, float, float] | None = None  # video: where the small face was
        self.last_source = "none"  # which path found the last face: mesh, crop, full-range detector + crop, none

    def _new_mesh(self, max_faces: int, refine: bool = True):
        import mediapipe as mp  # imported lazily: heavy, and absent in some test environments

        c = self.config
        return mp.solutions.face_mesh.FaceMesh(static_image_mode=c.static_images, max_num_faces=max_faces,
                                               refine_landmarks=refine,
                                               min_detection_confidence=c.min_detection_confidence,
                                               min_tracking_confidence=c.min_tracking_confidence)

    def detect(self, frame: np.ndarray) -> FaceMesh | None:
        """Landmarks of the tracked face in an RGB uint8 frame [H, W, 3], or None."""
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 image [H, W, 3], got {frame.dtype} {frame.shape}")
        face = None
        if self._small_box is not None:  # a small face in a video: mesh the crop around where it was
            face = self._mesh_in_box(frame, self._small_box)
        if face is None:
            face = self._mesh_whole(frame)
        if face is None and self.config.find_small_faces:
            face = self._find_small(frame)
        self._last_center = None if face is None else face.center
        if face is None:
            self._nose_offset = None  # the next face may be another person's
        self._small_box = None if face is None or self.config.static_images else _small_box(face, frame.shape)
        self.last_source = "none" if face is None else self.last_source
        return face

    def _mesh_whole(self, frame: np.ndarray) -> FaceMesh | None:
        h, w = frame.shape[:2]
        plain = self._start_plain(frame, "whole")
        result = self._mesh.process(np.ascontiguousarray(frame))
        face = None
        if result.multi_face_landmarks:
            self.last_source = "mesh"
            face = self._choose([self._to_pixels(lms, w, h) for lms in result.multi_face_landmarks])
        return self._with_plain_nose(face, plain, (w, h), 0, 0)

    def _find_small(self, frame: np.ndarray) -> FaceMesh | None:
        """The full-range detector's faces, largest first, each meshed on a crop around it."""
        if self._finder is None:
            self._finder = FaceFinder(tiles=self.config.static_images)
        for box in self._finder.find(frame):
            face = self._mesh_in_box(frame, box)
            if face is not None:
                self.last_source = "full-range detector + crop"
                return face
        return None

    def _mesh_in_box(self, frame: np.ndarray, box: tuple[float, float, float, float]) -> FaceMesh | None:
        """The mesh run on a square crop CROP_FACTOR times the box around it, in frame pixels."""
        h, w = frame.shape[:2]
        x0, y0, x1, y1 = box
        side = CROP_FACTOR * max(x1 - x0, y1 - y0)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        left, top = int(max(cx - side / 2, 0)), int(max(cy - side / 2, 0))
        right, bottom = int(min(cx + side / 2, w)), int(min(cy + side / 2, h))
        if right - left < 16 or bottom - top < 16:
            return None
        if self._crop_mesh is None:
            self._crop_mesh = self._new_mesh(max_faces=1)
        plain = self._start_plain(frame[top:bottom, left:right], "crop")
        result = self._crop_mesh.process(np.ascontiguousarray(frame[top:bottom, left:right]))
        if not result.multi_face_landmarks:
            return self._with_plain_nose(None, plain, (right - left, bottom - top), left, top)
        face = self._to_pixels(result.multi_face_landmarks[0], right - left, bottom - top)
        face.points[:, 0] += left
        face.points[:, 1] += top
        self.last_source = "crop"
        return self._with_plain_nose(FaceMesh(points=face.points, image_size=(w, h)), plain,
                                     (right - left, bottom - top), left, top)

    def _start_plain(self, image: np.ndarray, which: str) -> Future | None:
        """The plain model started on `image` in its thread (plain_nose, video), or None."""
        if not self.config.plain_nose or self.config.static_images:
            return None
        if which not in self._plain:
            self._plain[which] = self._new_mesh(max_faces=1, refine=False)
        if self._plain_thread is None:
            self._plain_thread = ThreadPoolExecutor(1, thread_name_prefix="plain-mesh")
        return self._plain_thread.submit(self._plain[which].process, np.ascontiguousarray(image))  # type: ignore

    def _with_plain_nose(self, face: FaceMesh | None, plain: Future | None, size: tuple[int, int], left: int,
                         top: int) -> FaceMesh | None:
        """`face` with its PLAIN_NOSE points from the plain model's run (`plain`, on the image the face was
        meshed on: `size`, at `left`, `top` in the frame); where that model misses, its last offset is kept."""
        result = plain.result() if plain is not None else None  # always waited for: one run at a time
        if face is None or plain is None:
            return face
        ids = list(PLAIN_NOSE)
        points = face.points.copy()
        if result.multi_face_landmarks:
            plain_nose = self._to_pixels(result.multi_face_landmarks[0], *size).points[ids] + np.float32([left, top, 0])
            offset = plain_nose - points[ids]
            width = face.bbox[2] - face.bbox[0]
            if float(np.abs(offset[:, :2]).max()) <= PLAIN_NOSE_REACH * width:  # else: another face
                self._nose_offset = offset
        if self._nose_offset is not None:
            points[ids] += self._nose_offset
        return FaceMesh(points=points, image_size=face.image_size)

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
        if self._crop_mesh is not None:
            self._crop_mesh.close()
        if self._finder is not None:
            self._finder.close()
        if self._plain_thread is not None:
            self._plain_thread.shutdown(wait=True)
        for mesh in self._plain.values():
            mesh.close()  # type: ignore[attr-defined]

    def __enter__(self) -> "FaceMeshDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _small_box(face: FaceMesh, shape: tuple[int, ...]) -> tuple[float, float, float, float] | None:
    """The face's box when it is small in the frame (the next frame is meshed on a crop), else None."""
    x0, y0, x1, y1 = face.bbox
    return face.bbox if max(x1 - x0, y1 - y0) < SMALL_FACE * min(shape[:2]) else None


class FaceFinder:
    """MediaPipe's full-range face detector (faces down to ~10 % of the image), optionally on tiles."""

    def __init__(self, tiles: bool = True, min_confidence: float = 0.5) -> None:
        import mediapipe as mp

        self.tiles = tiles  # also search overlapping half-size tiles (photos: faces down to ~5 %)
        self._detector = mp.solutions.face_detection.FaceDetection(model_selection=1,
                                                                   min_detection_confidence=min_confidence)

    def find(self, image: np.ndarray) -> list[tuple[float, float, float, float]]:
        """Face boxes (x0, y0, x1, y1) in pixels, largest first: the whole image, then (tiles) each tile
        until one has a face."""
        h, w = image.shape[:2]
        boxes = self._boxes(image, 0, 0)
        if boxes or not self.tiles:
            return boxes
        side = int(TILE_FRACTION * min(w, h))
        for top in _starts(h, side):
            for left in _starts(w, side):
                boxes += self._boxes(image[top:top + side, left:left + side], left, top)
        return sorted(boxes, key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))

    def _boxes(self, image: np.ndarray, left: int, top: int) -> list[tuple[float, float, float, float]]:
        h, w = image.shape[:2]
        result = self._detector.process(np.ascontiguousarray(image))
        boxes = []
        for d in result.detections or []:
            b = d.location_data.relative_bounding_box
            boxes.append((left + b.xmin * w, top + b.ymin * h, left + (b.xmin + b.width) * w, top + (b.ymin + b.height) * h))
        return sorted(boxes, key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))

    def close(self) -> None:
        self._detector.close()


def _starts(length: int, side: int) -> list[int]:
    """Tile origins along one axis: half-overlapping tiles of `side` covering `length`."""
    if side >= length:
        return [0]
    n = int(np.ceil((length - side) / (side / 2))) + 1
    return [int(round(i * (length - side) / (n - 1))) for i in range(n)]
