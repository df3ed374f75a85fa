"""The weights-free landmark warp on the real fixtures: frame count, motion follows the driver,
identity kept, no folds, error paths, neutral reset."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.errors import MimicError, NoFaceError
from engine.face.landmarks import FaceMeshDetector, MeshConfig
from engine.reenactor import Reenactor, TargetSpec
from engine.media.video_io import VideoReader, read_image
from engine.warp import WarpConfig, WarpReenactor
from engine.warp.mesh import CANVAS_MARGIN, EYE_CORNERS, EYE_LIDS, LID_PAIRS, signed_areas
from engine.warp.metrics import MEASURES, outside_face, pearson
from engine.warp.reenactor import SETTLE_PASSES
from tests.support import MOUTH_OPEN_FRAME, extreme_meshes


@pytest.fixture(scope="module")
def clip(fixtures_dir: Path) -> list[np.ndarray]:
    with VideoReader(fixtures_dir / "video" / "carphone_pristine.mp4") as video:
        return list(video)


@pytest.fixture(scope="module")
def astronaut(fixtures_dir: Path) -> np.ndarray:
    return read_image(fixtures_dir / "portraits" / "astronaut.png")


@pytest.fixture(scope="module")
def warp(astronaut: np.ndarray) -> Iterator[WarpReenactor]:
    reenactor = WarpReenactor()
    reenactor.set_target(TargetSpec.from_image(astronaut))
    yield reenactor
    reenactor.close()


def _run(reenactor: WarpReenactor, frames: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    results = [reenactor.drive(f) for f in frames]
    return [r.image for r in results], [r.driver_landmarks for r in results]


@pytest.mark.parametrize("target", ["portraits/astronaut.png", "aligned/1.png"])
def test_output_follows_driver_over_the_clip(fixtures_dir: Path, clip: list[np.ndarray], target: str, closing) -> None:
    reenactor = closing(WarpReenactor())
    reenactor.set_target(TargetSpec.from_image(read_image(fixtures_dir / target)))
    outputs, drivers = _run(reenactor, clip)
    assert len(outputs) == len(clip) == 120
    assert all(o.shape == (512, 512, 3) and o.dtype == np.uint8 for o in outputs)
    # every 2nd frame: MediaPipe again on the *output* against the driver's landmarks
    series: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in MEASURES}
    with FaceMeshDetector(MeshConfig(static_images=False)) as detector:
        for out, drv in zip(outputs[::2], drivers[::2]):
            mesh = detector.detect(out)
            assert drv is not None and mesh is not None
            for name, measure in MEASURES.items():
                series[name][0].append(measure(drv))
                series[name][1].append(measure(mesh.points))
    corr = {name: pearson(*v) for name, v in series.items()}
    assert min(corr.values()) >= 0.8, corr


def test_describe_and_protocol(warp: WarpReenactor) -> None:
    assert isinstance(warp, Reenactor)
    assert warp.describe() == "Landmark warp (no weights) · CPU · OpenCV"
    assert warp.output_size == (512, 512)


def test_still_driver_leaves_everything_outside_the_face(astronaut: np.ndarray, clip: list[np.ndarray], closing) -> None:
    reenactor = closing(WarpReenactor())
    reenactor.set_target(TargetSpec.from_image(astronaut))
    target = reenactor.target
    assert target is not None
    outputs = [reenactor.drive(clip[0]).image for _ in range(10)]
    outside = outside_face(target.mesh, target.image.shape)
    change = np.abs(outputs[-1].astype(np.float32) - target.image.astype(np.float32))[outside]
    assert outside.mean() > 0.4  # most of the frame is background, hair, neck
    assert change.mean() < 0.5, change.mean()


def test_no_triangle_folds_under_extreme_motion(warp: WarpReenactor, clip: list[np.ndarray]) -> None:
    target = warp.target
    assert target is not None
    with FaceMeshDetector(MeshConfig(static_images=True)) as detector:
        neutral3d = detector.detect(clip[0]).points.astype(np.float64)
    target.motion.set_neutral(neutral3d)
    for name, driver in extreme_meshes(neutral3d).items():
        moved = target.control_points(target.motion(driver))
        areas = signed_areas(moved, target.control.triangles)
        assert areas.min() >= -1e-6, f"{name}: {int((areas < -1e-6).sum())} folded triangles"
        w, h = target.warp.size
        mapping = target.warp.backward_map(moved)
        assert np.isfinite(mapping).all()
        assert mapping[..., 0].min() > -2 and mapping[..., 0].max() < w + 1, name  # samples the portrait
        # ... or, below it, no further than the canvas reaches (the frame's bottom rows, mirrored)
        assert mapping[..., 1].min() > -2 and mapping[..., 1].max() < h + 1 + CANVAS_MARGIN * h, name


def _eye_opening(points: np.ndarray) -> float:
    """Mean over both eyes of mid-lid gap over eye width."""
    p = points[:, :2]
    return float(np.mean([np.linalg.norm(p[u] - p[low]) / np.linalg.norm(p[a] - p[b])
                          for (u, low), (a, b) in zip(EYE_LIDS, EYE_CORNERS)]))


def test_closed_driver_eyes_close_the_target_eyes(warp: WarpReenactor, clip: list[np.ndarray]) -> None:
    target = warp.target
    assert target is not None
    with FaceMeshDetector(MeshConfig(static_images=True)) as detector:
        neutral = detector.detect(clip[0]).points.astype(np.float64)
        closed = neutral.copy()
        for upper, lower in LID_PAIRS:
            gap = neutral[lower] - neutral[upper]
            closed[upper] += 0.8 * gap
            closed[lower] -= 0.2 * gap
        warp.reset_neutral()
        at_rest = warp.animate(target, neutral, {})
        for _ in range(8):  # let the smoothing catch up
            shut = warp.animate(target, closed, {})
        rest_open = _eye_opening(detector.detect(at_rest).points)
        shut_open = _eye_opening(detector.detect(shut).points)
    assert shut_open < 0.6 * rest_open, (rest_open, shut_open)


def test_target_without_a_face_raises_no_face_error() -> None:
    blank = np.full((256, 256, 3), 128, np.uint8)
    with pytest.raises(NoFaceError, match="no face found in the target image"):
        WarpReenactor().set_target(TargetSpec.from_image(blank))


@pytest.mark.parametrize("spec", [TargetSpec.from_latent(Path("w.npy")), TargetSpec.random(3)])
def test_latent_and_random_targets_need_a_model_pack(spec: TargetSpec) -> None:
    with pytest.raises(MimicError, match="model pack"):
        WarpReenactor().set_target(spec)


def test_driving_frame_without_a_face_holds_the_last_output(warp: WarpReenactor, clip: list[np.ndarray]) -> None:
    good = warp.drive(clip[MOUTH_OPEN_FRAME])
    assert good.face_found
    empty = warp.drive(np.zeros((144, 176, 3), np.uint8))
    assert not empty.face_found
    assert np.array_equal(empty.image, good.image)
    assert set(empty.timings_ms) == {"landmarks"}
    assert set(good.timings_ms) == {"landmarks", "motion", "warp", "composite"}


def test_reset_neutral_takes_the_next_frame_as_rest(astronaut: np.ndarray, clip: list[np.ndarray], closing) -> None:
    reenactor = closing(WarpReenactor(WarpConfig(smoothing=0.0)))
    reenactor.set_target(TargetSpec.from_image(astronaut))
    target = reenactor.target
    assert target is not None
    rest = target.image.astype(np.float32)
    assert np.abs(reenactor.drive(clip[0]).image - rest).mean() < 0.5  # the neutral: the target at rest
    opened = reenactor.drive(clip[MOUTH_OPEN_FRAME]).image
    assert np.abs(opened - rest).mean() > 5.0
    reenactor.reset_neutral()
    again = reenactor.drive(clip[MOUTH_OPEN_FRAME]).image  # the open mouth is now the neutral: at once
    assert np.abs(again - rest).mean() < 0.5
    for _ in range(3):  # and stays so, but for MediaPipe's own wobble on a still frame (0.04–0.5)
        assert np.abs(reenactor.drive(clip[MOUTH_OPEN_FRAME]).image - rest).mean() < 1.0


def test_the_neutral_is_the_first_frame_and_the_next_ones_move(astronaut: np.ndarray, clip: list[np.ndarray],
                                                                 closing) -> None:
    """The first driving frame with a face is the neutral (tracked SETTLE_PASSES more times on itself), and
    the driver's motion from the second frame on reaches the portrait. (When the neutral followed the first
    four frames, the clip's frames 1–3 showed the portrait at rest and their motion was lost for good: in
    self-reenactment an offset of 0.014 eye distances in every frame.)"""
    reenactor = closing(WarpReenactor(WarpConfig(smoothing=0.0)))
    reenactor.set_target(TargetSpec.from_image(astronaut))
    rest = reenactor.target.image.astype(np.float32)
    assert np.abs(reenactor.drive(clip[0]).image - rest).mean() < 0.5
    moved = [float(np.abs(reenactor.drive(clip[i]).image - rest).mean()) for i in (1, 2, 3)]
    assert min(moved) > 1.0, moved  # 1.9, 2.5, 4.2 grey levels; 0.0 with the old neutral


def test_a_face_found_again_does_not_jump(astronaut: np.ndarray, clip: list[np.ndarray], closing) -> None:
    """When the face comes back after frames without one, tracking restarts from a fresh detection, a few
    percent of a face width off; that frame is settled as the neutral's is, so the same face in the same pose
    shows the portrait at rest at once (it came back 3.7 grey levels off and drifted back over four frames)."""
    reenactor = closing(WarpReenactor(WarpConfig(smoothing=0.0)))
    reenactor.set_target(TargetSpec.from_image(astronaut))
    rest = reenactor.target.image.astype(np.float32)
    reenactor.drive(clip[0])
    assert not reenactor.drive(np.zeros_like(clip[0])).face_found
    back = reenactor.drive(clip[0])
    assert back.face_found and np.abs(back.image - rest).mean() < 0.5


def test_portrait_framing_keeps_the_whole_image(astronaut: np.ndarray, clip: list[np.ndarray], closing) -> None:
    wide = np.ascontiguousarray(astronaut[64:448])  # 512 x 384
    reenactor = closing(WarpReenactor(WarpConfig(framing="portrait", output_size=400)))
    reenactor.set_target(TargetSpec.from_image(wide))
    assert reenactor.output_size == (400, 300)
    out = reenactor.drive(clip[0])
    assert out.face_found and out.image.shape == (300, 400, 3)


def test_the_smoothing_follows_a_nod_and_still_calms_the_points(fixtures_dir: Path) -> None:
    """The head pose is smoothed apart from the expression and more lightly (LandmarkSmoother): a 15° nod
    over three frames has the nose tip at ≥ 0.88 of its travel on the nod's last frame (0.79 when every
    point was smoothed alike), while independent jitter of the points is still cut to ≤ 0.7 (0.62 before,
    0.64 now)."""
    from engine.warp.mesh import EYE_OUTER_CORNERS, NOSE_TIP, RIGID
    from engine.warp.reenactor import LandmarkSmoother

    with FaceMeshDetector(MeshConfig(static_images=True)) as detector:
        mesh = detector.detect(read_image(fixtures_dir / "aligned" / "0.png")).points.astype(np.float64)
    centre = mesh[list(RIGID)].mean(0)

    def nod(degrees: float) -> np.ndarray:
        rotation = cv2.Rodrigues(np.array([np.radians(degrees), 0.0, 0.0]))[0]
        return (mesh - centre) @ rotation.T + centre

    frames = [nod(0)] * 10 + [nod(5), nod(10), nod(15)] + [nod(15)] * 5
    smoother = LandmarkSmoother(0.3)
    out = [smoother(m) for m in frames]
    travel = frames[-1][NOSE_TIP, 1] - frames[0][NOSE_TIP, 1]
    assert (out[12][NOSE_TIP, 1] - frames[0][NOSE_TIP, 1]) / travel >= 0.88
    assert abs(out[-1][NOSE_TIP, 1] - frames[-1][NOSE_TIP, 1]) < 0.02 * abs(travel)  # and settles

    rng = np.random.default_rng(0)
    a, b = EYE_OUTER_CORNERS
    unit = float(np.linalg.norm(mesh[a, :2] - mesh[b, :2]))
    noisy = np.array([mesh + rng.normal(0.0, 0.004 * unit, mesh.shape) for _ in range(60)])
    smoother = LandmarkSmoother(0.3)
    calmed = np.array([smoother(m) for m in noisy])[10:, :, :2]
    spread = lambda x: float(np.linalg.norm(x - x.mean(0), axis=-1).mean())  # noqa: E731
    assert spread(calmed) <= 0.7 * spread(noisy[10:, :, :2])


def test_the_mouth_opens_without_lag(fixtures_dir: Path) -> None:
    """Lips are smoothed as lightly as lids and brows: a mouth opening by 0.3 eye distances over three frames
    has opened ≥ 0.9 of the way on its last frame (0.82 when lips were smoothed like the rest of the face)."""
    from engine.warp.mesh import EYE_OUTER_CORNERS, INNER_LIPS, LOWER_INNER_LIP, OUTER_LIPS, UPPER_INNER_LIP
    from engine.warp.reenactor import LandmarkSmoother

    with FaceMeshDetector(MeshConfig(static_images=True)) as detector:
        mesh = detector.detect(read_image(fixtures_dir / "aligned" / "0.png")).points.astype(np.float64)
    a, b = EYE_OUTER_CORNERS
    unit = float(np.linalg.norm(mesh[a, :2] - mesh[b, :2]))
    middle = mesh[[UPPER_INNER_LIP, LOWER_INNER_LIP], 1].mean()
    lower_lip = [i for i in set(INNER_LIPS + OUTER_LIPS) if mesh[i, 1] > middle]

    def opened(share: float) -> np.ndarray:
        m = mesh.copy()
        m[lower_lip, 1] += share * 0.3 * unit
        return m

    frames = [opened(0)] * 10 + [opened(1 / 3), opened(2 / 3), opened(1)] + [opened(1)] * 5
    smoother = LandmarkSmoother(0.3)
    out = [smoother(m) for m in frames]
    gap = lambda m: m[LOWER_INNER_LIP, 1] - m[UPPER_INNER_LIP, 1]  # noqa: E731
    assert (gap(out[12]) - gap(frames[0])) / (gap(frames[-1]) - gap(frames[0])) >= 0.9


@pytest.mark.parametrize("target", ["portraits/astronaut.png", "aligned/0.png", "aligned/1.png", "aligned/2.png",
                                    "aligned/3.png", "aligned/5.png"])
def test_a_wide_open_mouth_is_not_held_back_by_the_fold_repair(fixtures_dir: Path, clip: list[np.ndarray],
                                                                target: str, closing) -> None:
    """The clip's wide-open mouths (tracked, as when driving): the warp's control points keep ≥ 0.9 of the
    opening the motion transfer gave the mesh (0.51–0.66 when the lower lip was pushed past the skin points
    just under it and the fold repair held the lip back; 0.83 on `aligned/2` and 0.89 on `aligned/5` when a
    fold on the turned-away cheek was toned down locally too steeply and the repair then toned down the
    whole face — round ten; 0.42 on the astronaut when her thin upper lip, carried in her wider mouth's size,
    turned inside out before lips kept half their thickness — round eleven)."""
    from engine.warp.metrics import mouth_opening

    with FaceMeshDetector(MeshConfig()) as detector:  # tracking, as when driving: settled on the first frame
        settled = [detector.detect(clip[0]) for _ in range(SETTLE_PASSES + 1)][-1]
        tracked = [settled] + [detector.detect(frame) for frame in clip[1:117]]
    neutral = tracked[0].points.astype(np.float64)
    drivers = [tracked[i].points.astype(np.float64) for i in (MOUTH_OPEN_FRAME, 108, 116)]
    warp = closing(WarpReenactor())
    warp.set_target(TargetSpec.from_image(read_image(fixtures_dir / target)))
    prepared = warp.target
    prepared.motion.set_neutral(neutral)
    rest = mouth_opening(prepared.mesh)
    for driver in drivers:
        motion = prepared.motion(driver)
        moved = prepared.control_points(motion)
        assert signed_areas(moved, prepared.control.triangles).min() >= -1e-6
        kept = (mouth_opening(moved) - rest) / (mouth_opening(motion.animated) - rest)
        assert kept >= 0.9, f"{target}: the control points keep {kept:.2f} of the mouth's opening"
