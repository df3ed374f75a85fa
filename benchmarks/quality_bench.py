"""The landmark warp judged by an independent model: `python -m benchmarks.quality_bench`.

The judge is dlib (requirements-ffhq.txt, never a dependency of the app): its HOG face detector, its
68-point shape predictor and its 128-d face descriptor (ResNet; distance < 0.6 = the same person).
Mimic itself tracks with MediaPipe, so the judge shares none of its errors. Outputs come from the
real render path (engine.render.render, what `python -m app render` calls) with default settings,
written as H.264 and read back, as a user gets them.

- cross-reenactment: the fixture clip drives each portrait (astronaut.png and aligned/*.png). Per
  motion signal (below) the Pearson r and the gain (output range / driver range, ranges between the
  5th and 95th percentile) between the driver's frames and the output's; the identity distance of
  every output frame to the portrait at rest (framed as the output is).
- self-reenactment: the clip's first frame is the target and the clip the driver; each output frame is
  compared with the real frame (brought into the output's framing): landmark error after a similarity
  alignment (expression) and as placed (head position: translation_gain 0.5 follows half the shift on
  purpose), both over the inter-ocular distance; PSNR inside the face (the 68 points' hull); identity
  distance to the real frame. The same figures for a still image (the target repeated) give the floor;
  and how the outputs follow the driver's signals, as the cross-reenactment's.
- ceiling: the driver measured twice, its frames upscaled 4x and 3x (the clip is 176x144): how well
  the judge agrees with itself on each signal.
- perfect warp: the driver's own frames taken as an output (framed as the warp frames the clip's first
  frame, written as H.264 and read back, judged as outputs are) against the driver: what the judge gives
  a warp that reproduced the driver exactly, the most an output can be expected to score.
- spread (--spread K): each portrait's outputs judged K more times with ±1 level of random noise added
  to every pixel (invisible): the lowest and highest r per signal. A difference between two trees
  smaller than this spread is the judge's, not the warp's.

Signals (scale-free, from the 68 points; eye centre = mean of its 6 points, iod = their distance):
mouth = inner-lip gap (61-67, 62-66, 63-65) / mouth width (48-54); eye_l / eye_r = eye aspect ratio
(|37-41| + |38-40|) / 2|36-39| of the image-left / image-right eye; brows = mean height of the brow
points (17-26) above the eye line (perpendicular to it) / iod; roll = angle of the eye line (deg);
yaw = (|30-0| - |30-16|) / |0-16|; pitch = nose tip (30) along the eye-to-mouth axis, as a fraction
of the eye-to-mouth distance.

Writes a Markdown table to stdout and everything to --json (docs/media/quality.json).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
CLIP = FIXTURES / "video" / "carphone_pristine.mp4"
SIGNALS = ("mouth", "eye_l", "eye_r", "brows", "roll", "yaw", "pitch")
DRIVER_UPSCALE = 4  # the clip is 176x144: dlib's detector needs faces of ~80 px and more
CEILING_UPSCALE = 3

log = logging.getLogger(__name__)


def judge_available() -> str | None:
    """None when dlib and its models are installed, else why not (one line)."""
    if importlib.util.find_spec("dlib") is None:
        return "dlib is not installed (pip install -r requirements-ffhq.txt)"
    if _models_dir() is None:
        return "face_recognition_models is not installed (pip install -r requirements-ffhq.txt)"
    return None


def _models_dir() -> Path | None:
    spec = importlib.util.find_spec("face_recognition_models")  # its __init__ needs pkg_resources: not imported
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "models"
    return path if path.is_dir() else None


@dataclass
class Judged:
    points: np.ndarray  # [68, 2] in the judged image's pixels
    descriptor: np.ndarray | None  # [128] when asked for


class Judge:
    """dlib's detector, 68-point predictor and face descriptor."""

    def __init__(self) -> None:
        import dlib

        models = _models_dir()
        assert models is not None, judge_available()
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(models / "shape_predictor_68_face_landmarks.dat"))
        self._encoder = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))
        self._last_box = None

    def reset(self) -> None:
        """Forget the last face box (the next image starts a new sequence)."""
        self._last_box = None

    def __call__(self, image: np.ndarray, upscale: float = 1.0, descriptor: bool = False) -> Judged | None:
        """The 68 points (and the descriptor) of the largest face in an RGB uint8 image; where the detector
        misses, the last box of the sequence is used; None before any face was found."""
        if upscale != 1.0:
            image = cv2.resize(image, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_CUBIC)
        image = np.ascontiguousarray(image)
        found = list(self._detector(image, 0))
        if found:
            self._last_box = max(found, key=lambda r: r.area())
        if self._last_box is None:
            return None
        shape = self._predictor(image, self._last_box)
        points = np.array([(p.x, p.y) for p in shape.parts()], np.float64)
        desc = np.array(self._encoder.compute_face_descriptor(image, shape)) if descriptor else None
        return Judged(points / upscale, desc)


