"""Head pose and expression transfer between 3-D face meshes, relative to a neutral frame of the driver.

Meshes are MediaPipe's [478, 3] points in pixels (x right, y down, z depth in the x scale).
With N the driver's neutral mesh and D its current mesh, over the rigid points (forehead, nose, cheekbones):

  (s, R, t) = similarity fit  D ≈ s·R·N + t          (pose change; R is a 3-D rotation: yaw, pitch, roll)
  E         = (s·R)⁻¹(D − t) − N                      (expression, in the neutral pose)

The driver's neutral is matched once to the target mesh Y by a similarity Y ≈ σ·Q·N + τ, which carries
E into the target's axes and scale: E_Y = σ·Q·E (lid points further scaled by the ratio of the eye
openings, so a closed eye closes whatever the eye sizes; the lower face by the ratio of the mouth widths,
so a wide mouth opens in its own proportions). The animated target is

  Y' = s^k·R_Y·(Z·(Y − c) + g·E_Y) + c + k·σ·(μ_D − μ_N),   Z = diag(1, 1, DEPTH_GAIN),   R_Y = P·R·Pᵀ

with c the centroid of the target's rigid points, μ the driver's, g the expression strength and k the
translation gain: the target keeps its own face shape, makes the driver's expression and turns about
its own centre as the driver turned, its depth deepened by DEPTH_GAIN for the turn. P is the in-plane
rotation from the driver's neutral to the target (their rolls at rest, a 2-D fit over the rigid points):
R is measured about the camera's axes, and a driver whose head is tilted nods about a tilted axis; turned
about the same axis, an upright portrait's nod came with a sideways turn (the fixture clip's driver is
tilted 12–17° against the portraits). Conjugated by P, the portrait turns about its own axes. The roll
only: the faces' differences of yaw and pitch at rest rest on MediaPipe's depth, and conjugating by
all of Q made one portrait's pitch follow worse (docs/warp-quality.md, round ten). The head-motion
strength h scales R's angle (about its own axis), the zoom's exponent and the shift; the mouth gain
scales E_Y's down and depth components on the lower face, as does the mouth's range (below); the eye
offset moves each lid pair along its rest opening. The mouth's gap moves through the target's range (in
the driver's mouth size) as the driver's through its own: opening, the driver's way from its rest gap to
MOUTH_WIDEST maps onto the target's (a portrait whose mouth is open at rest opens by less); closing, its
way from its rest gap to shut (a portrait speaking at rest shuts its mouth when the driver does). Lips
thin to half their thickness at most; lips and lids may then meet (shut) but not cross. Projection drops
z. The driver's gaze (iris offsets against the neutral's) rides along.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engine.warp.gaze import gaze_change
from engine.warp.mesh import EYE_CORNERS, EYE_LEFT_RING, EYE_LIDS, EYE_RIGHT_RING, LID_PAIRS, LIP_PAIRS, \
    LIP_THICKNESS, LOWER_INNER_LIP, MOUTH_CORNERS, NOSE_TIP, RIGID, UPPER_INNER_LIP
from engine.warp.ramp import smoothstep
from engine.warp.retarget import Retargeting

# eye offset: share of a lid pair's rest gap that the upper / the lower lid moves (closing, opening)
LID_SHARE_CLOSE = (0.8, 0.2)
LID_SHARE_OPEN = (0.35, 0.15)
# MediaPipe's lids travel only part of the way: on the fixture clip a shut driver eye (judged by dlib)
# still reads about half its neutral gap, and a wide-open one a little less than it is. The lid
# expression is scaled up accordingly, so that blinks close. Opening, the warp can only stretch the eye
# it has (no more white shows above the iris, as in a real wide eye), and a stretched eye reads as less
# open than a real one: at 1.3 dlib saw the self-reenactment's eyes widen by 0.40–0.50 of the real ones',
# at 2.0 by 0.46–0.55, and 8 of the 14 fixture eyes came into the goal's gain band (3 before).
LID_GAIN_CLOSE = 1.8
LID_GAIN_OPEN = 2.0
LID_STILL = 0.08  # changes of the eye opening below this share of it pass unscaled (the tracking's jitter)
# The target's depth is deepened this much for the head's turn. A warp turns a face by moving its points
# only: none of the shading, foreshortening and hidden parts of a real turn come along, and turned by the
# driver's rotation as measured (MediaPipe reproduces its own reading of it at slope 0.98), the output read
# as 0.83 of the real head's yaw and 0.62 of its pitch to an independent landmark model (dlib, on the
# fixture clip driving its own first frame). With the nose and brow ridge 1.3x deeper, yaw reads 1.06 and
# pitch 0.77, and the face's outline at the temples, the largest share of the self-reenactment error, sits
# closer to the real one (docs/warp-quality.md, round five). Roll is unchanged.
DEPTH_GAIN = 1.3
# The widest a mouth opens: the inner lips' gap (MediaPipe's points 13 and 14) in eye distances. The fixture
# clip's driver reaches 0.62 at a surprised "O". A portrait whose mouth is open at rest (aligned/2.png: 0.40,
# speaking) took the driver's whole opening on top of its own and reached 0.99, a dark hole wider than a
# face opens, and could not shut its mouth; now the driver's gap moves through the portrait's range.
MOUTH_WIDEST = 0.9
MOUTH_RAMP = 0.05  # the range's scale fades in over this change of the gap (eye distances): no step at the neutral
# Limits of that scale, (opening), (closing). Closing, it is the ratio of the rest gaps: a driver whose lips
# nearly touch at rest (0.07) against aligned/2's 0.40 would multiply the lips' jitter by six on the way to
# shut; at 4 his mouth closed from 0.40 to 0.12 when the driver's shut (round seven; reckoned in the driver's
# mouth size since round eleven, his wider mouth shuts).
MOUTH_RANGE_LIMITS = ((0.3, 1.2), (0.25, 4.0))
# Mouths differ in width more than faces do (the fixture portraits' are 0.87–1.29 of the clip driver's, in
# eye distances): the lower face's expression is scaled by the ratio of the mouth widths, so that a wide
# mouth makes the driver's "O" in its own proportions. In face units alone, the astronaut's smile (1.29)
# opened to 0.65 of the driver's gap over mouth width (dlib, docs/warp-quality.md, round eleven).
MOUTH_SIZE_LIMITS = (0.75, 1.35)
# ... faded in between these differences of the widths: below the first they are the tracker's own (the
# clip's first frame read as a still and as video differs by 3.6 %), past the second the ratio holds whole
MOUTH_SIZE_FADE = (0.03, 0.1)
# The least share of its rest thickness a lip keeps (its outer edge gives way). The driver's lips thin as the
# mouth stretches (MediaPipe's on the fixture clip: to 0.54–0.62 across the middle at the widest "O"), and
# in face units, or in a wide mouth's size, that thinning exceeded a thin-lipped portrait's whole lip: the
# astronaut's smiling upper lip turned inside out at frame 108, and the fold repair then held her mouth to
# 0.42 of its opening.
LIP_KEEP = 0.5


@dataclass(frozen=True)
class Similarity:
    """x ↦ s·R·x + t for row vectors."""

    scale: float
    rotation: np.ndarray  # [d, d], det = +1
    translation: np.ndarray  # [d]

    def apply(self, x: np.ndarray) -> np.ndarray:
        return self.scale * x @ self.rotation.T + self.translation

    def invert(self, y: np.ndarray) -> np.ndarray:
        return ((y - self.translation) @ self.rotation) / self.scale


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> Similarity:
    """Least-squares similarity dst ≈ s·R·src + t (Umeyama 1991), any dimension; src, dst [K, d]."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(b.T @ a / len(src))
    d = np.ones(len(sig))
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    rot = u @ np.diag(d) @ vt
    scale = float((sig * d).sum() / max((a**2).sum() / len(src), 1e-12))
    return Similarity(scale, rot, mu_d - scale * mu_s @ rot.T)


