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

And where the self-reenactment's expression error sits (the clip's first frame driven by the clip, as
the quality bench's; `--no-self` skips it), in eye distances (dlib's, on the real frame), averaged over
the points and the frames every reading found a face in:

- output vs real: dlib on the output against dlib on the real frame, each point's distance after a
  similarity alignment (the quality bench's expression error, from frames kept in memory rather than
  encoded), per group of points too, and its worst frames;
- the judge's spread: dlib on the real frames with ±1 level of invisible noise against dlib on them as
  they are (no output gets below it);
- three stages, each as the change since frame 0 of one disagreement (the aligned residual, turned into
  frame 0's face axes), so that each is in the units of the output's error: transfer (the animated mesh
  against the driver's MediaPipe mesh, all 468 points: what the motion transfer adds — smoothing, the
  turn's depth, retargeting), tracker vs judge (the driver's mesh, MESH_AS_DLIB, against dlib on the real
  frames: how differently the two models see the real face move) and judge vs mesh (the animated mesh
  against dlib on the output: how differently dlib sees the output move than the warp drew it).

dlib comes with requirements-ffhq.txt (never a dependency of the app).
"""
from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

import cv2
import numpy as np

from benchmarks import quality_bench as qb

MESH_EYES = {"eye_l": (33, 160, 158, 133, 153, 144), "eye_r": (362, 385, 387, 263, 373, 380)}
MESH_BROWS = (70, 63, 105, 66, 107, 336, 296, 334, 293, 300)
MESH_NOSE_TIP = 4
MESH_MOUTH_CORNERS = (61, 291)
STAGE_SIGNALS = ("eye_l", "eye_r", "brows", "pitch")
# For each of dlib's 68 points, the MediaPipe mesh point nearest it on the fixture clip's real frames (the
# most frequent over its 120 frames, both models on the frames framed as the self-reenactment's outputs)
MESH_AS_DLIB = (227, 137, 177, 215, 172, 136, 150, 176, 152, 377, 378, 379, 397, 288, 401, 366, 356,  # jaw
                156, 63, 105, 66, 107, 336, 296, 334, 293, 300,  # brows
                168, 197, 195, 4, 75, 97, 2, 328, 460,  # nose
                33, 160, 158, 155, 153, 144, 362, 385, 386, 249, 373, 380,  # eyes
                61, 39, 37, 0, 267, 270, 291, 405, 314, 17, 84, 91,  # outer lips
                78, 82, 13, 312, 308, 317, 14, 86)  # inner lips
DLIB_GROUPS = {"jaw": range(0, 17), "brows": range(17, 27), "nose": range(27, 36), "eyes": range(36, 48),
               "outer lips": range(48, 60), "inner lips": range(60, 68)}

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


def drive_clip(target: Path, frames: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray | None],
                                                                  list[np.ndarray | None]]:
    """The warp (default settings) driven over `frames` onto `target`: per frame its output, the mesh it drew
    ([478, 2], output pixels) and the driver's MediaPipe mesh ([478, ≥2], frame pixels); None where no face."""
    from engine.factory import create_reenactor
    from engine.render import parse_target

    reenactor = create_reenactor()
    outputs: list[np.ndarray] = []
    drawn: list[np.ndarray | None] = []
    driver: list[np.ndarray | None] = []
    try:
        reenactor.set_target(parse_target(str(target)))
        for frame in frames:
            result = reenactor.drive(frame)
            mesh = getattr(reenactor, "animated_mesh", None)
            found = result.face_found and result.driver_landmarks is not None and mesh is not None
            outputs.append(result.image.copy())
            drawn.append(mesh.copy() if found else None)
            driver.append(result.driver_landmarks.copy() if found else None)
    finally:
        reenactor.close()
    return outputs, drawn, driver


def stages(judge: qb.Judge, target: Path, frames: list[np.ndarray], driver: list[dict | None],
           media: Path | None = None) -> dict:
    """Per signal: r of each stage against dlib's driver, and of the output against the animated mesh; with
    `media`, the brows' picture there (brow_picture)."""
    outputs, meshes, tracked = drive_clip(target, frames)
    raw = [mesh_signals(t) if t is not None else None for t in tracked]
    animated = [mesh_signals(m) if m is not None else None for m in meshes]
    judge.reset()
    points = [j.points if (j := judge(o)) else None for o in outputs]
    judged = [qb.signals(p) if p is not None else None for p in points]

    out: dict = {}
    for name in STAGE_SIGNALS:
        d, m = qb.series(driver, name), qb.series(animated, name)
        o = qb.series(judged, name)
        out[name] = {"driver_mesh": qb.pearson(d, qb.series(raw, name)), "animated_mesh": qb.pearson(d, m),
                     "output": qb.pearson(d, o), "output_vs_mesh": qb.pearson(m, o)}
    if media is not None:
        eyes = np.minimum(qb.series(animated, "eye_l"), qb.series(animated, "eye_r"))
        picture, picked = brow_picture(outputs, meshes, points, qb.series(animated, "brows"), eyes)
        path = media / f"warp_stages_brows_{target.stem}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(path), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88]):
            raise OSError(f"could not write {path}")
        out["brows_picture"] = {"file": path.name, "frames": picked}
    return out


def brow_picture(outputs: list[np.ndarray], meshes: list[np.ndarray | None], judged: list[np.ndarray | None],
                 brows: np.ndarray, eyes: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """The outputs where the animated mesh's brows are lowest and highest, cropped about the brows and eyes at
    3x, one above the other: the mesh's brow points in red, dlib's (17–26) in green. Only frames both judged
    and with the eyes (`eyes`, the lesser opening) at least as open as their median: the brows are measured
    from the eyes' centres, which drop as the lids close, so a blink reads as raised brows."""
    open_eyes = eyes >= np.nanmedian(eyes)
    seen = [k for k, (m, j) in enumerate(zip(meshes, judged)) if m is not None and j is not None and open_eyes[k]]
    if not seen:
        raise ValueError("no output frame was both drawn and judged")
    low = min(seen, key=lambda k: brows[k])
    high = max(seen, key=lambda k: brows[k])
    tiles = []
    for k in (low, high):
        mesh, points = meshes[k], judged[k]
        assert mesh is not None and points is not None
        brow = mesh[list(MESH_BROWS), :2]
        x0, x1 = brow[:, 0].min() - 20, brow[:, 0].max() + 20
        y0 = brow[:, 1].min() - 30
        y1 = mesh[list(MESH_EYES["eye_l"] + MESH_EYES["eye_r"]), 1].max() + 10
        image = outputs[k]
        box = [int(max(v, 0)) for v in (x0, y0)] + [int(min(x1, image.shape[1])), int(min(y1, image.shape[0]))]
        crop = cv2.resize(image[box[1]:box[3], box[0]:box[2]], None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
        for xy, colour in ((brow, (255, 0, 0)), (points[17:27], (0, 255, 0))):
            for x, y in (xy - (box[0], box[1])) * 3:
                cv2.circle(crop, (int(round(x)), int(round(y))), 4, colour, -1, cv2.LINE_AA)
        tiles.append(crop)
    width = max(t.shape[1] for t in tiles)
    tiles = [cv2.copyMakeBorder(t, 0, 4, 0, width - t.shape[1], cv2.BORDER_CONSTANT, value=(255, 255, 255))
             for t in tiles]
    return np.vstack(tiles), [low, high]


SELF_ROWS = {"output_vs_real": "output vs real (dlib on both)",
             "judge_spread": "the judge's spread (real frames, ±1 level of noise)",
             "transfer": "transfer: animated mesh vs the driver's mesh, change since frame 0",
             "tracker_vs_judge": "tracker vs judge on the real frames, change since frame 0",
             "judge_vs_mesh": "judge vs mesh on the outputs, change since frame 0"}


def in_rest_axes(offsets: np.ndarray, reference: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """`offsets` [N, 2] beside `reference` turned and scaled as `reference` is onto `rest` (the face at frame 0)."""
    from engine.warp.motion import fit_similarity

    to_rest = fit_similarity(np.asarray(reference, np.float64)[:, :2], np.asarray(rest, np.float64)[:, :2])
    return to_rest.scale * offsets @ to_rest.rotation.T


def self_stages(judge: qb.Judge, frames: list[np.ndarray], folder: Path) -> dict:
    """Where the self-reenactment's expression error sits (see the module's docstring)."""
    from engine.media.video_io import write_image

    reals, framing = qb.framed_reals(frames)
    outputs, drawn, tracked = drive_clip(write_image(folder / "first_frame.png", frames[0]), frames)
    animated = [m[:468] if m is not None else None for m in drawn]
    driver = [t[:468, :2] @ framing[:, :2].T + framing[:, 2] if t is not None else None for t in tracked]
    real_j, out_j = qb.judge_sequence(judge, reals), qb.judge_sequence(judge, outputs)
    noisy_j = qb.judge_sequence(judge, qb.imperceptible(reals, 0))
    found = [i for i, parts in enumerate(zip(real_j, out_j, noisy_j, animated, driver))
             if all(x is not None for x in parts)]
    if not found or found[0] != 0:
        raise ValueError("the judge or the tracker found no face in the clip's first frame")
    mapped = list(MESH_AS_DLIB)
    real = [real_j[i].points for i in found]  # type: ignore[union-attr]
    out = [out_j[i].points for i in found]  # type: ignore[union-attr]
    noisy = [noisy_j[i].points for i in found]  # type: ignore[union-attr]
    anim = [animated[i] for i in found]
    drv = [driver[i] for i in found]
    iod = np.array([qb.inter_ocular(r) for r in real])[:, None]  # [F, 1]

    def error(pairs: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:  # [F, N] per point, in eye distances
        return np.array([np.linalg.norm(qb.residual(p, q), axis=1) for p, q in pairs]) / iod

    def change(pairs: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:  # [F, N] the residual's change since frame 0
        rest = pairs[0][1]
        turned = np.array([in_rest_axes(qb.residual(p, q), q, rest) for p, q in pairs])  # [F, N, 2] in frame 0's axes
        return np.linalg.norm(turned - turned[0], axis=2) / iod[0]

    per_point = {
        "output_vs_real": error(list(zip(out, real))),
        "judge_spread": error(list(zip(noisy, real))),
        "transfer": change(list(zip(anim, drv))),
        "tracker_vs_judge": change([(d[mapped], r) for d, r in zip(drv, real)]),
        "judge_vs_mesh": change([(a[mapped], o) for a, o in zip(anim, out)]),
    }
    report: dict = {"frames": len(found)}
    for name, errors in per_point.items():
        entry: dict = {"mean": float(errors.mean())}
        if errors.shape[1] == 68:  # each group's share of the mean
            entry["groups"] = {g: float(errors[:, list(ids)].sum(1).mean() / 68) for g, ids in DLIB_GROUPS.items()}
        report[name] = entry
    per_frame = per_point["output_vs_real"].mean(1)
    report["output_vs_real"]["at_rest"] = float(per_frame[0])
    report["output_vs_real"]["worst_frames"] = [[found[k], round(float(per_frame[k]), 4)]
                                                for k in np.argsort(per_frame)[::-1][:10]]
    return report


def table(report: dict) -> str:
    rows = ["| target | signal | driver mesh | animated mesh | output | output vs mesh |", "|---|---|---|---|---|---|"]
    for target, per_signal in report["stages"].items():
        for name in STAGE_SIGNALS:
            r = per_signal[name]
            rows.append(f"| {target} | {name} | {r['driver_mesh']:.2f} | {r['animated_mesh']:.2f} | "
                        f"{r['output']:.2f} | {r['output_vs_mesh']:.2f} |")
    own = report.get("self")
    if own:
        groups = list(DLIB_GROUPS)
        rows += ["", "| self-reenactment (eye distances) | mean | " + " | ".join(groups) + " |",
                 "|---|---|" + "---|" * len(groups)]
        for key, label in SELF_ROWS.items():
            v = own[key]
            shares = [f"{v['groups'][g]:.4f}" for g in groups] if "groups" in v else [""] * len(groups)
            rows.append(f"| {label} | {v['mean']:.4f} | " + " | ".join(shares) + " |")
        worst = ", ".join(f"{f} ({e:.3f})" for f, e in own["output_vs_real"]["worst_frames"])
        rows += ["", f"output vs real at frame 0: {own['output_vs_real']['at_rest']:.4f}; worst frames: {worst}"]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None, help="write every figure here")
    parser.add_argument("--frames", type=int, default=None, help="only the clip's first N frames (quick look)")
    parser.add_argument("--targets", nargs="*", default=None,
                        help="portrait files (default: the fixture portrait and aligned faces)")
    parser.add_argument("--no-self", action="store_true", help="skip the self-reenactment's stages")
    parser.add_argument("--media", type=Path, default=None,
                        help="write each portrait's brows at their lowest and highest here "
                             "(warp_stages_brows_<target>.jpg: the mesh's points red, dlib's green)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    targets = qb.judged_targets(parser, args)
    judge = qb.Judge()
    frames, _ = qb.read_frames(qb.CLIP, args.frames)
    driver = [qb.signals(j.points) if j else None for j in qb.judge_sequence(judge, frames, qb.DRIVER_UPSCALE)]
    report: dict = {"clip": qb.CLIP.name, "frames": len(frames), "stages": {}}
    for target in targets:
        report["stages"][target.name] = stages(judge, target, frames, driver, args.media)
        log.info("%s: %s", target.name, json.dumps(report["stages"][target.name]))
    if not args.no_self:
        with tempfile.TemporaryDirectory() as tmp:
            report["self"] = self_stages(judge, frames, Path(tmp))
    qb.publish(table(report), report, args.json)
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
