"""Figures for the weights-free warp reenactor on the fixture clip: `python -m benchmarks.warp_bench`.

For the fixture portrait and each aligned fixture, driven by the 120-frame carphone clip:

- frames: one output per driving frame;
- motion follows the driver: Pearson correlation over the clip between the driver's and the output's
  mouth opening, yaw proxy and roll (engine.warp.metrics says exactly how each is computed); the
  output's landmarks come from MediaPipe run again on the *output* frames;
- identity: mean absolute change (0–255) of the output against the target at rest, outside the face
  oval grown by 10 % of the face width, for a still driver (the clip's first frame, 30 times);
- speed: median ms per frame end-to-end (drive(): landmarks + motion + warp + composite) at the
  output size, and the median of each stage; MediaPipe's share is the "landmarks" stage; the layered
  and the whole-frame warp called in turn on each frame (their ratio holds under any load); target
  preparation (set_target: mesh, triangulation, segmentation, plate), median of 3;
- background: mean |output − target at rest| outside the person (its alpha at rest and in that output,
  each at 0.5, grown by 2 % of the image), for the layered warp and the whole-frame warp (layers=False)
  driven alike; "rest mask only": the same outside the person at rest alone (the person's own motion
  beyond 2 % counts there);
- gaze: Pearson correlation of the iris offset (engine.warp.gaze, horizontal u and vertical v, mean of
  both eyes) between driver and re-detected output, on the clip and on a synthetic driver (the clip's
  first mesh with both irises moved along a path); eye contact: the largest offset change of the output
  from the rest pose, in eye widths, over the clip;
- winks: a synthetic wink of each eye; openness (lid gap / eye width, re-detected) of each output eye
  over its rest value;
- background fills: push-pull vs Telea (at 128 px), time (median of 5) and mean error on a ring of known background
  (3 % wide) hidden along with the person.

--media DIR writes a side-by-side strip (driver | output, every 10th frame), a short GIF, and
warp_before_after.png (driver | whole-frame warp | layered, on the astronaut and the painting) and
warp_fills.png (the background plate by push-pull | by Telea, same targets).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from engine.face.landmarks import FaceMeshDetector, MeshConfig
from engine.runtime.memory import keep_freed_memory
from engine.reenactor import TargetSpec
from engine.media.video_io import VideoReader, read_image, write_image
from engine.warp import WarpConfig, WarpReenactor
from engine.warp.gaze import IRIS_CENTRES, eye_frame, eye_openness, gaze_offsets
from engine.warp.layers import fill_background, grown, person_alpha
from engine.warp.mesh import LID_PAIRS
from engine.warp.metrics import MEASURES, background_change, outside_face, pearson
from engine.warp.retarget import Retargeting

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
STAGES = ("landmarks", "motion", "warp", "composite")


def run_clip(target: np.ndarray, frames: list[np.ndarray], config: WarpConfig) -> dict:
    """Drive `target` with every frame; figures plus the outputs and the person's alpha in each."""
    reenactor = WarpReenactor(config)
    prep = []
    for _ in range(3):
        t = time.perf_counter()
        reenactor.set_target(TargetSpec.from_image(target))
        prep.append(time.perf_counter() - t)
    outputs, alphas, drivers, total, stages = [], [], [], [], {s: [] for s in STAGES}
    for frame in frames:
        t = time.perf_counter()
        result = reenactor.drive(frame)
        total.append((time.perf_counter() - t) * 1000)
        outputs.append(result.image)
        alphas.append(reenactor.person_alpha)
        drivers.append(result.driver_landmarks)
        for s in STAGES:
            if s in result.timings_ms:
                stages[s].append(result.timings_ms[s])
    series: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in (*MEASURES, "gaze u", "gaze v")}
    missed, contact = 0, []
    rest_gaze = _gaze(reenactor.target.image)
    with FaceMeshDetector(MeshConfig(static_images=False)) as detector:
        for out, drv in zip(outputs, drivers):
            mesh = detector.detect(out)
            if mesh is None or drv is None:
                missed += 1
                continue
            for name, measure in MEASURES.items():
                series[name][0].append(measure(drv))
                series[name][1].append(measure(mesh.points))
            for k, axis in enumerate(("gaze u", "gaze v")):
                series[axis][0].append(gaze_offsets(drv)[:, k].mean())
                series[axis][1].append(gaze_offsets(mesh.points)[:, k].mean())
            contact.append(float(np.abs(gaze_offsets(mesh.points) - rest_gaze).max()))
    median = statistics.median(total)
    return {
        "frames_in": len(frames),
        "frames_out": len(outputs),
        "output_size": list(reenactor.output_size),
        "output_frames_without_face": missed,
        "correlation": {k: pearson(*v) for k, v in series.items()},
        "gaze_change_max_eye_widths": max(contact),
        "median_ms": median,
        "fps": 1000.0 / median,
        "stage_median_ms": {s: statistics.median(v) for s, v in stages.items() if v},
        "prepare_s": statistics.median(prep),
        "outputs": outputs,
        "alphas": alphas,
        "rest": reenactor.target.image,
        "rest_alpha": reenactor.target.layers.alpha if reenactor.target.layers is not None else None,
    }


