"""Figures for the paper's model live: `python -m benchmarks.paper_live_bench [--media docs/media]`.

- paste-back (the fixture portrait, 512 output): geometry with a stand-in generator that returns
  the target's own aligned crop (mean grey-level error inside the mask, max outside); another face
  (aligned fixture 1, 1024²) pasted with no colour match, the mean/std ring match (the default) and
  Poisson blending (cv2.seamlessClone): ms per frame and the mean gradient *across* the mask border
  (|∇I·n|, n the mask's normal) against the same in the portrait at rest;
- smoothing on E_m's features (a tiny random-weight pack in the real formats): a still driving
  frame with ±6 grey levels of noise → output pixel std in the face region, raw and filtered; a
  driver cross-fading between two faces over 20 frames → lag (mean |f_filtered − f_raw| during the
  move, % of the move) and frames to settle within 5 % afterwards; the filter's cost at D = 512;
- the pipeline per frame (tiny pack): stage times with paste-back + relative motion + smoothing
  against the paper's crop (absolute, no smoothing);
- small faces: align_face on a 2000² canvas with the face quad at 8 % (full-range fallback) against
  the portrait itself; a live 1280² frame with a 10 % face: whole-frame mesh against the crop path.

Speeds are medians on this machine, in the same run; name the CPU and load when quoting them.
--media DIR writes paper_live_strip.jpg: driver | landmark warp | paper model (random weights),
pasted back, every 24th frame of the fixture clip.
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
from pathlib import Path

import cv2
import numpy as np

from benchmarks.pipeline_bench import median_ms
from engine.face.align import LiveAligner, align_face, quad_side
from engine.face.landmarks import FaceMeshDetector, MeshConfig
from engine.runtime.memory import keep_freed_memory
from engine.face.paste_back import PasteBack, PasteBackConfig
from engine.media.video_io import VideoReader, read_image, write_image

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
STRENGTHS = (0.0, 0.3, 0.5, 0.7, 0.9)


def across_gradient(image: np.ndarray, alpha: np.ndarray) -> float:
    """Mean |∇I·n| over the mask's seam band (0.05 < α < 0.95), n = ∇α/|∇α|, I the grey image."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    gx, gy = cv2.Sobel(grey, cv2.CV_32F, 1, 0) / 8, cv2.Sobel(grey, cv2.CV_32F, 0, 1) / 8
    ax, ay = cv2.Sobel(alpha, cv2.CV_32F, 1, 0), cv2.Sobel(alpha, cv2.CV_32F, 0, 1)
    norm = np.hypot(ax, ay) + 1e-9
    band = (alpha > 0.05) & (alpha < 0.95)
    return float(np.abs((gx * ax + gy * ay) / norm)[band].mean())


def inside_gradient(image: np.ndarray, alpha: np.ndarray) -> float:
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    g = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0) / 8, cv2.Sobel(grey, cv2.CV_32F, 0, 1) / 8)
    return float(g[alpha >= 1.0].mean())


