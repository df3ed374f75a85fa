"""Alignment figures (`.venv/bin/python -m benchmarks.align_bench`).

(a) re-aligning the FFHQ-aligned fixtures (1024²): quad corner error (px) and PSNR, per fixture;
    the same for other landmark choices (iris centres, …), also on the StyleGAN renders;
(b) resampling against the reference's (PIL QUAD bilinear at 4096², Lanczos down): PSNR and ms;
(c) a fixture face pasted into a larger canvas with a known rotation/scale/shift (and one cut by
    the frame edge): corner error of the recovered quad and PSNR against the direct crop;
(d) fast path on 640x480 and 1280x720 frames of the fixture clip: median ms of mesh, warp, total;
(e) jitter: quad corner std on a still frame (pixel noise, real MediaPipe noise) per smoothing
    strength, and the lag behind a face moving at 2 eye distances per second;
(f) the real clip at its own 176x144 and the astronaut portrait.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from engine.face.align import (
    LiveAligner,
    align_face,
    ffhq_quad,
    prepare_source,
    quad_from_features,
    quad_matrix,
    quad_side,
    resample_quad,
)
from engine.face.landmarks import FaceMesh, FaceMeshDetector, MeshConfig
from engine.media.video_io import VideoReader, read_image

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
S = 1024
IDEAL = np.array([[-0.5, -0.5], [-0.5, S - 0.5], [S - 0.5, S - 0.5], [S - 0.5, -0.5]])

# Landmark choices compared in (a): (left eye points, right eye points, mouth left, mouth right).
CONTOUR_6 = ((33, 160, 158, 133, 153, 144), (362, 385, 387, 263, 373, 380))
CONTOUR_16 = ((33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246),
              (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466))
CHOICES = {
    "eye contours (6 pts, dlib's places) + mouth 61/291 [used]": (*CONTOUR_6, 61, 291),
    "eye contours (all 16 pts) + mouth 61/291": (*CONTOUR_16, 61, 291),
    "eye corners 33/133, 263/362 + mouth 61/291": ((33, 133), (263, 362), 61, 291),
    "iris centres 468/473 + mouth 61/291": ((468,), (473,), 61, 291),
    "eye contours (6 pts) + inner mouth corners 78/308": (*CONTOUR_6, 78, 308),
}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / max(np.mean((a.astype(float) - b.astype(float)) ** 2), 1e-9)))


def quad_from(points: np.ndarray, choice: tuple) -> np.ndarray:
    """The FFHQ quad with another landmark choice."""
    left, right, mouth_l, mouth_r = choice
    pts = np.asarray(points, np.float64)[:, :2]
    return quad_from_features(pts[list(left)].mean(0), pts[list(right)].mean(0), pts[mouth_l], pts[mouth_r])


def realignment(detector: FaceMeshDetector) -> None:
    print("(a) re-aligning the FFHQ-aligned fixtures (1024²): corner error = mean |quad corner − image corner|")
    faces = sorted((FIXTURES / "aligned").glob("*.png"))
    meshes = {}
    for path in faces:
        img = read_image(path)
        t = time.perf_counter()
        a = align_face(img, S, detector)
        ms = (time.perf_counter() - t) * 1000
        err = np.linalg.norm(a.quad - IDEAL, axis=1)
        print(f"  aligned/{path.name}  corner error mean {err.mean():5.1f} px, worst {err.max():5.1f} px  "
              f"PSNR {psnr(a.image, img):5.1f} dB  ({ms:.0f} ms)")
        meshes[path] = detector.detect(img).points
    renders = {p: detector.detect(read_image(p)).points for p in sorted((FIXTURES / "latents").glob("*.png"))}
    print("  landmark choices (mean / worst fixture of the per-image mean corner error, px):")
    print(f"  {'':58s} {'aligned/ (6)':>15s} {'StyleGAN renders (5)':>22s}")
    for name, choice in CHOICES.items():
        cells = []
        for group in (meshes, renders):
            errs = [np.linalg.norm(quad_from(p, choice) - IDEAL, axis=1).mean() for p in group.values()]
            cells.append(f"{np.mean(errs):5.1f} / {max(errs):5.1f}")
        print(f"  {name:58s} {cells[0]:>15s} {cells[1]:>22s}")


def reference_resample(image: np.ndarray, quad: np.ndarray, size: int) -> np.ndarray:
    """The reference's transform step: PIL QUAD bilinear at 4096², Lanczos ("ANTIALIAS") down."""
    out = Image.fromarray(image).transform((4096, 4096), Image.Transform.QUAD, (quad + 0.5).flatten(),
                                           Image.Resampling.BILINEAR)
    return np.asarray(out.resize((size, size), Image.Resampling.LANCZOS))


