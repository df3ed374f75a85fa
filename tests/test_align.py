"""FFHQ alignment from the MediaPipe mesh: re-alignment ≈ identity, the reference's resampling,
recovery of known transforms, smoothing (still and moving faces), tracking, CLI (paste-back: tests/test_paste_back.py)."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from PIL import Image

from app.cli import main
from engine.face.align import (
    LiveAligner,
    align_face,
    ffhq_quad,
    prepare_source,
    quad_matrix,
    quad_side,
    resample_quad,
)
from engine.errors import NoFaceError
from engine.face.landmarks import FaceMesh, FaceMeshDetector, MeshConfig
from engine.media.video_io import VideoReader, read_image

S = 1024
IDEAL = np.array([[-0.5, -0.5], [-0.5, S - 0.5], [S - 0.5, S - 0.5], [S - 0.5, -0.5]])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / max(mse, 1e-9)))


@pytest.fixture(scope="module")
def photo_detector():
    with FaceMeshDetector(MeshConfig(static_images=True)) as detector:
        yield detector


@pytest.fixture(scope="module")
def aligned_faces(fixtures_dir):
    return [read_image(p) for p in sorted((fixtures_dir / "aligned").glob("*.png"))]


@pytest.fixture(scope="module")
def astronaut(fixtures_dir):
    return read_image(fixtures_dir / "portraits" / "astronaut.png")


def test_realigning_ffhq_aligned_frames_is_nearly_identity(aligned_faces, photo_detector):
    errors, scores = [], []
    for img in aligned_faces:
        a = align_face(img, size=S, detector=photo_detector)
        errors.append(np.linalg.norm(a.quad - IDEAL, axis=1).mean())
        scores.append(psnr(a.image, img))
    # MediaPipe's points are not dlib's: measured 6–29 px (15.4 px mean, 1.5 % of the crop), PSNR 24–36 dB
    assert np.mean(errors) < 20 and max(errors) < 35, errors
    assert np.mean(scores) > 27 and min(scores) > 22, scores


def _reference_resample(image: np.ndarray, quad: np.ndarray, size: int, supersample: int) -> np.ndarray:
    """The reference's last step: PIL QUAD (bilinear) at supersample·size, then Lanczos down."""
    big = size * supersample
    out = Image.fromarray(image).transform((big, big), Image.Transform.QUAD, (quad + 0.5).flatten(),
                                           Image.Resampling.BILINEAR)
    return np.asarray(out.resize((size, size), Image.Resampling.LANCZOS))


def test_resampling_matches_the_reference_supersampling(aligned_faces, photo_detector):
    # Fine detail (noise) and a quad ~3.8x the output: plain bilinear sampling aliases (35 dB).
    rng = np.random.default_rng(0)
    face = cv2.resize(aligned_faces[0], (972, 972), interpolation=cv2.INTER_AREA)
    face = np.clip(face + rng.normal(0, 12, face.shape), 0, 255).astype(np.uint8)
    quad = ffhq_quad(photo_detector.detect(face).points)
    source, local = prepare_source(face, quad, 256)
    assert quad_side(local) / 256 > 3.5
    ours = resample_quad(source, local, 256)
    assert psnr(ours, _reference_resample(source, local, 256, 4)) > 45
    # Upsampling (quad smaller than the output): one bilinear pass, as the reference.
    small = cv2.resize(aligned_faces[2], (200, 200), interpolation=cv2.INTER_AREA)
    quad = ffhq_quad(photo_detector.detect(small).points)
    source, local = prepare_source(small, quad, 256)
    assert psnr(resample_quad(source, local, 256), _reference_resample(source, local, 256, 4)) > 45


