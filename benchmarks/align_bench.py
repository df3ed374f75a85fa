"""Alignment figures (`python -m benchmarks.align_bench`).

(a) re-aligning the FFHQ-aligned fixtures (1024²): corner error of the crop quad in px
    (mean over the 4 corners, and the worst corner) and PSNR of the re-aligned image;
(b) a fixture face pasted into a larger canvas with a known rotation/scale/shift: corner error
    of the recovered quad (% of the crop size) and PSNR against the direct crop;
(c) fast path on 640x480 frames of the fixture clip: median ms for the mesh and the warp;
(d) jitter: std of the quad corners (px) on a still frame with small noise, with and without smoothing.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from engine.align import LiveAligner, align_face, ffhq_quad, quad_matrix
from engine.landmarks import FaceMeshDetector, MeshConfig
from engine.video_io import VideoReader, read_image

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
S = 1024
IDEAL = np.array([[-0.5, -0.5], [-0.5, S - 0.5], [S - 0.5, S - 0.5], [S - 0.5, -0.5]])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / max(np.mean((a.astype(float) - b.astype(float)) ** 2), 1e-9)))


def main() -> None:
    print("(a) re-alignment of FFHQ-aligned frames (1024²)")
    faces = [read_image(p) for p in sorted((FIXTURES / "aligned").glob("*.png"))]
    for i, img in enumerate(faces):
        a = align_face(img, S)
        err = np.linalg.norm(a.quad - IDEAL, axis=1)
        print(f"  {i}.png  corner error mean {err.mean():5.1f} px, worst {err.max():5.1f} px   PSNR {psnr(a.image, img):5.1f} dB")

    print("(b) known similarity transform recovered")
    face = cv2.resize(faces[0], (512, 512), interpolation=cv2.INTER_AREA)
    direct = align_face(face, 256)
    for angle, scale, shift in ((17.0, 0.6, (300, 140)), (-30.0, 1.3, (80, 60)), (5.0, 0.35, (600, 500))):
        m = cv2.getRotationMatrix2D((256, 256), angle, scale)
        m[:, 2] += shift
        canvas = cv2.warpAffine(face, m, (1100, 900), borderValue=(90, 90, 90))
        moved = align_face(canvas, 256)
        expected = (m[:, :2] @ direct.quad.T).T + m[:, 2]
        rel = np.linalg.norm(moved.quad - expected, axis=1).mean() / np.hypot(*(expected[3] - expected[0]))
        print(f"  rot {angle:+5.1f}° scale {scale:.2f}: corner error {100 * rel:.2f} % of the crop, "
              f"PSNR vs direct crop {psnr(moved.image, direct.image):.1f} dB")

    print("(c) fast path, 640x480 frames")
    with VideoReader(FIXTURES / "video" / "carphone_pristine.mp4") as video:
        frames = [cv2.resize(f, (640, 480)) for f in video]
    detector = FaceMeshDetector(MeshConfig())
    mesh_ms, warp_ms = [], []
    for f in frames:
        t = time.perf_counter()
        mesh = detector.detect(f)
        mesh_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        cv2.warpAffine(f, quad_matrix(ffhq_quad(mesh.points), 256), (256, 256), flags=cv2.INTER_LINEAR)
        warp_ms.append((time.perf_counter() - t) * 1000)
    print(f"  mesh {statistics.median(mesh_ms[5:]):.1f} ms, warp {statistics.median(warp_ms[5:]):.2f} ms (median)")

    print("(d) jitter on a still frame with ±6 grey-level noise")
    portrait = read_image(FIXTURES / "portraits" / "astronaut.png")
    rng = np.random.default_rng(0)
    for strength in (0.0, 0.5, 0.8):
        aligner = LiveAligner(256, smoothing=strength)
        quads = []
        for i in range(60):
            noisy = np.clip(portrait.astype(np.int16) + rng.integers(-6, 7, portrait.shape), 0, 255).astype(np.uint8)
            quads.append(aligner.align(noisy, t=i / 30).quad)
        print(f"  smoothing {strength:.1f}: corner std {np.std(np.array(quads[10:]), axis=0).mean():.3f} px")


if __name__ == "__main__":
    main()
