"""WarpReenactor: the default reenactor — no downloaded weights, real time on a laptop CPU."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np

from engine.errors import MimicError, NoFaceError
from engine.landmarks import FaceMesh, FaceMeshDetector, MeshConfig
from engine.reenactor import DriveResult, ProgressFn, TargetSpec
from engine.smoothing import OneEuroConfig, OneEuroFilter
from engine.warp.mesh import FACE_OVAL, HALO_WEIGHTS, N_MESH, border_points, halo_points, triangulate
from engine.warp.motion import RIGID, MotionTransfer, fit_similarity
from engine.warp.render import backward_map, draw_eyelids, draw_mouth_interior, edges_of, fold_free, warp


@dataclass(frozen=True)
class WarpConfig:
    output_size: int = 512  # square output, pixels
    face_fraction: float = 0.42  # face height (brow to chin) as a fraction of the output
    smoothing: float = 0.4  # driver landmark smoothing, 0 (off) … 1 (strong)
    expression_gain: float = 1.0  # scale of transferred expressions
    map_grid: int = 256  # resolution at which the warp field is rasterised


class WarpReenactor:
    """Transfers the driver's head pose and expression (relative to its neutral frame) onto the target's mesh
    and renders the target by a dense warp of its own pixels."""

    name = "Landmark warp (no weights)"

    def __init__(self, config: WarpConfig = WarpConfig()) -> None:
        self.config = config
        self._driver = FaceMeshDetector(MeshConfig(static_images=False))
        self._filter = OneEuroFilter(OneEuroConfig.from_strength(config.smoothing))
        self._target: np.ndarray | None = None
        self._last: np.ndarray | None = None
        self._take_neutral = True
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"{self.name} · CPU · OpenCV"

    @property
    def output_size(self) -> tuple[int, int]:
        return self.config.output_size, self.config.output_size

    # -- target ------------------------------------------------------------------

    def set_target(self, target: TargetSpec, progress: ProgressFn | None = None,
                   cancel: threading.Event | None = None) -> None:
        if target.kind != "image" or target.image is None:
            raise MimicError("latent and random targets need a model pack (File → Load model pack…); "
                             "the landmark warp animates portrait images")
        with FaceMeshDetector(MeshConfig(static_images=True)) as detector:
            mesh = detector.detect(target.image)
        if mesh is None:
            raise NoFaceError("no face found in the target image; try a frontal, well-lit portrait")
        image, points = self._crop(target.image, mesh)
        with self._lock:
            self._prepare(image, points)
            self._last = image.copy()
            self._take_neutral = True
        if progress:
            progress(1.0, "target ready")

    def _crop(self, image: np.ndarray, mesh: FaceMesh) -> tuple[np.ndarray, np.ndarray]:
        """A square around the face (with hair and shoulders), resized to the output size; mesh in crop pixels."""
        s = self.config.output_size
        oval = mesh.xy[list(FACE_OVAL)]
        top, bottom = oval[:, 1].min(), oval[:, 1].max()
        side = (bottom - top) / self.config.face_fraction
        cx, cy = oval[:, 0].mean(), (top + bottom) / 2 - 0.04 * side
        scale = s / side
        m = np.float32([[scale, 0, s / 2 - scale * cx], [0, scale, s / 2 - scale * cy]])
        crop = cv2.warpAffine(image, m, (s, s), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
        pts = mesh.points.astype(np.float64).copy()
        pts[:, :2] = pts[:, :2] * scale + m[:, 2]
        pts[:, 2] *= scale
        return crop, pts

    def _prepare(self, image: np.ndarray, points: np.ndarray) -> None:
        s = self.config.output_size
        self._target = image
        self._mesh3d = points
        centre = points[list(FACE_OVAL), :2].mean(0)
        self._halos = [np.clip(h, 1, s - 2) for h in halo_points(points[list(FACE_OVAL), :2], centre)]
        self._border = border_points(s)
        self._rest = np.concatenate([points[:, :2], *self._halos, self._border])
        self._triangles = triangulate(self._rest, s)
        self._edges = edges_of(self._triangles)
        self._motion = MotionTransfer(points, self.config.expression_gain)

    # -- driving -----------------------------------------------------------------

    def reset_neutral(self) -> None:
        self._take_neutral = True

    def drive(self, frame: np.ndarray) -> DriveResult:
        if self._target is None:
            raise MimicError("no target set: open a portrait first")
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        mesh = self._driver.detect(frame)
        timings["landmarks"] = _ms(t0)
        if mesh is None:
            self._filter.reset()
            return DriveResult(self._last, face_found=False, timings_ms=timings)
        t = time.perf_counter()
        driver = self._filter(mesh.points, t)
        with self._lock:
            if self._take_neutral:
                self._motion.set_neutral(driver)
                self._take_neutral = False
            animated, posed = self._motion(driver)
            moved = self._moved_points(animated, posed)
            timings["motion"] = _ms(t)
            t = time.perf_counter()
            mapping = backward_map(self._rest, moved, self._triangles, self.config.output_size, self.config.map_grid)
            out = warp(self._target, mapping)
            timings["warp"] = _ms(t)
            t = time.perf_counter()
            draw_mouth_interior(out, self._rest, moved)
            draw_eyelids(out, self._rest, moved)
            timings["composite"] = _ms(t)
            self._last = out
        return DriveResult(out, face_found=True, timings_ms=timings, driver_landmarks=mesh.xy)

    def _moved_points(self, animated: np.ndarray, posed: np.ndarray) -> np.ndarray:
        """Output positions of every control point: mesh, halo rings (partly rigid), border (fixed)."""
        head = fit_similarity(self._rest[:N_MESH][list(RIGID)], posed[list(RIGID)])
        s = self.config.output_size
        halos = [np.clip(h + w * (head.apply(h) - h), 1, s - 2) for h, w in zip(self._halos, HALO_WEIGHTS)]
        rigid = np.concatenate([posed, *halos, self._border])
        moved = np.concatenate([animated, *halos, self._border])
        return fold_free(self._rest, rigid, moved, self._triangles, self._edges)

    def close(self) -> None:
        self._driver.close()


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0