@dataclass(frozen=True)
class Motion:
    """The target mesh moved by the driver (target pixels, [478, 3])."""

    animated: np.ndarray  # the driver's pose change and expression
    posed: np.ndarray  # the driver's pose change only
    gaze: np.ndarray  # [2, 2] per eye (image left, right): the driver's iris offset change, in eye widths


class MotionTransfer:
    """Maps driver meshes onto one target mesh; the first driver mesh (or `set_neutral`) is the neutral."""

    def __init__(self, target: np.ndarray, translation_gain: float = 1.0,
                 retargeting: Retargeting = Retargeting()) -> None:
        self.target = np.asarray(target, np.float64)  # [478, 3]
        self.translation_gain = translation_gain
        self.retargeting = retargeting  # may be replaced any time (GUI sliders); read once per frame
        self.neutral: np.ndarray | None = None
        self._to_target: Similarity | None = None
        self._tilt = np.eye(3)  # set_neutral
        self._eye_gain = np.ones(2)
        self._centre = self.target[list(RIGID)].mean(0)
        self._turning = (self.target - self._centre) * (1.0, 1.0, DEPTH_GAIN)  # [478, 3] what the turn rotates
        self._rest_gaps = np.maximum(pair_gaps(self.target), 0.0)
        self._down, self._mouth_weight = _lower_face(self.target)
        self._mouth_range = (1.0, 1.0)  # the target's gap against the driver's, (opening, closing): set_neutral
        self._in_mouth_size = np.ones((len(self.target), 1))  # the mouth widths' ratio at each point: set_neutral
        self._eye_distance = _iod(self.target)

    def set_neutral(self, driver: np.ndarray) -> None:
        self.neutral = driver
        self._to_target = fit_similarity(self.neutral[list(RIGID)], self.target[list(RIGID)])
        # the in-plane turn from the driver's neutral to the target: their rolls at rest
        self._tilt = np.eye(3)
        self._tilt[:2, :2] = fit_similarity(self.neutral[list(RIGID), :2], self.target[list(RIGID), :2]).rotation
        # Eyes differ in size more than faces do: lid motion is scaled by the ratio of the eye openings,
        # so that a closed driver eye closes the target's eye exactly (a blink), whatever its size.
        driver_open = np.array([_gap(self.neutral, lids) for lids in EYE_LIDS]) * self._to_target.scale
        target_open = np.array([_gap(self.target, lids) for lids in EYE_LIDS])
        self._eye_gain = np.clip(target_open / np.maximum(driver_open, 1e-6), 0.5, 2.0)
        a, b = MOUTH_CORNERS
        width = float(np.linalg.norm(self.target[a] - self.target[b]))  # in 3-D: a turned mouth is as wide
        driver_width = float(np.linalg.norm(self.neutral[a] - self.neutral[b])) * self._to_target.scale
        ratio = float(np.clip(width / max(driver_width, 1e-6), *MOUTH_SIZE_LIMITS))
        start, full = MOUTH_SIZE_FADE
        size = 1.0 + (ratio - 1.0) * float(smoothstep((abs(ratio - 1.0) - start) / (full - start)))
        self._in_mouth_size = (1.0 + (size - 1.0) * self._mouth_weight)[:, None]  # [478, 1]
        # the range in the driver's mouth size (the expression is scaled by `size` before it applies)
        target_gap, driver_gap = lip_gap(self.target) / size, lip_gap(self.neutral)
        room_to_open = (MOUTH_WIDEST - target_gap) / max(MOUTH_WIDEST - driver_gap, 1e-6)
        way_to_shut = target_gap / max(driver_gap, 1e-6)
        (low, high), (shut_low, shut_high) = MOUTH_RANGE_LIMITS
        self._mouth_range = float(np.clip(room_to_open, low, high)), float(np.clip(way_to_shut, shut_low, shut_high))

    def __call__(self, driver: np.ndarray) -> Motion:
        driver = np.asarray(driver, np.float64)
        if self.neutral is None or self._to_target is None:
            self.set_neutral(driver)
        assert self.neutral is not None and self._to_target is not None
        controls = self.retargeting
        rigid = list(RIGID)
        pose = fit_similarity(self.neutral[rigid], driver[rigid])
        expression = pose.invert(driver) - self.neutral  # [478, 3] driver pixels, neutral pose
        to_t = self._to_target
        expression = to_t.scale * expression @ to_t.rotation.T  # target pixels and axes
        self._scale_lids(expression)
        expression *= self._in_mouth_size  # the lower face in the target's mouth size
        # the mouth and jaw opening: the lower face's expression in the plane of the face's down and depth axes
        opening = (expression @ self._down)[:, None] * self._down
        opening[:, 2] += expression[:, 2]
        # ... scaled by the slider and by the mouth's range (the gap's change, in the target's eye distances)
        wider = (expression[LOWER_INNER_LIP] - expression[UPPER_INNER_LIP]) @ self._down / self._eye_distance
        mouth_range = self._mouth_range[0] if wider > 0 else self._mouth_range[1]
        mouth_range = 1.0 + (mouth_range - 1.0) * smoothstep(abs(wider) / MOUTH_RAMP)
        expression += (controls.mouth * mouth_range - 1.0) * self._mouth_weight[:, None] * opening
        head = controls.head
        shift = (driver[rigid].mean(0) - self.neutral[rigid].mean(0)) * to_t.scale * self.translation_gain * head
        scale = pose.scale ** (self.translation_gain * head)
        rotation = self._tilt @ scaled_rotation(pose.rotation, head) @ self._tilt.T  # about the target's axes
        posed = scale * self._turning @ rotation.T + self._centre + shift
        animated = posed + scale * (controls.expression * expression) @ rotation.T
        if controls.eyes:
            offset_lids(animated, posed, controls.eyes)
        keep_lips(animated, lip_thickness(posed), LIP_KEEP)  # against the lips as the pose alone has them
        shut_pairs(animated, self._rest_gaps)
        gaze = np.zeros((2, 2)) if controls.eye_contact else gaze_change(driver, self.neutral)
        return Motion(animated, posed, gaze)

    def _scale_lids(self, expression: np.ndarray) -> None:
        """Lid motion in the target's eye size, and with MediaPipe's shortfall made up (LID_GAIN_*)."""
        assert self.neutral is not None and self._to_target is not None
        to_t = self._to_target
        for ring, lids, gain in zip((EYE_LEFT_RING, EYE_RIGHT_RING), EYE_LIDS, self._eye_gain):
            upper, lower = lids
            rest = (to_t.scale * (self.neutral[lower] - self.neutral[upper]) @ to_t.rotation.T)[:2]
            now = rest + expression[lower, :2] - expression[upper, :2]  # the driver's mid-lid gap, target axes
            opening = float(now @ rest / max(float(rest @ rest), 1e-9))  # 1 at neutral, 0 shut
            change = abs(opening - 1.0)
            # the gain applies beyond LID_STILL only: the lids' jitter about the neutral is not amplified
            lid_gain = LID_GAIN_CLOSE if opening < 1.0 else LID_GAIN_OPEN
            boost = 1.0 if change <= LID_STILL else (LID_STILL + (change - LID_STILL) * lid_gain) / change
            expression[list(ring)] *= gain * boost