def resampling(detector: FaceMeshDetector) -> None:
    print("(b) resampling vs the reference (PIL bilinear at 4096², Lanczos down), same prepared source")
    face = read_image(FIXTURES / "aligned" / "0.png")
    rng = np.random.default_rng(0)
    grainy = cv2.resize(face, (3890, 3890), interpolation=cv2.INTER_CUBIC)
    grainy = np.clip(grainy + rng.normal(0, 12, grainy.shape), 0, 255).astype(np.uint8)
    cases = (("1024² fixture → 1024", face, 1024), ("1024² fixture → 256", face, 256),
             ("astronaut 512² → 1024", read_image(FIXTURES / "portraits" / "astronaut.png"), 1024),
             ("3890² fixture + grain → 1024", grainy, 1024))
    for name, img, size in cases:
        quad = ffhq_quad(detector.detect(img).points)
        source, local = prepare_source(img, quad, size)
        t = time.perf_counter()
        ref = reference_resample(source, local, size)
        ref_ms = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        ours = resample_quad(source, local, size)
        ours_ms = (time.perf_counter() - t) * 1000
        plain = cv2.warpAffine(source, quad_matrix(local, size), (size, size), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT)
        print(f"  {name:30s} quad/output {quad_side(local) / size:4.2f}: ours {psnr(ours, ref):5.1f} dB in "
              f"{ours_ms:5.0f} ms (reference {ref_ms:5.0f} ms); one bilinear pass {psnr(plain, ref):5.1f} dB")


def known_transforms(detector: FaceMeshDetector) -> None:
    print("(c) known similarity transforms recovered (fixture 0 at 512², crop 256)")
    face = cv2.resize(read_image(FIXTURES / "aligned" / "0.png"), (512, 512), interpolation=cv2.INTER_AREA)
    direct = align_face(face, 256, detector)
    for angle, scale, shift in ((17.0, 0.6, (300, 140)), (-30.0, 1.3, (80, 60)), (5.0, 0.35, (600, 500)),
                                (40.0, 1.0, (250, 200))):
        m = cv2.getRotationMatrix2D((256, 256), angle, scale)
        m[:, 2] += shift
        canvas = cv2.warpAffine(face, m, (1100, 900), borderValue=(90, 90, 90))
        moved = align_face(canvas, 256, detector)
        expected = (m[:, :2] @ direct.quad.T).T + m[:, 2]
        err = np.linalg.norm(moved.quad - expected, axis=1).mean()
        print(f"  rot {angle:+5.1f}° scale {scale:.2f}: corner error {err:5.2f} px = "
              f"{100 * err / quad_side(expected):.2f} % of the crop; PSNR vs direct crop {psnr(moved.image, direct.image):.1f} dB")
    cut = np.ascontiguousarray(face[60:, 90:])
    edge = align_face(cut, 256, detector)
    inner = (slice(96, 224), slice(48, 208))
    err = np.linalg.norm(edge.quad - (direct.quad - (90, 60)), axis=1).mean()
    print(f"  cut by the frame (quad leaves it, reflect-padded): corner error {err:.2f} px; "
          f"PSNR of the face region vs direct crop {psnr(edge.image[inner], direct.image[inner]):.1f} dB")


def speed() -> None:
    print("(d) fast path speed, frames of the fixture clip upscaled (median over 2 passes of 120 frames)")
    with VideoReader(FIXTURES / "video" / "carphone_pristine.mp4") as video:
        clip = list(video)
    for width, height in ((640, 480), (1280, 720)):
        frames = [cv2.resize(f, (width, height), interpolation=cv2.INTER_LINEAR) for f in clip] * 2
        for max_faces in (4, 1):
            with LiveAligner(256, detector=FaceMeshDetector(MeshConfig(max_faces=max_faces))) as aligner:
                mesh_ms, warp_ms, total_ms = [], [], []
                for i, f in enumerate(frames):
                    t = time.perf_counter()
                    aligner.align(f, t=i / 30)
                    total_ms.append((time.perf_counter() - t) * 1000)
                    mesh_ms.append(aligner.last_timings_ms["mesh"])
                    warp_ms.append(aligner.last_timings_ms["warp"])
            print(f"  {width}x{height}, max_faces={max_faces}: mesh {statistics.median(mesh_ms[10:]):5.2f} ms + "
                  f"quad/smoothing/warp {statistics.median(warp_ms[10:]):4.2f} ms = total "
                  f"{statistics.median(total_ms[10:]):5.2f} ms (p90 {np.percentile(total_ms[10:], 90):5.2f})")


