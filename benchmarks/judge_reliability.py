"""How far the quality bench's judge and the app's tracker agree: `python -m benchmarks.judge_reliability`.

The judge is dlib (requirements-ffhq.txt), as in benchmarks/quality_bench.py. It reads the driver many times:
upscaled by each of UPSCALES, once as it is and once per NOISE_SEEDS with ±1 level of invisible noise. Those
reads are split into two halves by upscale (HALVES). Per signal (quality_bench.signals):

- one read against another: the mean and the lowest r over the pairs with one read from each half (the bench's
  "judge ceiling" is one such pair, 4x against 3x);
- the mean of one half's reads against the other half's: how well a judge averaged over many reads agrees
  with itself;
- MediaPipe against the averaged reading (the mean of every read) and against the bench's single read (4x):
  its attention model (refine_landmarks, the model the app tracks with), its plain model, and the app's
  driver mesh (the attention model with the plain model's nose tip, engine/face/landmarks.py `plain_nose`),
  each tracking the clip as a video. Their signals are benchmarks/warp_stages.mesh_signals.

No output of the warp can follow the driver, as dlib reads it, better than the tracker that drives it does.
Writes a Markdown table to stdout and everything to --json.
"""
from __future__ import annotations

import argparse
import itertools
import logging
from pathlib import Path

import numpy as np

from benchmarks import quality_bench as qb
from benchmarks.warp_stages import STAGE_SIGNALS, mesh_signals

UPSCALES = (3.0, 3.5, 4.0, 4.5, 5.0, 6.0)
HALVES = ((3.0, 4.0, 5.0), (3.5, 4.5, 6.0))  # the two halves of the reads, by upscale
NOISE_SEEDS = (0, 1)  # besides the read of the frames as they are
TRACKERS = ("attention model", "plain model", "the app's driver mesh")

log = logging.getLogger(__name__)


def averaged(reads: list[list[dict | None]], name: str) -> np.ndarray:
    """The mean of several reads of one signal, frame by frame (frames no read found: NaN)."""
    stack = np.array([qb.series(r, name) for r in reads])
    counts = np.isfinite(stack).sum(0)
    return np.where(counts > 0, np.nansum(stack, 0) / np.maximum(counts, 1), np.nan)


def agreement(half_a: list[list[dict | None]], half_b: list[list[dict | None]], name: str) -> dict[str, float]:
    """One read against one (mean and lowest r over the pairs across the halves) and the halves' means."""
    pairs = [qb.pearson(qb.series(a, name), qb.series(b, name)) for a, b in itertools.product(half_a, half_b)]
    return {"one_read_mean": float(np.mean(pairs)), "one_read_lowest": float(np.min(pairs)),
            "averaged_halves": qb.pearson(averaged(half_a, name), averaged(half_b, name))}


def judge_reads(judge: qb.Judge, frames: list[np.ndarray]) -> dict[tuple[float, int | None], list[dict | None]]:
    """Every read of the driver: (upscale, noise seed or None) → the signals per frame."""
    reads = {}
    for upscale in UPSCALES:
        for seed in (None, *NOISE_SEEDS):
            shown = frames if seed is None else qb.imperceptible(frames, seed)
            judged = qb.judge_sequence(judge, shown, upscale)
            reads[(upscale, seed)] = [qb.signals(j.points) if j else None for j in judged]
            log.info("read at %.1fx%s", upscale, "" if seed is None else f", noise {seed}")
    return reads


def tracked(frames: list[np.ndarray]) -> dict[str, list[dict | None]]:
    """MediaPipe's signals per frame, per tracker (TRACKERS), each tracking the frames as a video: the attention
    model as the app's detector runs it, the plain model as it runs beside it, and the two together."""
    import mediapipe as mp

    from engine.face.landmarks import FaceMeshDetector, MeshConfig

    def detected(config: MeshConfig) -> list[dict | None]:
        with FaceMeshDetector(config) as detector:
            return [mesh_signals(m.points) if (m := detector.detect(f)) else None for f in frames]

    plain: list[dict | None] = []
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1, refine_landmarks=False) as mesh:
        for frame in frames:
            found = mesh.process(np.ascontiguousarray(frame)).multi_face_landmarks
            h, w = frame.shape[:2]
            plain.append(mesh_signals(np.array([(p.x * w, p.y * h) for p in found[0].landmark])) if found else None)
    return {"attention model": detected(MeshConfig()), "plain model": plain,
            "the app's driver mesh": detected(MeshConfig(plain_nose=True))}


def measure(judge: qb.Judge, frames: list[np.ndarray]) -> dict:
    reads = judge_reads(judge, frames)
    halves = [[r for (up, _), r in reads.items() if up in half] for half in HALVES]
    every = list(reads.values())
    single = reads[(qb.DRIVER_UPSCALE, None)]
    trackers = tracked(frames)
    report: dict = {"reads": len(every), "upscales": list(UPSCALES), "noise_seeds": list(NOISE_SEEDS), "signals": {}}
    for name in qb.SIGNALS:
        entry = agreement(*halves, name)
        entry["bench_ceiling"] = qb.pearson(qb.series(single, name), qb.series(reads[(qb.CEILING_UPSCALE, None)], name))
        if name in STAGE_SIGNALS:
            entry["trackers"] = {t: {"vs_averaged": qb.pearson(averaged(every, name), qb.series(s, name)),
                                     "vs_one_read": qb.pearson(qb.series(single, name), qb.series(s, name))}
                                 for t, s in trackers.items()}
        report["signals"][name] = entry
    return report


def table(report: dict) -> str:
    head = "| signal | one read vs one: mean (lowest) | 4x vs 3x | averaged halves | " + \
        " | ".join(f"{t}: vs averaged (vs one read)" for t in TRACKERS) + " |"
    rows = [head, "|---|---|---|---|" + "---|" * len(TRACKERS)]
    for name, e in report["signals"].items():
        cells = [f"{e['one_read_mean']:.3f} ({e['one_read_lowest']:.3f})", f"{e['bench_ceiling']:.3f}",
                 f"{e['averaged_halves']:.3f}"]
        for t in TRACKERS:
            r = e.get("trackers", {}).get(t)
            cells.append(f"{r['vs_averaged']:.3f} ({r['vs_one_read']:.3f})" if r else "")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None, help="write every figure here")
    parser.add_argument("--frames", type=int, default=None, help="only the clip's first N frames (quick look)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    missing = qb.judge_available()
    if missing:
        parser.exit(2, f"judge_reliability: {missing}\n")
    if args.frames is not None and args.frames < 10:
        parser.error("--frames needs at least 10 frames for a correlation")
    frames, _ = qb.read_frames(qb.CLIP, args.frames)
    report = measure(qb.Judge(), frames)
    report.update({"clip": qb.CLIP.name, "frames": len(frames)})
    qb.publish(table(report), report, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