def _gaze(image: np.ndarray) -> np.ndarray:
    with FaceMeshDetector(MeshConfig(static_images=True)) as detector:
        return gaze_offsets(detector.detect(image).points)


def interleaved_speed(target: np.ndarray, frames: list[np.ndarray], size: int) -> dict:
    """Median ms per drive() of the layered and the whole-frame warp, called in turn on each frame (the
    same load for both: the ratio is what to read on a shared machine)."""
    warps = {"layered": WarpReenactor(WarpConfig(output_size=size)),
             "whole_frame": WarpReenactor(WarpConfig(output_size=size, layers=False))}
    times: dict[str, list[float]] = {k: [] for k in warps}
    for warp in warps.values():
        warp.set_target(TargetSpec.from_image(target))
    for frame in frames:
        for name, warp in warps.items():
            t = time.perf_counter()
            warp.drive(frame)
            times[name].append((time.perf_counter() - t) * 1000)
    out = {k: statistics.median(v) for k, v in times.items()}
    out["ratio"] = out["layered"] / out["whole_frame"]
    return out


def background_figures(clip: dict, plain: list[np.ndarray]) -> dict:
    """Background change of the layered outputs (`clip`) and of the whole-frame warp's (`plain`)."""
    rest, rest_alpha = clip["rest"], clip["rest_alpha"]
    both = [[rest_alpha, a] for a in clip["alphas"]]
    return {
        "layered": float(np.mean([background_change(o, rest, m) for o, m in zip(clip["outputs"], both)])),
        "whole_frame": float(np.mean([background_change(o, rest, m) for o, m in zip(plain, both)])),
        "layered_rest_mask_only": float(np.mean([background_change(o, rest, [rest_alpha]) for o in clip["outputs"]])),
        "whole_frame_rest_mask_only": float(np.mean([background_change(o, rest, [rest_alpha]) for o in plain])),
    }


def synthetic_eyes(target: np.ndarray, neutral: np.ndarray) -> dict:
    """Gaze correlation on a driver whose irises move along a path, eye contact on it, and winks."""
    path = [(0.15 * np.sin(k * 0.7), 0.06 * np.cos(k * 0.9)) for k in range(24)]
    figures: dict = {}
    with FaceMeshDetector(MeshConfig(static_images=True)) as detector:
        for contact in (False, True):
            warp = _started(target, neutral, Retargeting(eye_contact=contact))
            rest = gaze_offsets(detector.detect(warp.target.image).points)
            drv, out = [], []
            for du, dv in path:
                driver = neutral.copy()
                for eye, start in enumerate(IRIS_CENTRES):
                    _, axis, normal, width = eye_frame(neutral, eye)
                    driver[start:start + 5, :2] += (du * axis + dv * normal) * width
                drv.append(gaze_offsets(driver).mean(0))
                out.append(gaze_offsets(detector.detect(warp.animate(warp.target, driver, {})).points))
            drv_a, out_a = np.array(drv), np.array(out)
            if contact:
                figures["eye_contact_max_change_eye_widths"] = float(np.abs(out_a - rest).max())
            else:
                figures["gaze_u"] = pearson(drv_a[:, 0], out_a.mean(1)[:, 0])
                figures["gaze_v"] = pearson(drv_a[:, 1], out_a.mean(1)[:, 1])
        warp = _started(target, neutral, Retargeting())
        rest_open = eye_openness(detector.detect(warp.target.image).points)
        for eye in range(2):
            wink = neutral.copy()
            for upper, lower in LID_PAIRS[7 * eye:7 * eye + 7]:
                gap = neutral[lower] - neutral[upper]
                wink[upper] += 0.8 * gap
                wink[lower] -= 0.2 * gap
            opened = eye_openness(detector.detect(warp.animate(warp.target, wink, {})).points) / rest_open
            figures[f"wink_eye{eye}_openness_winked_other"] = [float(opened[eye]), float(opened[1 - eye])]
    return figures


def _started(target: np.ndarray, neutral: np.ndarray, controls: Retargeting) -> WarpReenactor:
    warp = WarpReenactor(WarpConfig(smoothing=0.0, retargeting=controls))
    warp.set_target(TargetSpec.from_image(target))
    warp.animate(warp.target, neutral, {})  # the neutral: the target at rest
    return warp