def test_known_similarity_transform_is_recovered(aligned_faces, photo_detector):
    face = cv2.resize(aligned_faces[0], (512, 512), interpolation=cv2.INTER_AREA)
    direct = align_face(face, size=256, detector=photo_detector)
    for angle, scale, shift in ((17.0, 0.6, (300.0, 140.0)), (-30.0, 1.3, (80.0, 60.0))):
        m = cv2.getRotationMatrix2D((256, 256), angle, scale)
        m[:, 2] += shift
        canvas = cv2.warpAffine(face, m, (1100, 900), borderValue=(90, 90, 90))
        moved = align_face(canvas, size=256, detector=photo_detector)
        expected_quad = (m[:, :2] @ direct.quad.T).T + m[:, 2]
        corner_err = np.linalg.norm(moved.quad - expected_quad, axis=1).mean() / quad_side(expected_quad)
        assert corner_err < 0.02  # < 2 % of the crop side (measured 0.2–0.7 %)
        assert psnr(moved.image, direct.image) > 24


def test_quad_leaving_the_image_is_reflect_padded(aligned_faces, photo_detector):
    face = cv2.resize(aligned_faces[5], (512, 512), interpolation=cv2.INTER_AREA)
    direct = align_face(face, size=256, detector=photo_detector)
    cut = np.ascontiguousarray(face[60:, 90:])  # the crop quad now leaves the image top and left
    edge = align_face(cut, size=256, detector=photo_detector)
    assert (edge.quad.min(axis=0) < 0).all()
    assert np.abs(edge.quad - (direct.quad - (90, 60))).max() < 6
    inner = (slice(96, 224), slice(48, 208))  # eyes to chin: inside the cut image
    assert psnr(edge.image[inner], direct.image[inner]) > 28
    assert edge.image[:8].std() < direct.image[:8].std() + 8  # padding is blurred, not a hard mirror copy


def test_no_face_is_explicit(astronaut, photo_detector):
    blank = np.full((240, 320, 3), 127, np.uint8)
    with pytest.raises(NoFaceError):
        align_face(blank, detector=photo_detector)
    with LiveAligner() as aligner:
        assert aligner.align(blank) is None
        assert aligner.last_reason == "no face in the frame"
        tiny = cv2.resize(astronaut, (48, 48), interpolation=cv2.INTER_AREA)
        mesh = photo_detector.detect(astronaut)
        small = FaceMesh(mesh.points * (48 / 512), (48, 48))
        assert aligner.align_mesh(tiny, small) is None
        assert aligner.last_reason.startswith("face too small")
        assert aligner.align_mesh(astronaut, mesh) is not None and aligner.last_reason is None


def _noisy(mesh: FaceMesh, rng: np.random.Generator, sigma: float, shift=(0.0, 0.0)) -> FaceMesh:
    pts = mesh.points.copy()
    pts[:, :2] += rng.normal(0, sigma, (len(pts), 2)).astype(np.float32) + np.float32(shift)
    return FaceMesh(pts, mesh.image_size)


def test_still_face_gives_a_still_crop(astronaut, photo_detector):
    mesh = photo_detector.detect(astronaut)
    rng = np.random.default_rng(0)
    spreads = {}
    for strength in (0.0, 0.6):  # off, the default
        aligner = LiveAligner(size=256, smoothing=strength, detector=photo_detector)
        quads, crops = [], []
        for i in range(60):  # the same frame, landmarks with 0.3 px noise, 30 fps
            a = aligner.align_mesh(astronaut, _noisy(mesh, rng, 0.3), t=i / 30)
            quads.append(a.quad)
            crops.append(a.image.astype(np.float32))
        spreads[strength] = (np.std(quads[20:], axis=0).mean(), np.std(crops[20:], axis=0).mean())
    (raw_q, raw_px), (smooth_q, smooth_px) = spreads[0.0], spreads[0.6]
    assert smooth_q < raw_q / 2.5 and smooth_q < 0.2, spreads  # corner std in source px
    assert smooth_px < 1.2 and smooth_px < raw_px / 2.5, spreads  # per-pixel std over time, grey levels