def signals(p: np.ndarray) -> dict[str, float]:
    """The scale-free motion signals of one face's 68 points (module docstring)."""
    d = lambda a, b: float(np.linalg.norm(p[a] - p[b]))  # noqa: E731
    eye_l, eye_r = p[36:42].mean(0), p[42:48].mean(0)
    iod = max(float(np.linalg.norm(eye_r - eye_l)), 1e-9)
    across = (eye_r - eye_l) / iod
    up = np.array([across[1], -across[0]])  # perpendicular to the eye line, pointing up in the image
    mouth = (d(61, 67) + d(62, 66) + d(63, 65)) / 3 / max(d(48, 54), 1e-9)
    ear = lambda o: (d(o + 1, o + 5) + d(o + 2, o + 4)) / 2 / max(d(o, o + 3), 1e-9)  # noqa: E731
    brows = float(np.mean((p[17:27] - (eye_l + eye_r) / 2) @ up)) / iod
    mouth_c = p[[48, 54]].mean(0)
    axis = mouth_c - (eye_l + eye_r) / 2
    pitch = float((p[30] - (eye_l + eye_r) / 2) @ axis / max(axis @ axis, 1e-9))
    return {
        "mouth": mouth,
        "eye_l": ear(36),
        "eye_r": ear(42),
        "brows": brows,
        "roll": float(np.degrees(np.arctan2(across[1], across[0]))),
        "yaw": (d(30, 0) - d(30, 16)) / max(d(0, 16), 1e-9),
        "pitch": pitch,
    }


def inter_ocular(p: np.ndarray) -> float:
    return float(np.linalg.norm(p[36:42].mean(0) - p[42:48].mean(0)))


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok] - a[ok].mean(), b[ok] - b[ok].mean()
    return float(a @ b / max(np.sqrt((a @ a) * (b @ b)), 1e-12))


def spread(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(np.percentile(x, 95) - np.percentile(x, 5))


def series(signals_per_frame: list[dict | None], name: str) -> np.ndarray:
    """One signal over the frames (NaN where no face was judged)."""
    return np.array([s[name] if s else np.nan for s in signals_per_frame])


def follow(driver: list[dict], output: list[dict]) -> dict[str, dict[str, float]]:
    """Per signal: r and gain (output range / driver range) over the frames both have."""
    result = {}
    for name in SIGNALS:
        a, b = series(driver, name), series(output, name)
        ok = np.isfinite(a) & np.isfinite(b)
        result[name] = {"r": pearson(a[ok], b[ok]), "gain": spread(b[ok]) / max(spread(a[ok]), 1e-12)}
    return result


def read_frames(path: Path, limit: int | None = None) -> tuple[list[np.ndarray], float]:
    from engine.media.video_io import VideoReader

    frames = []
    with VideoReader(path) as video:
        fps = float(video.fps)
        for frame in video:
            frames.append(frame)
            if limit and len(frames) >= limit:
                break
    return frames, fps


def write_clip(frames: list[np.ndarray], fps: float, path: Path) -> Path:
    from engine.media.video_io import H264Writer

    with H264Writer.constant_rate(path, fps, (frames[0].shape[1], frames[0].shape[0])) as writer:
        for frame in frames:
            writer.write(frame)
    return path


@dataclass
class Rendered:
    frames: list[np.ndarray]  # the output frames, read back from the rendered MP4
    at_rest: np.ndarray  # the framed portrait at rest
    seconds: float  # set_target + render
    alphas: list[np.ndarray]  # the person's alpha [h, w] uint8 in each output (the warp's layers)
    rest_alpha: np.ndarray  # [h, w] float32 the person at rest


def render_outputs(target: Path, clip: Path, folder: Path) -> Rendered:
    """The outputs of the render path with default settings (and the person's alpha in each)."""
    from engine.factory import create_reenactor
    from engine.render import parse_target, render

    reenactor = create_reenactor()
    alphas: list[np.ndarray] = []
    drive = reenactor.drive

    def drive_and_keep_alpha(frame: np.ndarray):
        result = drive(frame)
        alpha = getattr(reenactor, "person_alpha", None)
        alphas.append(np.zeros(result.image.shape[:2], np.uint8) if alpha is None else
                      np.round(alpha * 255).astype(np.uint8))
        return result

    reenactor.drive = drive_and_keep_alpha  # type: ignore[method-assign]
    try:
        t = time.perf_counter()
        reenactor.set_target(parse_target(str(target)))
        prepared = reenactor.target  # type: ignore[attr-defined]
        at_rest = prepared.image.copy()
        rest_alpha = prepared.layers.alpha.copy() if prepared.layers is not None else np.ones(at_rest.shape[:2])
        out = folder / f"{target.stem}.mp4"
        render(reenactor, clip, out)
        seconds = time.perf_counter() - t
    finally:
        reenactor.close()
    frames, _ = read_frames(out)
    return Rendered(frames, at_rest, seconds, alphas, rest_alpha.astype(np.float32))


def _gradient(image: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3))


