"""Figures for the weights-free warp reenactor on the fixture clip: `python -m benchmarks.warp_bench`.

For the fixture portrait and each aligned fixture, driven by the 120-frame carphone clip:

- frames: one output per driving frame;
- motion follows the driver: Pearson correlation over the clip between the driver's and the output's
  mouth opening, yaw proxy and roll (engine.warp.metrics says exactly how each is computed); the
  output's landmarks come from MediaPipe run again on the *output* frames;
- identity: mean absolute change (0–255) of the output against the target at rest, outside the face
  oval grown by 10 % of the face width, for a still driver (the clip's first frame, 30 times);
- speed: median ms per frame end-to-end (drive(): landmarks + motion + warp + composite) at the
  output size, and the median of each stage; MediaPipe's share is the "landmarks" stage.

--media DIR writes a side-by-side strip (driver | output, every 10th frame) and a short GIF.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from engine.landmarks import FaceMeshDetector, MeshConfig
from engine.reenactor import TargetSpec
from engine.video_io import VideoReader, read_image, write_image
from engine.warp import WarpConfig, WarpReenactor
from engine.warp.metrics import MEASURES, outside_face, pearson

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
STAGES = ("landmarks", "motion", "warp", "composite")


def run_clip(target: np.ndarray, frames: list[np.ndarray], config: WarpConfig) -> dict:
    """Drive `target` with every frame; figures plus the outputs."""
    reenactor = WarpReenactor(config)
    reenactor.set_target(TargetSpec.from_image(target))
    outputs, drivers, total, stages = [], [], [], {s: [] for s in STAGES}
    for frame in frames:
        t = time.perf_counter()
        result = reenactor.drive(frame)
        total.append((time.perf_counter() - t) * 1000)
        outputs.append(result.image)
        drivers.append(result.driver_landmarks)
        for s in STAGES:
            if s in result.timings_ms:
                stages[s].append(result.timings_ms[s])
    series: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in MEASURES}
    missed = 0
    with FaceMeshDetector(MeshConfig(static_images=False)) as detector:
        for out, drv in zip(outputs, drivers):
            mesh = detector.detect(out)
            if mesh is None or drv is None:
                missed += 1
                continue
            for name, measure in MEASURES.items():
                series[name][0].append(measure(drv))
                series[name][1].append(measure(mesh.points))
    median = statistics.median(total)
    return {
        "frames_in": len(frames),
        "frames_out": len(outputs),
        "output_size": list(reenactor.output_size),
        "output_frames_without_face": missed,
        "correlation": {k: pearson(*v) for k, v in series.items()},
        "median_ms": median,
        "fps": 1000.0 / median,
        "stage_median_ms": {s: statistics.median(v) for s, v in stages.items() if v},
        "outputs": outputs,
    }


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fixtures", type=Path, default=FIXTURES, help="the shared fixtures folder")
    parser.add_argument("--size", type=int, default=512, help="output size (pixels)")
    parser.add_argument("--media", type=Path, help="write warp_strip.png and warp_demo.gif into this folder")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args()
    config = WarpConfig(output_size=args.size)
    with VideoReader(args.fixtures / "video" / "carphone_pristine.mp4") as video:
        frames = list(video)
    targets = {"astronaut": read_image(args.fixtures / "portraits" / "astronaut.png")}
    targets.update({f"aligned/{p.stem}": read_image(p) for p in sorted((args.fixtures / "aligned").glob("*.png"))})
    print(f"driver: carphone_pristine.mp4, {len(frames)} frames {frames[0].shape[1]}x{frames[0].shape[0]}; "
          f"output {args.size}x{args.size}")
    report = {}
    for name, target in targets.items():
        r = run_clip(target, frames, config)
        outputs = r.pop("outputs")
        r["still_driver_change_outside_face"] = still_driver_change(target, frames[0], config)
        report[name] = r
        c, st = r["correlation"], r["stage_median_ms"]
        stages = ", ".join(f"{s} {v:.1f}" for s, v in st.items())
        print(f"{name:10s} frames {r['frames_in']}->{r['frames_out']} | corr mouth {c['mouth']:.3f} "
              f"yaw {c['yaw']:.3f} roll {c['roll']:.3f} | still driver: "
              f"{r['still_driver_change_outside_face']:.3f}/255 outside face | "
              f"{r['median_ms']:.1f} ms/frame = {r['fps']:.0f} FPS ({stages} ms)")
        if args.media and name == "astronaut":
            args.media.mkdir(parents=True, exist_ok=True)
            write_image(args.media / "warp_strip.png", strip(frames, outputs))
            gif(frames, outputs, args.media / "warp_demo.gif")
    worst = {k: min(r["correlation"][k] for r in report.values()) for k in MEASURES}
    print("lowest correlation over the targets: " + ", ".join(f"{k} {v:.3f}" for k, v in worst.items()))
    print(f"median FPS over the targets: {statistics.median(r['fps'] for r in report.values()):.0f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
