"""Optional FFHQ-exact landmarks: dlib's 68-point predictor, as FFHQ, pSp, ReStyle and the paper align.

Installed with requirements-ffhq.txt (`dlib-bin` + `face_recognition_models`, which ships
`shape_predictor_68_face_landmarks.dat`; docs/alignment.md, "FFHQ-exact landmarks", on its training data's terms).
The MediaPipe mesh finds the face (small ones included); dlib's HOG detector then boxes it on a crop
scaled to a face ~200 px wide — the box the predictor was trained on — and the predictor places the
68 points. Without the packages `load()` returns None and nothing changes.
"""
from __future__ import annotations

import importlib.util
import logging
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from engine.face.landmarks import FaceMesh

log = logging.getLogger(__name__)

MODEL_FILE = "shape_predictor_68_face_landmarks.dat"
FACE_WIDTH = 200  # px: the crop is scaled so the face is about this wide (dlib's detector likes 80–300)


def model_path() -> Path | None:
    """The 68-point model inside the face_recognition_models package, when it and dlib are installed.

    Found without importing the package (its __init__ needs pkg_resources)."""
    if importlib.util.find_spec("dlib") is None:
        return None
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / MODEL_FILE
    return path if path.is_file() else None


class DlibLandmarks:
    """dlib's frontal face detector + 68-point shape predictor, run around a face the mesh found."""

    def __init__(self, path: Path) -> None:
        import dlib

        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(path))

    def points(self, image: np.ndarray, mesh: FaceMesh) -> np.ndarray:
        """The 68 points [68, 2] (image pixels) of the face that `mesh` marks in an RGB uint8 image."""
        x0, y0, x1, y1 = mesh.bbox
        scale = FACE_WIDTH / max(x1 - x0, 1.0)
        side = int(round(2.4 * max(x1 - x0, y1 - y0) * scale))  # the face and a margin
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        m = np.array([[scale, 0, side / 2 - cx * scale], [0, scale, side / 2 - cy * scale]])
        crop = cv2.warpAffine(image, m, (side, side), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
        box = self._box(crop, mesh.center * scale + m[:, 2])
        shape = self._predictor(crop, box)
        pts = np.array([(p.x, p.y) for p in shape.parts()], np.float64)
        return (pts - m[:, 2]) / scale  # back to image pixels

    def _box(self, crop: np.ndarray, centre: np.ndarray):
        """dlib's own detection nearest the mesh's centre; without one, a box like it from the crop's layout."""
        found = list(self._detector(crop, 0))
        if found:
            return min(found, key=lambda r: np.hypot(r.center().x - centre[0], r.center().y - centre[1]))
        h = FACE_WIDTH * 0.5
        return self._dlib.rectangle(int(centre[0] - h), int(centre[1] - h), int(centre[0] + h), int(centre[1] + h))


@lru_cache(maxsize=1)
def load() -> DlibLandmarks | None:
    """The predictor when requirements-ffhq.txt is installed, else None (loaded once, ~100 MB file)."""
    path = model_path()
    if path is None:
        return None
    log.info("FFHQ-exact landmarks: dlib's 68-point predictor (%s)", path)
    return DlibLandmarks(path)