PAIRS = np.array(LIP_PAIRS + LID_PAIRS)  # [K, 2] (upper, lower)
SHUT = 0.15  # a pair closer than this fraction of its gap at rest counts as shut


def face_down(points: np.ndarray) -> np.ndarray:
    """[2] the face's own down direction in the image: from the upper lids' middles to the mouth corners."""
    down = points[list(MOUTH_CORNERS), :2].mean(0) - points[[EYE_LIDS[0][0], EYE_LIDS[1][0]], :2].mean(0)
    return down / max(float(np.linalg.norm(down)), 1e-9)


def pair_gaps(points: np.ndarray) -> np.ndarray:
    """[K] gap of each lip/lid pair along the face's own down direction in the image (negative: crossed)."""
    return (points[PAIRS[:, 1], :2] - points[PAIRS[:, 0], :2]) @ face_down(points)


LIPS = np.array(LIP_THICKNESS)  # [18, 2] (outer, inner)
OUTWARD = np.where(np.arange(len(LIP_THICKNESS)) < 9, -1.0, 1.0)  # the upper lip's outside is up, the lower's down


def lip_thickness(points: np.ndarray, down: np.ndarray | None = None) -> np.ndarray:
    """[18] each lip's thickness across it, along the face's down direction (negative: turned inside out)."""
    down = face_down(points) if down is None else down
    return (points[LIPS[:, 1], :2] - points[LIPS[:, 0], :2]) @ down * -OUTWARD