def fill_figures(image: np.ndarray, mesh: np.ndarray) -> dict:
    """Push-pull vs Telea: time (median of 5), and error on a 3 % ring of known background hidden with
    the person."""
    alpha = person_alpha(image, mesh)
    hole = grown(alpha > 0)
    ring = grown(hole, 0.03) & ~hole
    out = {}
    for method in ("pyramid", "telea"):
        times = []
        for _ in range(5):
            t = time.perf_counter()
            filled = fill_background(image, hole | ring, method)
            times.append((time.perf_counter() - t) * 1000)
        ms = statistics.median(times)
        error = float(np.abs(filled[ring].astype(np.float32) - image[ring].astype(np.float32)).mean())
        out[method] = {"ms": ms, "ring_error": error}
    return out


def still_driver_change(target: np.ndarray, frame: np.ndarray, config: WarpConfig, repeats: int = 30) -> float:
    """Mean |output − target at rest| outside the face for a driver that does not move."""
    reenactor = WarpReenactor(config)
    reenactor.set_target(TargetSpec.from_image(target))
    prepared = reenactor.target
    assert prepared is not None
    out = prepared.image
    for _ in range(repeats):
        out = reenactor.drive(frame).image
    outside = outside_face(prepared.mesh, prepared.image.shape)
    return float(np.abs(out.astype(np.float32) - prepared.image.astype(np.float32))[outside].mean())


def strip(frames: list[np.ndarray], outputs: list[np.ndarray], every: int = 10, height: int = 144,
          per_row: int = 4) -> np.ndarray:
    """Driver | output pairs of every `every`-th frame, `per_row` pairs a row."""
    pairs = []
    for i in range(0, len(frames), every):
        d = frames[i]
        d = cv2.resize(d, (round(d.shape[1] * height / d.shape[0]), height), interpolation=cv2.INTER_CUBIC)
        o = cv2.resize(outputs[i], (round(outputs[i].shape[1] * height / outputs[i].shape[0]), height),
                       interpolation=cv2.INTER_AREA)
        gap = np.full((height, 4, 3), 255, np.uint8)
        pairs.append(np.concatenate([d, o, gap, gap], 1))
    while len(pairs) % per_row:
        pairs.append(np.full_like(pairs[0], 255))
    rows = [np.concatenate(pairs[k:k + per_row], 1) for k in range(0, len(pairs), per_row)]
    return np.concatenate(rows, 0)


