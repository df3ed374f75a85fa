"""WarpReenactor: the default reenactor — no downloaded weights, real time on a laptop CPU.

Per driving frame: MediaPipe mesh → One-Euro smoothing → pose/expression transfer onto the
target's 3-D mesh (relative to the driver's neutral frame) → fold-free control points → one
dense warp of the target's own pixels → mouth interior and eyelids painted on top.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, fields, replace
from typing import Any

import cv2
import numpy as np

from engine.errors import Cancelled, MimicError, NoFaceError
from engine.face.landmarks import FaceMesh, FaceMeshDetector, MeshConfig
from engine.reenactor import DriveResult, ProgressFn, ReenactorKind, TargetSpec
from engine.face.smoothing import OneEuroConfig, OneEuroFilter
from engine.face.framing import Framing, frame_target
from engine.warp.eyes import IrisMover
from engine.warp.interior import FacePainter
from engine.warp.layers import Layers, prepare_layers
from engine.warp.mesh import BROW_POINTS, EYE_LEFT_RING, EYE_OUTER_CORNERS, EYE_RIGHT_RING, FACE_OVAL, INNER_LIPS, \
    N_MESH, OUTER_LIPS, RIGID, ControlPoints, build_control_points, edges_of, open_contours
from engine.warp.motion import Motion, MotionTransfer, fit_similarity
from engine.warp.retarget import Retargeting
from engine.warp.warpfield import DenseWarp, fold_free, keep_inside

log = logging.getLogger(__name__)

FRAME_RATE = 30.0  # Hz: the smoothing filter's clock advances 1/FRAME_RATE per driving frame (deterministic)
# A frame where tracking (re)starts is tracked this many more times on itself: MediaPipe's first detection sits
# a few percent of a face width away from where its tracking then settles. The neutral is the first driving
# frame with a face after a start or a reset, settled so. (Taking the next frames instead, as before, put the
# driver's motion over them into the neutral: in self-reenactment an offset of 0.014 eye distances for the whole
# clip.) A face found again after frames without one is settled too: the output does not jump and drift back.
SETTLE_PASSES = 4
RETARGET_OPTIONS = frozenset(f.name for f in fields(Retargeting))
FEATURE_SMOOTHING = 0.3  # the lids', brows' and lips' share of the landmark smoothing strength (LandmarkSmoother)
POSE_SMOOTHING = 0.6  # the head pose's share of it (LandmarkSmoother)
FEATURES = np.array(EYE_LEFT_RING + EYE_RIGHT_RING + BROW_POINTS + INNER_LIPS + OUTER_LIPS)
REST_OF_FACE = np.setdiff1d(np.arange(N_MESH), FEATURES)  # the points the full-strength filter takes
# the lip and lid contours: when a fold is repaired, the skin around them gives way first (warpfield.fold_free)
PINNED = np.array(INNER_LIPS + OUTER_LIPS + EYE_LEFT_RING + EYE_RIGHT_RING)


@dataclass(frozen=True)
class WarpConfig:
    output_size: int = 512  # pixels: the side of the square ("face") or the longer side ("portrait")
    framing: Framing = "face"  # "face": a square around the face with hair and neck; "portrait": the whole image
    face_fraction: float = 0.45  # "face" framing: face height (forehead to chin) over the output side
    smoothing: float = 0.3  # driver landmark smoothing (One-Euro), 0 (off) … 1 (strong, laggy)
    retargeting: Retargeting = Retargeting()  # expression / head / eyes / mouth controls, eye contact
    translation_gain: float = 0.5  # how much of the driver's head shift and zoom the target follows (0: none)
    map_step: int = 2  # the warp field is rasterised every map_step output pixels, then upsampled
    layers: bool = True  # the warped person over a still background plate; False: the whole frame is warped


class PreparedTarget:
    """Everything prepared once per target portrait (its framed image, mesh, triangulation, warp)."""

    def __init__(self, image: np.ndarray, mesh: np.ndarray, config: WarpConfig) -> None:
        h, w = image.shape[:2]
        self.image = image  # [h, w, 3] the framed portrait at rest
        self.mesh = open_contours(mesh)  # [478, 3] its landmarks in output pixels, lips and lids parted
        self.control: ControlPoints = build_control_points(self.mesh[:, :2], w, h)
        self.edges = edges_of(self.control.triangles)
        self.jaw_share = _below_face(self.mesh[:, :2], self.control.rest[self.control.halo])
        self.fold_radius = 0.12 * float(np.ptp(mesh[list(FACE_OVAL), 0]))  # how far a fold's fix-up reaches
        self.warp = DenseWarp(self.control.rest, self.control.triangles, (w, h), config.map_step)
        self.painter = FacePainter(image, self.mesh)
        self.irises = IrisMover(image, mesh)  # the detected mesh: its iris points sit where the irises are
        self.motion = MotionTransfer(self.mesh, config.translation_gain, config.retargeting)
        self.layers: Layers | None = None  # person and background plate (set_target adds them: the slow part)

    def control_points(self, motion: Motion) -> np.ndarray:
        """Output positions [P, 2] of every control point: mesh, halo (following the head), border (fixed)."""
        c = self.control
        # fold-free reference: the in-plane part of the pose (a similarity), followed by the halo
        inplane = fit_similarity(self.mesh[list(RIGID), :2], motion.posed[list(RIGID), :2])
        rigid = c.rest.copy()
        rigid[:c.halo.stop] = inplane.apply(c.rest[:c.halo.stop])
        rigid[c.halo] = c.rest[c.halo] + c.halo_weight[:, None] * (rigid[c.halo] - c.rest[c.halo])
        # the full motion: 3-D turn and expression of the mesh; the halo follows the face oval
        moved = rigid.copy()
        moved[:N_MESH] = motion.animated[:, :2]
        anchor = motion.posed[c.halo_anchor, :2]
        anchor = anchor + self.jaw_share[:, None] * (motion.animated[c.halo_anchor, :2] - anchor)
        anchor_shift = anchor - self.mesh[c.halo_anchor, :2]
        moved[c.halo] = c.rest[c.halo] + c.halo_weight[:, None] * anchor_shift
        movable = c.halo.stop
        rigid[:movable] = keep_inside(c.rest[:movable], rigid[:movable], c.canvas)
        moved[:movable] = keep_inside(c.rest[:movable], moved[:movable], c.canvas)
        return fold_free(rigid, moved, c.rest, c.triangles, self.edges, movable, self.fold_radius, PINNED)


class LandmarkSmoother:
    """One-Euro filter on driver meshes, in units of the face's eye-corner distance (so any camera size
    smooths alike), on a frame clock of FRAME_RATE.

    The head pose and the expression are smoothed apart: each mesh is brought into the first mesh's pose
    by a similarity fitted over the rigid points (RIGID), that posed-back mesh (the expression) is filtered
    at the full strength, and the pose (rotation, scale, the rigid points' centre) at POSE_SMOOTHING of it:
    fitted over dozens of points, the pose jitters far less than any one point, and smoothed as hard it
    lagged the head (the smoothed mesh's pitch followed dlib's reading of the driver at r 0.91, now 0.93;
    unsmoothed 0.94), while the points' jitter on a still face stays within a tenth of what it was.

    Lids, brows and lips get FEATURE_SMOOTHING of the strength: a blink lasts 2–4 frames and moves a lid by
    only ~0.1 eye distance, too slow for the filter's speed term, so at the full strength it arrived half
    closed; brows lost a tenth of their correlation with the driver (benchmarks/quality_bench); the mouth's
    opening arrived late and at 0.89 of its range (against MediaPipe's own: gain 1.20 against dlib's driver,
    1.35 unsmoothed; now 1.30), for a third more jitter on a still face (0.0027 → 0.0036 eye distances)."""

    def __init__(self, strength: float) -> None:
        on = strength > 0
        self._filter = OneEuroFilter(OneEuroConfig.from_strength(strength)) if on else None
        self._lid_filter = OneEuroFilter(OneEuroConfig.from_strength(strength * FEATURE_SMOOTHING)) if on else None
        self._pose_filter = OneEuroFilter(OneEuroConfig.from_strength(strength * POSE_SMOOTHING)) if on else None
        self._unit = 1.0
        self._frames = 0
        self._reference: np.ndarray | None = None  # the first mesh's rigid points, centred [R, 3]

    def reset(self) -> None:
        for f in (self._filter, self._lid_filter, self._pose_filter):
            if f is not None:
                f.reset()
        self._frames = 0

    def __call__(self, points: np.ndarray) -> np.ndarray:
        if self._filter is None or self._lid_filter is None or self._pose_filter is None:
            return points.astype(np.float64)
        points = np.asarray(points, np.float64)
        rigid = points[list(RIGID)]
        if self._frames == 0:
            a, b = EYE_OUTER_CORNERS
            self._unit = max(float(np.linalg.norm(points[a, :2] - points[b, :2])), 1.0)
            self._reference = rigid - rigid.mean(0)
        assert self._reference is not None
        t = self._frames / FRAME_RATE
        self._frames += 1
        # pose: x = s·R·(x₀ − c₀) + c about the rigid points' centre c (so rotation and shift stay apart)
        centre = rigid.mean(0)
        pose = fit_similarity(self._reference, rigid - centre)
        expression = ((points - centre) @ pose.rotation) / pose.scale  # [478, 3] in the first mesh's pose
        unit = self._unit
        out = np.empty_like(expression)
        out[REST_OF_FACE] = self._filter(expression[REST_OF_FACE] / unit, t)
        out[FEATURES] = self._lid_filter(expression[FEATURES] / unit, t)
        rotation = cv2.Rodrigues(pose.rotation)[0].ravel()  # radians ≈ eye distances at the face's edge
        state = self._pose_filter(np.concatenate([rotation, [np.log(pose.scale)], centre / unit]), t)
        turned = cv2.Rodrigues(state[:3])[0]
        return float(np.exp(state[3])) * (out * unit) @ turned.T + state[4:] * unit


class WarpReenactor:
    """Transfers the driver's head pose and expression (relative to its neutral frame) onto the target's
    mesh and renders the target by a dense warp of its own pixels."""

    kind = ReenactorKind.WARP
    name = "Landmark warp (no weights)"

    def __init__(self, config: WarpConfig = WarpConfig()) -> None:
        self.config = config
        self._detector: FaceMeshDetector | None = None  # created on the first frame (MediaPipe is slow to load)
        self._smoother = LandmarkSmoother(config.smoothing)
        self._target: PreparedTarget | None = None
        self._last: np.ndarray | None = None
        self._neutral: np.ndarray | None = None  # the driver's neutral mesh (smoothed), kept across targets
        self._needs_neutral = True  # the next driver mesh becomes the neutral
        self._tracking = False  # whether the last driving frame had a face
        self._retargeting = config.retargeting
        self.person_alpha: np.ndarray | None = None  # [h, w] where the person is in the last output (layers only)
        self.animated_mesh: np.ndarray | None = None  # [478, 2] the target mesh as the last output draws it

    def describe(self) -> str:
        return f"{self.name} · CPU · OpenCV"

    @property
    def output_size(self) -> tuple[int, int]:
        if self._target is not None:
            h, w = self._target.image.shape[:2]
            return w, h
        return self.config.output_size, self.config.output_size

    def set_target(self, target: TargetSpec, progress: ProgressFn | None = None,
                   cancel: threading.Event | None = None) -> None:
        """Find the portrait's face mesh and prepare the warp. Raises NoFaceError / MimicError."""
        if target.kind != "image" or target.image is None:
            raise MimicError(f"a {target.kind} target needs a model pack (--weights / File → Load model pack); "
                             "the landmark warp animates portrait images")
        if progress:
            progress(0.0, "finding the face")
        with FaceMeshDetector(MeshConfig(static_images=True)) as detector:
            mesh = detector.detect(target.image)
        if mesh is None:
            raise NoFaceError("no face found in the target image; try a frontal, well-lit portrait")
        if cancel is not None and cancel.is_set():
            raise Cancelled("setting the target was cancelled")
        image, points = frame_target(target.image, mesh.points, self.config.framing, self.config.output_size,
                                     self.config.face_fraction)
        if progress:
            progress(0.3, "preparing the warp")
        prepared = PreparedTarget(image, points, self.config)
        prepared.motion.retargeting = self._retargeting
        if self.config.layers:
            if progress:
                progress(0.5, "separating the person from the background")
            prepared.layers = prepare_layers(image, points)
        self._target, self._last = prepared, image.copy()  # swapped whole: safe while another thread drives
        log.info("warp target: %dx%d, %d triangles", image.shape[1], image.shape[0],
                 len(prepared.control.triangles))
        if progress:
            progress(1.0, "target ready")

    @property
    def retargeting(self) -> Retargeting:
        return self._retargeting

    @retargeting.setter
    def retargeting(self, controls: Retargeting) -> None:
        """New controls take effect with the next frame (safe while another thread drives)."""
        self._retargeting = controls
        if self._target is not None:
            self._target.motion.retargeting = controls

    def set_option(self, name: str, value: Any) -> bool:
        """The app's retargeting controls: "expression", "head", "eyes", "mouth" (floats within
        engine.warp.retarget.RANGES) and "eye_contact" (bool), and "smoothing" (0 … 1, the driver
        landmarks' One-Euro strength); other names are not the warp's."""
        if name == "smoothing":
            strength = min(max(float(value), 0.0), 1.0)
            self.config, self._smoother = replace(self.config, smoothing=strength), LandmarkSmoother(strength)
            return True
        if name not in RETARGET_OPTIONS:
            return False
        kind = bool if name == "eye_contact" else float
        self.retargeting = replace(self._retargeting, **{name: kind(value)})
        return True

    def reset_neutral(self) -> None:
        """The next driving frame with a face becomes the neutral pose and expression."""
        self._needs_neutral = True

    def drive(self, frame: np.ndarray) -> DriveResult:
        target = self._target
        if target is None:
            raise MimicError("no target set: open a portrait first")
        timings: dict[str, float] = {}
        t = time.perf_counter()
        if self._detector is None:
            self._detector = FaceMeshDetector(MeshConfig(static_images=False, plain_nose=True))
        mesh = self._detector.detect(frame)
        if mesh is not None and (self._needs_neutral or not self._tracking):
            mesh = self._settled(frame, mesh)
        self._tracking = mesh is not None
        timings["landmarks"] = _ms(t)
        if mesh is None:
            self._smoother.reset()
            return DriveResult(self._last, face_found=False, timings_ms=timings)
        out = self.animate(target, mesh.points, timings)
        return DriveResult(out, face_found=True, timings_ms=timings, driver_landmarks=mesh.xy.copy())

    def _settled(self, frame: np.ndarray, mesh: FaceMesh) -> FaceMesh:
        """`mesh` tracked SETTLE_PASSES more times on the same frame (where MediaPipe's tracking settles)."""
        assert self._detector is not None
        for _ in range(SETTLE_PASSES):
            again = self._detector.detect(frame)
            if again is None:
                break
            mesh = again
        return mesh

    def animate(self, target: PreparedTarget, driver: np.ndarray, timings: dict[str, float]) -> np.ndarray:
        """The output for one driver mesh [478, 3] (pixels of its frame); stage times are added to `timings`."""
        t = time.perf_counter()
        take_neutral = self._needs_neutral
        if take_neutral:
            self._smoother.reset()
        points = self._smoother(driver)
        if take_neutral:
            self._neutral, self._needs_neutral = points, False
        if target.motion.neutral is not self._neutral:
            target.motion.set_neutral(self._neutral)
        motion = target.motion(points)
        moved = target.control_points(motion)
        timings["motion"] = _ms(t)
        t = time.perf_counter()
        layers = target.layers
        source = target.image if layers is None else layers.person
        out = target.warp(target.irises.apply(source, motion.gaze), moved)
        timings["warp"] = _ms(t)
        t = time.perf_counter()
        if layers is not None:
            out, self.person_alpha = layers.composite(out)
        target.painter.paint(out, moved[:N_MESH], motion.posed[:, :2])  # mouth and lids: inside the person
        self.animated_mesh = moved[:N_MESH]
        timings["composite"] = _ms(t)
        self._last = out
        return out

    @property
    def target(self) -> PreparedTarget | None:
        return self._target

    def close(self) -> None:
        if self._detector is not None:
            self._detector.close()
            self._detector = None
        self._tracking = False  # a new detector starts from a fresh detection


def _below_face(mesh_xy: np.ndarray, halo: np.ndarray) -> np.ndarray:
    """[H] how far below the face each halo point lies, 0 (level with the eyes or above) … 1 (under the chin):
    the share of the jaw's motion the neck follows there (so an opening jaw stretches the neck, no step)."""
    oval = mesh_xy[list(FACE_OVAL)]
    centre = oval.mean(0)
    chin = mesh_xy[FACE_OVAL[18]] - centre
    chin /= max(float(np.linalg.norm(chin)), 1e-9)
    unit = (halo - centre) / np.maximum(np.linalg.norm(halo - centre, axis=1, keepdims=True), 1e-9)
    return np.clip(unit @ chin, 0.0, 1.0) ** 2


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0