def _grown(mask: np.ndarray, share: float) -> np.ndarray:
    r = max(int(round(share * max(mask.shape))), 1)
    return cv2.dilate(mask.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1,) * 2)) > 0


def _grain(image: np.ndarray) -> np.ndarray:
    """Fine detail (|grey − its blur|, σ 2 px): what a smooth fill lacks and the background has."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return np.abs(grey - cv2.GaussianBlur(grey, (0, 0), 2.0))


def uncovered_edges(rendered: Rendered) -> dict:
    """Where the head was at rest and has moved away.

    Edge energy (mean Sobel magnitude) in the band where the head was (the person's rest area grown by 3 % of
    the side, minus the person now) over the background's own edge energy (a ring 3–10 % of the side around
    the person at rest, in the first output): 1 = nothing of the old outline is left, above 1 an outline (or
    a busy background), below 1 a smooth fill. And the grain (fine detail, `_grain`) of what the head
    uncovered inside its old outline (at least 1 % of the side inside it) over the background ring's: near
    1 the uncovered place looks like the background around it, near 0 it is a flat patch in the head's shape.
    Per frame, the means, and the frame with the most uncovered pixels."""
    rest = rendered.rest_alpha > 0.02
    near = _grown(rest, 0.03)
    ring = _grown(rest, 0.10) & ~near
    inside = ~_grown(~(rendered.rest_alpha >= 0.5), 0.01)
    own = float(_gradient(rendered.frames[0])[ring].mean()) if ring.any() else float("nan")
    own_grain = float(_grain(rendered.frames[0])[ring].mean()) if ring.any() else float("nan")
    ratios, grains, areas = [], [], []
    for frame, alpha in zip(rendered.frames, rendered.alphas):
        clear = (alpha < 13) & ~_grown(alpha >= 13, 0.005)  # clear of the person's own (moved) edge
        band = near & clear
        areas.append(int(band.sum()) - int((near & ~rest).sum()))
        ratios.append(float(_gradient(frame)[band].mean()) / max(own, 1e-6) if band.sum() > 50 else float("nan"))
        uncovered = inside & clear
        grains.append(float(_grain(frame)[uncovered].mean()) / max(own_grain, 1e-6) if uncovered.sum() > 200
                      else float("nan"))
    worst = int(np.argmax(areas))
    return {"ratio_mean": float(np.nanmean(ratios)), "ratio_worst_frame": ratios[worst], "worst_frame": worst,
            "background_edge_energy": own,
            "grain_mean": float(np.nanmean(grains)) if np.isfinite(grains).any() else float("nan"),
            "grain_worst_frame": grains[worst], "background_grain": own_grain}


def judge_sequence(judge: Judge, frames: list[np.ndarray], upscale: float = 1.0,
                   descriptor: bool = False) -> list[Judged | None]:
    judge.reset()
    return [judge(f, upscale, descriptor) for f in frames]


def imperceptible(frames: list[np.ndarray], seed: int) -> list[np.ndarray]:
    """The frames with −1, 0 or +1 level added to every pixel value at random (clipped to 0–255)."""
    rng = np.random.default_rng(seed)
    return [np.clip(f.astype(np.int16) + rng.integers(-1, 2, f.shape, dtype=np.int16), 0, 255).astype(np.uint8)
            for f in frames]


def judge_spread(judge: Judge, frames: list[np.ndarray], driver: list[dict], times: int) -> dict[str, list[float]]:
    """[lowest, highest] r per signal over `times` judgings of the frames with imperceptible noise."""
    rs: dict[str, list[float]] = {s: [] for s in SIGNALS}
    for seed in range(times):
        judged = judge_sequence(judge, imperceptible(frames, seed))
        for name, values in follow(driver, [signals(j.points) if j else None for j in judged]).items():
            rs[name].append(values["r"])
    return {name: [min(r), max(r)] for name, r in rs.items()}


def cross(judge: Judge, targets: list[Path], clip: Path, driver: list[dict], folder: Path,
          media: tuple[Path, str] | None = None, spread_times: int = 0) -> dict:
    results = {}
    for target in targets:
        rendered = render_outputs(target, clip, folder)
        frames, at_rest, seconds = rendered.frames, rendered.at_rest, rendered.seconds
        judge.reset()
        portrait = judge(at_rest, descriptor=True)
        judged = judge_sequence(judge, frames, descriptor=True)
        out_signals = [signals(j.points) if j else None for j in judged]
        ident = [float(np.linalg.norm(j.descriptor - portrait.descriptor)) for j in judged if j and portrait]
        entry = {"follow": follow(driver, out_signals), "identity_mean": float(np.mean(ident)),
                 "identity_max": float(np.max(ident)), "frames": len(frames),
                 "judged": int(sum(j is not None for j in judged)), "render_s": seconds,
                 "uncovered_edges": uncovered_edges(rendered)}
        if spread_times:
            entry["judge_spread"] = judge_spread(judge, frames, driver, spread_times)
        if media is not None:
            entry["strip"] = save_strip(rendered, None, media[0] / f"quality_strip_{target.stem}_{media[1]}.jpg")
        results[target.name] = entry
        log.info("%s: %s", target.name, json.dumps(entry))
    return results


def face_mask(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    hull = cv2.convexHull(np.round(points).astype(np.int32))
    mask = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(mask, hull, 1)
    return mask.astype(bool)


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    err = (a[mask].astype(np.float64) - b[mask].astype(np.float64)) ** 2
    return float(10 * np.log10(255.0**2 / max(err.mean(), 1e-12)))


def residual(points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """[N, 2]: S(points) − reference, with S the similarity that maps `points` best onto `reference` (head
    position, size and roll taken out: what is left is the expression's difference)."""
    from engine.warp.motion import fit_similarity

    points, reference = np.asarray(points, np.float64)[:, :2], np.asarray(reference, np.float64)[:, :2]
    return fit_similarity(points, reference).apply(points) - reference


def compare(judge: Judge, outputs: list[np.ndarray], reals: list[np.ndarray],
            driver: list[dict] | None = None) -> dict:
    """Self-reenactment figures of `outputs` against the real frames (both in output pixels); with the driver's
    signals, how the outputs follow them too (as the cross-reenactment's)."""
    judge.reset()
    real_j = judge_sequence(judge, reals, descriptor=True)
    out_j = judge_sequence(judge, outputs, descriptor=True)
    aligned, placed, psnrs, ident = [], [], [], []
    for real, out, r, o in zip(reals, outputs, real_j, out_j):
        if r is None or o is None:
            continue
        iod = inter_ocular(r.points)
        placed.append(float(np.linalg.norm(o.points - r.points, axis=1).mean() / iod))
        aligned.append(float(np.linalg.norm(residual(o.points, r.points), axis=1).mean() / iod))
        psnrs.append(psnr(out, real, face_mask(r.points, real.shape[:2])))
        ident.append(float(np.linalg.norm(o.descriptor - r.descriptor)))
    result = {"expression_error": float(np.mean(aligned)), "placed_error": float(np.mean(placed)),
              "psnr_face_db": float(np.mean(psnrs)), "identity": float(np.mean(ident)), "frames": len(aligned),
              "per_frame_expression_error": [round(x, 4) for x in aligned]}
    if driver is not None:
        result["follow"] = follow(driver, [signals(j.points) if j else None for j in out_j])
    return result


def framed_reals(frames: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """The clip's frames in the framing the warp gives its first frame as a target, and that framing's
    [2, 3] matrix (clip pixels → output pixels)."""
    from engine.face.framing import framing_window
    from engine.face.landmarks import FaceMeshDetector, MeshConfig
    from engine.warp import WarpConfig

    config = WarpConfig()
    with FaceMeshDetector(MeshConfig(static_images=True)) as detector:
        mesh = detector.detect(frames[0])
    if mesh is None:
        raise ValueError("no face in the clip's first frame")
    h, w = frames[0].shape[:2]
    window = framing_window((w, h), mesh.points, config.framing, config.output_size, config.face_fraction)
    size = (window.out_width, window.out_height)
    reals = [cv2.warpAffine(f, window.matrix, size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
             for f in frames]
    return reals, np.asarray(window.matrix, np.float64)


def self_reenactment(judge: Judge, frames: list[np.ndarray], reals: list[np.ndarray], clip: Path, folder: Path,
                     driver: list[dict], media: tuple[Path, str] | None = None) -> dict:
    """The clip's first frame driven by the clip, against the real frames in the warp's framing (`reals`,
    framed_reals)."""
    from engine.media.video_io import write_image

    target = write_image(folder / "first_frame.png", frames[0])
    rendered = render_outputs(target, clip, folder)
    outputs, at_rest = rendered.frames, rendered.at_rest
    result = {"warp": compare(judge, outputs, reals, driver), "still": compare(judge, [at_rest] * len(reals), reals),
              "uncovered_edges": uncovered_edges(rendered)}
    if media is not None:
        result["strip"] = save_strip(rendered, reals, media[0] / f"quality_strip_self_{media[1]}.jpg")
    return result


def perfect_output(judge: Judge, reals: list[np.ndarray], fps: float, driver: list[dict], folder: Path,
                   spread_times: int = 0) -> dict:
    """The driver's own frames (`reals`, in the warp's framing: framed_reals) judged as an output of the warp
    would be (module docstring: perfect warp)."""
    shown, _ = read_frames(write_clip(reals, fps, folder / "perfect.mp4"))
    judged = judge_sequence(judge, shown)
    entry: dict = {"follow": follow(driver, [signals(j.points) if j else None for j in judged])}
    if spread_times:
        entry["judge_spread"] = judge_spread(judge, shown, driver, spread_times)
    return entry


def ceiling(driver_4x: list[dict], driver_3x: list[dict]) -> dict[str, float]:
    return {name: values["r"] for name, values in follow(driver_4x, driver_3x).items()}


def _follow_cells(follow_: dict[str, dict[str, float]]) -> str:
    return " | ".join(f"{follow_[s]['r']:.2f} / {follow_[s]['gain']:.2f}" for s in SIGNALS) + " |"


def table(report: dict) -> str:
    lines = ["| target | " + " | ".join(f"{s} r / gain" for s in SIGNALS) + " | identity mean (max) | "
             "uncovered edges mean (worst) | uncovered grain mean (worst) |", "|---" * (len(SIGNALS) + 4) + "|"]
    for name, entry in report["cross"].items():
        edges = entry["uncovered_edges"]
        lines.append(f"| {name} | " + _follow_cells(entry["follow"]) + f" {entry['identity_mean']:.3f} "
                     f"({entry['identity_max']:.3f}) | {edges['ratio_mean']:.2f} ({edges['ratio_worst_frame']:.2f}"
                     f" @{edges['worst_frame']}) | {edges['grain_mean']:.2f} ({edges['grain_worst_frame']:.2f}) |")
    lines.append("| judge ceiling (4x vs 3x) | " + " | ".join(f"{report['ceiling'][s]:.2f}" for s in SIGNALS)
                 + " | | | |")
    if "perfect" in report:
        lines.append("| the driver as its own output (a perfect warp) | " + _follow_cells(report["perfect"]["follow"])
                     + " | | |")
    spreads = {name: e["judge_spread"] for name, e in report["cross"].items() if "judge_spread" in e}
    if "judge_spread" in report.get("perfect", {}):
        spreads["the driver as its own output"] = report["perfect"]["judge_spread"]
    if spreads:
        lines += ["", "| the same outputs re-judged with ±1 level of noise: r lowest–highest | "
                  + " | ".join(SIGNALS) + " |", "|---" * (len(SIGNALS) + 1) + "|"]
        for name, r in spreads.items():
            lines.append(f"| {name} | " + " | ".join(f"{r[s][0]:.2f}–{r[s][1]:.2f}" for s in SIGNALS) + " |")
    if "self" in report:
        lines += ["", "| self-reenactment | expression error (/iod) | placed error (/iod) | PSNR face (dB) | "
                  "identity |", "|---|---|---|---|---|"]
        for name in ("warp", "still"):
            e = report["self"][name]
            lines.append(f"| {name} | {e['expression_error']:.4f} | {e['placed_error']:.4f} | "
                         f"{e['psnr_face_db']:.2f} | {e['identity']:.3f} |")
        if "follow" in report["self"]["warp"]:
            lines += ["", "| self-reenactment follows the driver, r / gain | " + " | ".join(SIGNALS) + " |",
                      "|---" * (len(SIGNALS) + 1) + "|", "| warp | " + _follow_cells(report["self"]["warp"]["follow"])]
            if "perfect" in report:
                lines.append("| the real frames (a perfect warp) | " + _follow_cells(report["perfect"]["follow"]))
        edges = report["self"]["uncovered_edges"]
        lines.append(f"\nself-reenactment uncovered edges: mean {edges['ratio_mean']:.2f}, worst frame "
                     f"{edges['worst_frame']}: {edges['ratio_worst_frame']:.2f}; uncovered grain: mean "
                     f"{edges['grain_mean']:.2f}, worst frame {edges['grain_worst_frame']:.2f}")
    return "\n".join(lines)


def save_strip(rendered: Rendered, reals: list[np.ndarray] | None, path: Path) -> dict:
    """The three frames with the most uncovered background (head turns, at least 8 frames apart) as rows of
    [at rest | output] (self-reenactment: [real frame | output]), half size, as a JPEG."""
    rest = rendered.rest_alpha > 0.02
    areas = np.array([int((rest & (a < 13)).sum()) for a in rendered.alphas])
    picks: list[int] = []
    for k in np.argsort(-areas):
        if all(abs(int(k) - p) >= 8 for p in picks):
            picks.append(int(k))
        if len(picks) == 3:
            break
    picks.sort()
    tiles = [np.hstack([reals[k] if reals is not None else rendered.at_rest, rendered.frames[k]]) for k in picks]
    strip = cv2.resize(np.vstack(tiles), None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    return {"file": path.name, "frames": picks}


def judged_targets(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[Path]:
    """The portraits to judge; exits with a one-line reason when the judge or the fixture clip is missing."""
    missing = judge_available()
    if missing:
        parser.exit(2, f"error: {missing}\n")
    if not CLIP.is_file():
        parser.exit(2, f"error: the fixture clip is missing ({CLIP})\n")
    if args.targets:
        return [Path(t) for t in args.targets]
    return [FIXTURES / "portraits" / "astronaut.png"] + sorted((FIXTURES / "aligned").glob("*.png"))


def publish(text: str, report: dict, path: Path | None) -> None:
    """The table to stdout, every figure to `path` (JSON) when given."""
    print(text)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None, help="write every figure here (docs/media/quality.json)")
    parser.add_argument("--frames", type=int, default=None, help="only the clip's first N frames (quick look)")
    parser.add_argument("--targets", nargs="*", default=None,
                        help="portrait files (default: the fixture portrait and aligned faces)")
    parser.add_argument("--no-self", action="store_true", help="skip the self-reenactment")
    parser.add_argument("--media", type=Path, default=None,
                        help="write strips of the biggest head turns here (quality_strip_<target>_<label>.jpg)")
    parser.add_argument("--label", default="now", help="the strips' name suffix (e.g. before, after)")
    parser.add_argument("--spread", type=int, default=0, metavar="K",
                        help="judge each portrait's outputs K more times with invisible noise (the judge's spread)")
    args = parser.parse_args(argv)
    if args.spread < 0:
        parser.error("--spread takes a count of re-judgings, 0 or more")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    targets = judged_targets(parser, args)
    judge = Judge()
    frames, fps = read_frames(CLIP, args.frames)
    report: dict = {"clip": CLIP.name, "frames": len(frames)}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clip = write_clip(frames, fps, folder / "driver.mp4") if args.frames else CLIP
        d4 = [signals(j.points) if j else None for j in judge_sequence(judge, frames, DRIVER_UPSCALE)]
        d3 = [signals(j.points) if j else None for j in judge_sequence(judge, frames, CEILING_UPSCALE)]
        report["ceiling"] = ceiling(d4, d3)
        reals, _ = framed_reals(frames)
        report["perfect"] = perfect_output(judge, reals, fps, d4, folder, args.spread)
        media = (args.media, args.label) if args.media else None
        report["cross"] = cross(judge, targets, clip, d4, folder, media, args.spread)
        if not args.no_self:
            report["self"] = self_reenactment(judge, frames, reals, clip, folder, d4, media)
    publish(table(report), report, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