def gif(frames: list[np.ndarray], outputs: list[np.ndarray], path: Path, height: int = 144, step: int = 2) -> None:
    """Driver | output animation, every `step`-th frame at the clip's pace."""
    from PIL import Image

    pics = []
    for f, o in zip(frames[::step], outputs[::step]):
        d = cv2.resize(f, (round(f.shape[1] * height / f.shape[0]), height), interpolation=cv2.INTER_CUBIC)
        o = cv2.resize(o, (round(o.shape[1] * height / o.shape[0]), height), interpolation=cv2.INTER_AREA)
        pics.append(Image.fromarray(np.concatenate([d, o], 1)))
    palette = pics[len(pics) // 2].quantize(colors=112, method=Image.Quantize.MEDIANCUT)
    pics = [p.quantize(palette=palette, dither=Image.Dither.NONE) for p in pics]
    pics[0].save(path, save_all=True, append_images=pics[1:], duration=round(1000 * step / 29.97), loop=0,
                 optimize=True)


def before_after(runs: dict[str, tuple[dict, list[np.ndarray]]], frames: list[np.ndarray], height: int = 192) -> np.ndarray:
    """Per target, at the three frames whose layered output moved most: driver, whole-frame warp, layered."""
    rows = []
    for clip, plain in runs.values():
        rest = clip["rest"].astype(np.float32)
        moved = np.argsort([-np.abs(o.astype(np.float32) - rest).mean() for o in clip["outputs"]])
        picks = sorted(int(i) for i in moved[::12][:3])
        tiles = []
        for i in picks:
            d = cv2.resize(frames[i], (round(frames[i].shape[1] * height / frames[i].shape[0]), height),
                           interpolation=cv2.INTER_CUBIC)
            pair = [cv2.resize(x, (height, height), interpolation=cv2.INTER_AREA) for x in (plain[i], clip["outputs"][i])]
            tiles.append(np.concatenate([d, pair[0], pair[1], np.full((height, 8, 3), 255, np.uint8)], 1))
        rows.append(np.concatenate(tiles, 1))
    return np.concatenate(rows, 0)


def fills_image(images: list[np.ndarray], height: int = 256) -> np.ndarray:
    """Per target: the plate filled by push-pull | by Telea."""
    rows = []
    for image in images:
        hole = grown(person_alpha(image, _mesh_of(image)) > 0)
        pair = [cv2.resize(fill_background(image, hole, m), (height, height), interpolation=cv2.INTER_AREA)
                for m in ("pyramid", "telea")]
        rows.append(np.concatenate([pair[0], np.full((height, 8, 3), 255, np.uint8), pair[1]], 1))
    return np.concatenate(rows, 0)


def main() -> None:
    keep_freed_memory()  # the app's allocator settings (engine.runtime.memory), before any thread starts
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fixtures", type=Path, default=FIXTURES, help="the shared fixtures folder")
    parser.add_argument("--size", type=int, default=512, help="output size (pixels)")
    parser.add_argument("--media", type=Path, help="write the strip, GIF, before/after and fills images here")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args()
    config = WarpConfig(output_size=args.size)
    with VideoReader(args.fixtures / "video" / "carphone_pristine.mp4") as video:
        frames = list(video)
    targets = {"astronaut": read_image(args.fixtures / "portraits" / "astronaut.png")}
    targets.update({f"aligned/{p.stem}": read_image(p) for p in sorted((args.fixtures / "aligned").glob("*.png"))})
    print(f"driver: carphone_pristine.mp4, {len(frames)} frames {frames[0].shape[1]}x{frames[0].shape[0]}; "
          f"output {args.size}x{args.size}")
    with FaceMeshDetector(MeshConfig(static_images=True)) as detector:
        neutral = detector.detect(frames[0]).points.astype(np.float64)
    report, shown = {}, {}
    for name, target in targets.items():
        r = run_clip(target, frames, config)
        plain = run_clip(target, frames, WarpConfig(output_size=args.size, layers=False))
        r["background_change"] = background_figures(r, plain["outputs"])
        r["whole_frame_fps"] = plain["fps"]
        r["interleaved_ms"] = interleaved_speed(target, frames, args.size)
        r["still_driver_change_outside_face"] = still_driver_change(target, frames[0], config)
        r["fills"] = fill_figures(r["rest"], _mesh_of(r["rest"]))
        if name in ("astronaut", "aligned/1"):
            r["synthetic_eyes"] = synthetic_eyes(target, neutral)
            shown[name] = (r, plain["outputs"])
        _print(name, r)
        report[name] = {k: v for k, v in r.items() if k not in ("outputs", "alphas", "rest", "rest_alpha")}
    if args.media:
        args.media.mkdir(parents=True, exist_ok=True)
        outputs = shown["astronaut"][0]["outputs"]
        write_image(args.media / "warp_strip.png", strip(frames, outputs))
        gif(frames, outputs, args.media / "warp_demo.gif")
        write_image(args.media / "warp_before_after.png", before_after(shown, frames))
        write_image(args.media / "warp_fills.png", fills_image([r["rest"] for r, _ in shown.values()]))
    worst = {k: min(r["correlation"][k] for r in report.values()) for k in MEASURES}
    print("lowest correlation over the targets: " + ", ".join(f"{k} {v:.3f}" for k, v in worst.items()))
    print(f"median FPS over the targets: {statistics.median(r['fps'] for r in report.values()):.0f} "
          f"(whole-frame warp in the same run: {statistics.median(r['whole_frame_fps'] for r in report.values()):.0f})")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


def _mesh_of(image: np.ndarray) -> np.ndarray:
    with FaceMeshDetector(MeshConfig(static_images=True)) as detector:
        return detector.detect(image).points


def _print(name: str, r: dict) -> None:
    c, st, bg, iv = r["correlation"], r["stage_median_ms"], r["background_change"], r["interleaved_ms"]
    stages = ", ".join(f"{s} {v:.1f}" for s, v in st.items())
    fills = ", ".join(f"{m} {f['ms']:.0f} ms err {f['ring_error']:.1f}" for m, f in r["fills"].items())
    print(f"{name:10s} frames {r['frames_in']}->{r['frames_out']} | corr mouth {c['mouth']:.3f} yaw {c['yaw']:.3f} "
          f"roll {c['roll']:.3f} gaze u {c['gaze u']:.3f} v {c['gaze v']:.3f} | still driver "
          f"{r['still_driver_change_outside_face']:.3f}/255 | background {bg['layered']:.2f} (whole-frame "
          f"{bg['whole_frame']:.2f}; rest mask only {bg['layered_rest_mask_only']:.2f} vs "
          f"{bg['whole_frame_rest_mask_only']:.2f}) | {r['median_ms']:.1f} ms/frame = {r['fps']:.0f} FPS "
          f"(whole-frame {r['whole_frame_fps']:.0f}; {stages} ms) | interleaved: layered {iv['layered']:.1f} ms, "
          f"whole-frame {iv['whole_frame']:.1f} ms (x{iv['ratio']:.2f}) | prepare {r['prepare_s']:.2f} s | fills: {fills}")
    if "synthetic_eyes" in r:
        print(f"{'':10s} synthetic eyes: {json.dumps({k: np.round(v, 3).tolist() for k, v in r['synthetic_eyes'].items()})}")


if __name__ == "__main__":
    main()