def keep_lips(points: np.ndarray, rest: np.ndarray, share: float) -> None:
    """Lips thin, they do not vanish: where a lip is thinner than `share` of its thickness at rest [18], its
    outer edge gives way outward (in place; the opening between the lips is kept)."""
    down = face_down(points)
    short = np.maximum(share * rest - lip_thickness(points, down), 0.0)  # [18] how much thinner than allowed
    points[LIPS[:, 0], :2] += (short * OUTWARD)[:, None] * down


def shut_pairs(points: np.ndarray, rest_gaps: np.ndarray) -> None:
    """Lip and lid pairs that are (nearly) shut or have crossed meet at their midpoint, so the thin
    triangles between them close flat instead of folding over (in place; points [478, ≥2])."""
    shut = pair_gaps(points) < SHUT * rest_gaps
    upper, lower = PAIRS[shut, 0], PAIRS[shut, 1]
    mid = (points[upper, :2] + points[lower, :2]) / 2
    points[upper, :2] = mid
    points[lower, :2] = mid


def scaled_rotation(rotation: np.ndarray, strength: float) -> np.ndarray:
    """The 3-D rotation about the same axis by `strength` times the angle."""
    if strength == 1.0:
        return rotation
    vec, _ = cv2.Rodrigues(np.asarray(rotation, np.float64))
    return cv2.Rodrigues(vec * strength)[0]