def jitter(detector: FaceMeshDetector) -> None:
    print("(e) jitter and lag (astronaut 512², crop 256)")
    portrait = read_image(FIXTURES / "portraits" / "astronaut.png")
    mesh = detector.detect(portrait)
    unit = quad_side(ffhq_quad(mesh.points)) / 4  # ≈ eye distance
    for strength in (0.0, 0.3, 0.6, 0.8):
        rng = np.random.default_rng(0)
        quads, crops = [], []
        with LiveAligner(256, smoothing=strength) as aligner:  # video-mode MediaPipe on noisy copies
            for i in range(90):
                noisy = np.clip(portrait.astype(np.int16) + rng.integers(-6, 7, portrait.shape), 0, 255).astype(np.uint8)
                a = aligner.align(noisy, t=i / 30)
                quads.append(a.quad)  # the crop of the clean frame through this quad: motion from jitter only
                crops.append(cv2.warpAffine(portrait, a.matrix, (256, 256), flags=cv2.INTER_LINEAR).astype(np.float32))
        still = np.std(np.array(quads[30:]), axis=0).mean()
        pixel = np.std(np.array(crops[30:]), axis=0).mean()
        lagger = LiveAligner(256, smoothing=strength, detector=detector)
        lags = []
        for i in range(60):
            shift = np.array([2.0 * unit * i / 30, 0.0])
            pts = mesh.points.copy()
            pts[:, :2] += rng.normal(0, 0.3, (len(pts), 2)) + shift
            a = lagger.align_mesh(portrait, FaceMesh(pts, mesh.image_size), t=i / 30)
            lags.append(np.linalg.norm(a.quad - (ffhq_quad(mesh.points) + shift), axis=1).mean())
        print(f"  smoothing {strength:.1f}: still frame with ±6 grey noise: corner std {still:.3f} px, crop pixel "
              f"std {pixel:.2f} grey levels; moving 2 eye distances/s: lag {np.mean(lags[30:]):.2f} px "
              f"({100 * np.mean(lags[30:]) / unit:.1f} % of the eye distance {unit:.0f} px)")


def real_inputs(detector: FaceMeshDetector) -> None:
    print("(f) real inputs")
    with VideoReader(FIXTURES / "video" / "carphone_pristine.mp4") as video:
        clip = list(video)
    quads, missing = [], 0
    with LiveAligner(256) as aligner:
        for i, f in enumerate(clip):
            a = aligner.align(f, t=i / 29.97)
            if a is None:
                missing += 1
            else:
                quads.append(a.quad)
    quads = np.array(quads)
    sides = np.hypot(*(quads[:, 3] - quads[:, 0]).T)
    steps = np.linalg.norm(np.diff(quads, axis=0), axis=2).max(axis=1) / sides[1:]
    print(f"  carphone 176x144: face in {len(clip) - missing}/{len(clip)} frames, crop side {sides.min():.0f}–"
          f"{sides.max():.0f} px, largest frame-to-frame corner step {100 * steps.max():.1f} % of the crop")
    portrait = read_image(FIXTURES / "portraits" / "astronaut.png")
    for size in (1024, 256):
        t = time.perf_counter()
        a = align_face(portrait, size, detector)
        print(f"  astronaut 512² → {size}: quad side {quad_side(a.quad):.0f} px, "
              f"{(time.perf_counter() - t) * 1000:.0f} ms (mesh included)")


def main() -> None:
    with FaceMeshDetector(MeshConfig(static_images=True)) as detector:
        realignment(detector)
        resampling(detector)
        known_transforms(detector)
        speed()
        jitter(detector)
        real_inputs(detector)


if __name__ == "__main__":
    main()