def test_moving_face_is_followed_closely(astronaut, photo_detector):
    mesh = photo_detector.detect(astronaut)
    unit = quad_side(ffhq_quad(mesh.points)) / 4  # ≈ eye distance
    rng = np.random.default_rng(1)
    aligner = LiveAligner(size=256, detector=photo_detector)
    lags = []
    for i in range(60):  # 2 eye distances per second to the right
        shift = (2.0 * unit * i / 30, 0.0)
        moved = _noisy(mesh, rng, 0.3, shift)
        a = aligner.align_mesh(astronaut, moved, t=i / 30)
        lags.append(np.abs(a.quad - (ffhq_quad(mesh.points) + shift)).max())
    assert np.mean(lags[30:]) < 0.1 * unit, (np.mean(lags[30:]), unit)


def test_largest_face_is_chosen_and_tracked(aligned_faces):
    big0, small0 = aligned_faces[0], aligned_faces[5]
    choices = []
    with LiveAligner(size=128) as aligner:
        for i in range(10):  # the tracked face shrinks while the other one grows past it
            a_side, b_side = 230 - 6 * i, 160 + 8 * i
            frame = np.full((480, 640, 3), 60, np.uint8)
            frame[100:100 + a_side, 20:20 + a_side] = cv2.resize(big0, (a_side, a_side), interpolation=cv2.INTER_AREA)
            frame[120:120 + b_side, 330:330 + b_side] = cv2.resize(small0, (b_side, b_side), interpolation=cv2.INTER_AREA)
            aligned = aligner.align(frame, t=i / 30)
            assert aligned is not None, aligner.last_reason
            choices.append(aligned.quad.mean(axis=0)[0] < 320)  # centre on the left: face A
    assert all(choices), choices


def test_real_clip_is_tracked_without_jumps(fixtures_dir):
    with VideoReader(fixtures_dir / "video" / "carphone_pristine.mp4") as video:
        frames = list(video)
    assert frames[0].shape == (144, 176, 3)
    quads = []
    with LiveAligner(size=256) as aligner:
        for i, frame in enumerate(frames):
            aligned = aligner.align(frame, t=i / 29.97)
            assert aligned is not None, (i, aligner.last_reason)
            assert aligned.image.shape == (256, 256, 3)
            quads.append(aligned.quad)
    quads = np.array(quads)
    sides = np.hypot(*(quads[:, 3] - quads[:, 0]).T)
    assert 50 < sides.min() and sides.max() < 200, (sides.min(), sides.max())
    steps = np.linalg.norm(np.diff(quads, axis=0), axis=2).max(axis=1) / sides[1:]
    assert steps.max() < 0.15, steps.max()  # no frame-to-frame jump over 15 % of the crop


def test_align_command_writes_crop_and_quad(fixtures_dir, tmp_path, capsys):
    out, quad = tmp_path / "a.png", tmp_path / "q.json"
    assert main(["align", str(fixtures_dir / "portraits" / "astronaut.png"), "-o", str(out), "--size", "256",
                 "--json", str(quad)]) == 0
    assert read_image(out).shape == (256, 256, 3)
    corners = np.array(json.loads(quad.read_text())["quad"])
    assert corners.shape == (4, 2)
    m = quad_matrix(corners, 256)  # the quad's corners are the crop's corners
    assert np.allclose(m[:, :2] @ corners[2] + m[:, 2], (255.5, 255.5), atol=0.01)

    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((100, 100, 3), 200, np.uint8))
    assert main(["align", str(blank), "-o", str(out)]) == 2
    assert f"error: no face found in {blank}" in capsys.readouterr().err
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    assert main(["align", str(broken), "-o", str(out)]) == 2
    assert "cannot read image" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["align", str(blank), "-o", str(out), "--size", "0"])
    assert exit_info.value.code == 2 and "from 16 to 4096" in capsys.readouterr().err