def offset_lids(points: np.ndarray, posed: np.ndarray, offset: float) -> None:
    """Each lid pair moved along its opening (pose only) by `offset` of it: −1 shut, +1 wider (in place)."""
    upper, lower = np.array(LID_PAIRS).T
    gap = posed[lower, :2] - posed[upper, :2]  # [14, 2] the open eye at rest, posed
    up_share, low_share = LID_SHARE_CLOSE if offset < 0 else LID_SHARE_OPEN
    points[upper, :2] -= offset * up_share * gap
    points[lower, :2] += offset * low_share * gap


def _lower_face(target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The face's down direction [3] (eyes to mouth, in the image plane) and per-point weights [478]
    of the mouth opening: 0 above the nose tip, rising to 1 at the upper inner lip and below."""
    down2 = face_down(target)
    depth = target[:, :2] @ down2
    nose, lip = depth[NOSE_TIP], depth[UPPER_INNER_LIP]
    weight = np.clip((depth - nose) / max(lip - nose, 1e-6), 0.0, 1.0)
    return np.array([down2[0], down2[1], 0.0]), smoothstep(weight)


def lip_gap(points: np.ndarray) -> float:
    """The inner lips' gap in eye distances (the eye corners' midpoints)."""
    return float(np.linalg.norm(points[LOWER_INNER_LIP, :2] - points[UPPER_INNER_LIP, :2])) / _iod(points)


def _iod(points: np.ndarray) -> float:
    eyes = [points[list(corners), :2].mean(0) for corners in EYE_CORNERS]
    return max(float(np.linalg.norm(eyes[1] - eyes[0])), 1e-6)


def _gap(points: np.ndarray, pair: tuple[int, int]) -> float:
    return float(np.linalg.norm(points[pair[0], :2] - points[pair[1], :2]))