def poisson(paste: PasteBack, generated: np.ndarray) -> np.ndarray:
    """Poisson blending of the warped crop into the framed portrait (cv2.seamlessClone), for comparison."""
    x0, y0, x1, y1 = paste.box
    face = paste.framed.copy()
    face[y0:y1, x0:x1] = np.clip(np.rint(paste.face_in_box(generated, colour_match=False)), 0, 255).astype(np.uint8)
    mask = np.uint8(paste.alpha > 0.5) * 255
    x, y, w, h = cv2.boundingRect(mask)
    return cv2.seamlessClone(face, paste.framed, mask, (x + w // 2, y + h // 2), cv2.NORMAL_CLONE)


def mean_std(paste: PasteBack, generated: np.ndarray, max_gain: float = 2.0) -> np.ndarray:
    """Per-channel mean *and* std matched in the seam ring (gain clamped), for comparison."""
    x0, y0, x1, y1 = paste.box
    face = paste.face_in_box(generated, colour_match=False)
    ring = (paste.alpha[y0:y1, x0:x1] > 0.05) & (paste.alpha[y0:y1, x0:x1] < 0.95)
    portrait = paste.framed[y0:y1, x0:x1].astype(np.float32)[ring]
    gain = np.clip(portrait.std(0) / (face[ring].std(0) + 1e-3), 1 / max_gain, max_gain)
    face = (face - face[ring].mean(0)) * gain + portrait.mean(0)
    alpha = paste.alpha[y0:y1, x0:x1, None]
    out = paste.framed.copy()
    out[y0:y1, x0:x1] = np.clip(np.rint(out[y0:y1, x0:x1] + alpha * (face - out[y0:y1, x0:x1])), 0, 255)
    return out


def bench_paste(portrait: np.ndarray, other: np.ndarray) -> None:
    aligned = align_face(portrait, size=1024)
    print("paste-back (portrait 512², output 512, generated crop 1024²)")
    for framing in ("face", "portrait"):
        paste = PasteBack(portrait, aligned, PasteBackConfig(framing=framing))
        own = paste(aligned.image)
        inside = paste.alpha > 0
        err = np.abs(own.astype(int) - paste.framed.astype(int)).mean(-1)
        print(f"  {framing:8s} own crop back: mean error inside the mask {err[inside].mean():.2f} grey levels, "
              f"max outside {err[~inside].max():.0f}; mask covers {inside.mean() * 100:.0f} % of the output")
    paste = PasteBack(portrait, aligned, PasteBackConfig())
    plain = PasteBack(portrait, aligned, PasteBackConfig(colour_match=False))
    rest = (across_gradient(paste.framed, paste.alpha), inside_gradient(paste.framed, paste.alpha))
    print(f"  another face (fixture 1), face framing; portrait at rest: across-seam gradient {rest[0]:.2f}, "
          f"inside {rest[1]:.2f} grey levels/px")
    ring = (paste.alpha > 0.05) & (paste.alpha < 0.95)
    for name, fn in (("no colour match", lambda: plain(other)), ("ring mean (default)", lambda: paste(other)),
                     ("ring mean + std (gain ≤ 2)", lambda: mean_std(paste, other)),
                     ("Poisson (seamlessClone)", lambda: poisson(paste, other))):
        out = fn()
        ms = median_ms(fn, 20)
        step = np.abs(out.astype(int) - paste.framed.astype(int))[ring].mean()
        print(f"  {name:27s} {ms:6.1f} ms/frame; across-seam gradient {across_gradient(out, paste.alpha):.2f}, "
              f"inside {inside_gradient(out, paste.alpha):.2f}; |out − portrait| in the ring {step:.1f}")
    return paste


def tiny_pack(folder: Path) -> Path:
    from engine.runtime.weights import import_weights
    from tests.checkpoint_writers import tiny_inverter, tiny_paper, write_paper, write_restyle

    model = tiny_paper()
    import_weights(write_paper(folder / "best_model.pt", model),
                   write_restyle(folder / "restyle.pt", tiny_inverter(model.decoder)), out=folder / "tiny.safetensors")
    return folder / "tiny.safetensors"


def paper(pack: Path, **options):
    from engine.stylegan.options import StyleGANOptions
    from engine.stylegan.pipeline import StyleGANReenactor

    return StyleGANReenactor.from_pack(pack, runtime="eager", device="cpu", precision="fp32",
                                       options=StyleGANOptions(**options))


def noisy(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.clip(frame.astype(int) + rng.integers(-6, 7, frame.shape), 0, 255).astype(np.uint8)


def bench_smoothing(pack: Path, portrait: np.ndarray, faces: list[np.ndarray]) -> None:
    from engine.reenactor import TargetSpec
    from engine.stylegan.images import to_tensor
    from engine.stylegan.motion import FeatureMotion, MotionConfig

    print("smoothing on E_m's features (tiny random pack; ±6 grey levels of noise on every 64² driver crop)")
    base = paper(pack, smoothing=0.0)
    base.set_target(TargetSpec.from_image(portrait))
    region = base._paste.alpha > 0
    f_target, scale = base.motion._target, base.motion._scale
    a, b = (cv2.resize(f, (64, 64), interpolation=cv2.INTER_AREA) for f in faces[:2])  # driver crops
    ramp = [a] * 10 + [np.uint8(np.rint(a * (1 - s) + b * s)) for s in np.linspace(0, 1, 20)] + [b] * 20
    rng = np.random.default_rng(0)
    with torch_no_grad():
        feats = lambda frames: np.array([base.networks.features(to_tensor(f, 64))[0].double().numpy() for f in frames])  # noqa: E731
        still, moving, clean = feats([noisy(a, rng) for _ in range(60)]), feats([noisy(f, rng) for f in ramp]), feats(ramp)
    move = np.linalg.norm(clean[-1] - clean[0])
    print(f"  a cross-fade between two faces over 20 frames: {np.abs(clean[-1] - clean[0]).mean() / scale.mean():.0f} "
          f"noise units per dimension")
    for strength in STRENGTHS:
        m = FeatureMotion(MotionConfig(smoothing=strength))
        m.set_target(f_target, scale)
        f_std = (np.array([m._smooth(f) for f in still])[15:].std(0) / scale).mean()
        m.reset_track()
        filtered = np.array([m._smooth(f) for f in moving])
        lag = np.linalg.norm(filtered[10:30] - clean[10:30], axis=1).mean() / move
        r = copy.copy(base)
        r.motion = FeatureMotion(MotionConfig(smoothing=strength))
        r.motion.set_target(f_target, scale)
        outs = np.array([r.render(to_tensor(noisy(a, rng), 64)) for _ in range(100)])[20:].astype(np.float32)
        print(f"  strength {strength:.1f}: still driver → f std {f_std:.3f} noise units, output std "
              f"{outs.std(0).mean(-1)[region].mean():.2f} grey levels in the face (pasted back); "
              f"moving driver → |f − truth| {lag * 100:.1f} % of the move")
    m = FeatureMotion(MotionConfig())
    m.set_target(np.zeros(512), np.ones(512))
    x = np.random.default_rng(1).normal(size=512)
    print(f"  filter + relative motion at D = 512: {median_ms(lambda: m(x), 200) * 1000:.0f} µs/frame")


def torch_no_grad():
    import torch

    return torch.no_grad()


def bench_pipeline(pack: Path, portrait: np.ndarray, face: np.ndarray) -> None:
    from engine.reenactor import TargetSpec
    from engine.stylegan.images import to_tensor

    print("pipeline per frame after alignment (tiny random pack, 64² driver crop): median ms per stage")
    x = to_tensor(cv2.resize(face, (64, 64), interpolation=cv2.INTER_AREA), 64)
    for name, options in (("paper crop (absolute, no smoothing)", dict(paste_back=False, motion="absolute", smoothing=0.0)),
                          ("paste-back 512 + relative + smoothing", dict())):
        r = paper(pack, **options)
        r.set_target(TargetSpec.from_image(portrait))
        stages: dict[str, list[float]] = {}
        for _ in range(30):
            timings: dict[str, float] = {}
            r.render(x, timings)
            for k, v in timings.items():
                stages.setdefault(k, []).append(v)
        print(f"  {name:38s} " + ", ".join(f"{k} {statistics.median(v):.2f}" for k, v in stages.items()))


def bench_small_faces(portrait: np.ndarray) -> None:
    print("small faces")
    ref = align_face(portrait, size=256)
    s = 0.08 * 2000 / quad_side(ref.quad)
    small = cv2.resize(portrait, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    canvas = np.full((2000, 2000, 3), 90, np.uint8)
    canvas[400:400 + small.shape[0], 1300:1300 + small.shape[1]] = small
    expected = (ref.quad + 0.5) * small.shape[1] / portrait.shape[1] - 0.5 + (1300, 400)
    with FaceMeshDetector(MeshConfig(static_images=True)) as det:
        got = align_face(canvas, size=256, detector=det)
        err = np.linalg.norm(got.quad - expected, axis=1).max() / quad_side(expected)
        t_small = median_ms(lambda: det.detect(canvas), 5)
    with FaceMeshDetector(MeshConfig(static_images=True, find_small_faces=False)) as det:
        t_plain = median_ms(lambda: det.detect(canvas), 5)
    print(f"  2000² canvas, face quad 8 %: found by {got.source}, worst corner {err * 100:.2f} % of the quad side; "
          f"landmarks {t_small:.0f} ms with the fallback (the mesh alone: {t_plain:.0f} ms, no face)")
    s = 0.10 * 1280 / quad_side(ref.quad)
    small = cv2.resize(portrait, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    frame = np.full((1280, 1280, 3), 90, np.uint8)
    frame[300:300 + small.shape[0], 700:700 + small.shape[1]] = small
    with LiveAligner(size=256) as live:
        live.align(frame)
        t_crop = median_ms(lambda: live.align(frame), 20)
        source = live.detector.last_source
    with FaceMeshDetector(MeshConfig(static_images=False, find_small_faces=False)) as det:
        det.detect(frame)
        t_whole = median_ms(lambda: det.detect(frame), 20)
        whole_found = det.detect(frame) is not None
    print(f"  live 1280² frame, face quad 10 %: {source} {t_crop:.1f} ms/frame; whole-frame mesh "
          f"{t_whole:.1f} ms/frame ({'found' if whole_found else 'no face'})")


def bench_ffhq_landmarks() -> None:
    from engine.face import ffhq_landmarks

    dlib = ffhq_landmarks.load()
    if dlib is None:
        print("FFHQ-exact landmarks: requirements-ffhq.txt not installed, skipped")
        return
    print("FFHQ-exact landmarks (dlib 68 points) against the mesh, re-aligning the six FFHQ-aligned fixtures")
    ident = np.array([[0, 0], [0, 1023], [1023, 1023], [1023, 0]], float)
    errors: dict[str, list[float]] = {"mesh": [], "dlib": []}
    with FaceMeshDetector(MeshConfig(static_images=True)) as det:
        faces = [read_image(p) for p in sorted((FIXTURES / "aligned").glob("*.png"))]
        for face in faces:
            for name, ffhq in (("mesh", False), ("dlib", True)):
                quad = align_face(face, 1024, det, ffhq_landmarks=ffhq).quad
                errors[name].append(float(np.linalg.norm(quad - ident, axis=1).mean()))
        mesh = det.detect(faces[0])
    print("  mean corner error per image: " + "; ".join(
        f"{k} " + ", ".join(f"{e:.1f}" for e in v) + f" (mean {np.mean(v):.1f} px)" for k, v in errors.items()))
    small = cv2.resize(faces[0], (256, 256), interpolation=cv2.INTER_AREA)
    with FaceMeshDetector(MeshConfig(static_images=True)) as det:
        small_mesh = det.detect(small)
    print(f"  dlib per call (HOG detector on a crop + predictor): {median_ms(lambda: dlib.points(faces[0], mesh), 10):.1f} ms "
          f"on a 1024² face, {median_ms(lambda: dlib.points(small, small_mesh), 10):.1f} ms on a 256² one")


def strip(pack: Path, portrait: np.ndarray, folder: Path) -> None:
    from engine.reenactor import TargetSpec
    from engine.warp import WarpReenactor

    warp, model = WarpReenactor(), paper(pack)
    for r in (warp, model):
        r.set_target(TargetSpec.from_image(portrait))
    rows = []
    with VideoReader(FIXTURES / "video" / "carphone_pristine.mp4") as video:
        for i, frame in enumerate(video):
            a, b = warp.drive(frame).image, model.drive(frame).image
            if i % 24 == 12:
                h = 224
                row = [cv2.resize(frame, (round(frame.shape[1] * h / frame.shape[0]), h)),
                       cv2.resize(a, (h, h), interpolation=cv2.INTER_AREA), cv2.resize(b, (h, h), interpolation=cv2.INTER_AREA)]
                rows.append(np.hstack(row))
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "paper_live_strip.jpg"
    write_image(out, np.vstack(rows))
    print(f"wrote {out}")


def main() -> None:
    keep_freed_memory()  # the app's allocator settings (engine.runtime.memory), before any thread starts
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=Path, help="write the strip into this folder")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    portrait = read_image(FIXTURES / "portraits" / "astronaut.png")
    faces = [read_image(FIXTURES / "aligned" / f"{i}.png") for i in (1, 4)]
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("MIMIC_CACHE_DIR", str(Path(tmp) / "cache"))
        pack = tiny_pack(Path(tmp))
        bench_paste(portrait, faces[0])
        bench_smoothing(pack, portrait, faces)
        bench_pipeline(pack, portrait, faces[0])
        bench_small_faces(portrait)
        bench_ffhq_landmarks()
        if args.media:
            strip(pack, portrait, args.media)


if __name__ == "__main__":
    main()
