"""Where a motion signal is lost, stage by stage: `python -m benchmarks.warp_stages`.

The quality bench (benchmarks/quality_bench.py) says how well the warp's output follows the driver, as dlib
reads both. This says where the rest is lost. For each portrait driven by the fixture clip, per signal, the
Pearson r against dlib's reading of the driver (at 4x, as the quality bench) of:

- driver mesh: the same signal from MediaPipe's raw mesh of the driver (the tracker's own ceiling);
- animated mesh: from the target mesh the warp draws (after smoothing, motion transfer and retargeting);
- output: dlib's reading of the output (the warp reenactor's frames kept in memory, not encoded);

and "output vs mesh": dlib's reading of the output against the animated mesh (how much of what the warp draws
the judge sees). The signals from the mesh use MediaPipe's points that match dlib's:

- eye_l / eye_r: eye aspect ratio of (33, 160, 158, 133, 153, 144) and (362, 385, 387, 263, 373, 380);
- brows: mean height of the brow points (70, 63, 105, 66, 107, 336, 296, 334, 293, 300) above the line
  through the eye-ring centres, over their distance;
- pitch: the nose tip (4) along the axis from the eye-ring centres' midpoint to the mouth corners' (61, 291).

dlib comes with requirements-ffhq.txt (never a dependency of the app).
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from benchmarks import quality_bench as qb

MESH_EYES = {"eye_l": (33, 160, 158, 133, 153, 144), "eye_r": (362, 385, 387, 263, 373, 380)}
MESH_BROWS = (70, 63, 105, 66, 107, 336, 296, 334, 293, 300)
MESH_NOSE_TIP = 4
MESH_MOUTH_CORNERS = (61, 291)
STAGE_SIGNALS = ("eye_l", "eye_r", "brows", "pitch")

log = logging.getLogger(__name__)


def mesh_signals(points: np.ndarray) -> dict[str, float]:
    """The signals of STAGE_SIGNALS from a MediaPipe mesh [478, ≥2], defined as the quality bench's are."""
    from engine.warp.mesh import EYE_LEFT_RING, EYE_RIGHT_RING

    p = np.asarray(points, np.float64)[:, :2]

    def ear(ids: tuple[int, ...]) -> float:
        a, b, c, d, e, f = (p[i] for i in ids)
        return float((np.linalg.norm(b - f) + np.linalg.norm(c - e)) / 2 / max(np.linalg.norm(a - d), 1e-9))

    eye_l, eye_r = p[list(EYE_LEFT_RING)].mean(0), p[list(EYE_RIGHT_RING)].mean(0)
    iod = max(float(np.linalg.norm(eye_r - eye_l)), 1e-9)
    across = (eye_r - eye_l) / iod
    up = np.array([across[1], -across[0]])  # perpendicular to the eye line, pointing up in the image
    eyes = (eye_l + eye_r) / 2
    axis = p[list(MESH_MOUTH_CORNERS)].mean(0) - eyes
    return {
        "eye_l": ear(MESH_EYES["eye_l"]),
        "eye_r": ear(MESH_EYES["eye_r"]),
        "brows": float(np.mean((p[list(MESH_BROWS)] - eyes) @ up)) / iod,
        "pitch": float((p[MESH_NOSE_TIP] - eyes) @ axis / max(axis @ axis, 1e-9)),
    }


def stages(judge: qb.Judge, target: Path, frames: list[np.ndarray], driver: list[dict | None]) -> dict:
    """Per signal: r of each stage against dlib's driver, and of the output against the animated mesh."""
    from engine.factory import create_reenactor
    from engine.render import parse_target

    reenactor = create_reenactor()
    raw, animated, outputs = [], [], []
    try:
        reenactor.set_target(parse_target(str(target)))
        for frame in frames:
            result = reenactor.drive(frame)
            mesh = getattr(reenactor, "animated_mesh", None)
            found = result.face_found and result.driver_landmarks is not None and mesh is not None
            raw.append(mesh_signals(result.driver_landmarks) if found else None)
            animated.append(mesh_signals(mesh) if found else None)
            outputs.append(result.image.copy())
    finally:
        reenactor.close()
    judge.reset()
    judged = [qb.signals(j.points) if (j := judge(o)) else None for o in outputs]

    def series(values: list[dict | None], name: str) -> np.ndarray:
        return np.array([v[name] if v else np.nan for v in values])

    out = {}
    for name in STAGE_SIGNALS:
        d, m = series(driver, name), series(animated, name)
        o = series(judged, name)
        out[name] = {"driver_mesh": qb.pearson(d, series(raw, name)), "animated_mesh": qb.pearson(d, m),
                     "output": qb.pearson(d, o), "output_vs_mesh": qb.pearson(m, o)}
    return out


def table(report: dict) -> str:
    rows = ["| target | signal | driver mesh | animated mesh | output | output vs mesh |", "|---|---|---|---|---|---|"]
    for target, per_signal in report["stages"].items():
        for name, r in per_signal.items():
            rows.append(f"| {target} | {name} | {r['driver_mesh']:.2f} | {r['animated_mesh']:.2f} | "
                        f"{r['output']:.2f} | {r['output_vs_mesh']:.2f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None, help="write every figure here")
    parser.add_argument("--frames", type=int, default=None, help="only the clip's first N frames (quick look)")
    parser.add_argument("--targets", nargs="*", default=None,
                        help="portrait files (default: the fixture portrait and aligned faces)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    targets = qb.judged_targets(parser, args)
    judge = qb.Judge()
    frames, _ = qb.read_frames(qb.CLIP, args.frames)
    driver = [qb.signals(j.points) if j else None for j in qb.judge_sequence(judge, frames, qb.DRIVER_UPSCALE)]
    report: dict = {"clip": qb.CLIP.name, "frames": len(frames), "stages": {}}
    for target in targets:
        report["stages"][target.name] = stages(judge, target, frames, driver)
        log.info("%s: %s", target.name, json.dumps(report["stages"][target.name]))
    qb.publish(table(report), report, args.json)
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
