"""engine.media.video_io: reading, crash-safe H.264 writing, audio carry-over, clear errors."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import av
import numpy as np
import pytest

from engine.errors import MediaError
from engine.media.video_io import AudioFormat, H264Writer, VideoReader, read_image, write_image

ROOT = Path(__file__).resolve().parents[1]


def _decode_all(path: Path) -> tuple[list[float], str]:
    """Frame times of a file's video stream (stops at a truncated tail) and its codec name."""
    times: list[float] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        codec = stream.codec_context.name
        try:
            for frame in container.decode(stream):
                times.append(float(frame.time))
        except av.error.InvalidDataError:
            pass  # a file cut off mid-fragment: everything before the cut decodes
    return times, codec


def _run_child(code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _make_av_source(path: Path, audio_codec: str, seconds: float = 2.0, fps: int = 25) -> None:
    """A small video with a sine-tone audio track."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = out.add_stream(audio_codec, rate=44100)
        audio.layout = "mono"
        for i in range(int(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 4, np.uint8), format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        for start in range(0, int(seconds * 44100), 1024):
            tone = (np.sin(np.arange(start, start + 1024) / 10) * 8000).astype(np.int16)[None]
            chunk = av.AudioFrame.from_ndarray(tone, format="s16", layout="mono")
            chunk.sample_rate, chunk.pts = 44100, start
            out.mux(audio.encode(chunk))
        out.mux(video.encode(None))
        out.mux(audio.encode(None))


def test_reader_reports_the_fixture_clip(fixtures_dir: Path) -> None:
    with VideoReader(fixtures_dir / "video" / "carphone_pristine.mp4") as video:
        assert video.size == (176, 144)
        assert abs(float(video.fps) - 29.97) < 0.01
        assert video.frame_count == 120
        assert not video.has_audio
        frames = list(video.timed_frames())
    assert len(frames) == 120
    image, t = frames[-1]
    assert image.shape == (144, 176, 3) and image.dtype == np.uint8
    assert t == pytest.approx(119 / (30000 / 1001), abs=1e-3)


def test_round_trip_keeps_frames_codec_and_duration(fixtures_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "round trip.mp4"
    with VideoReader(fixtures_dir / "video" / "carphone_pristine.mp4") as video:
        frames = list(video)
        fps = video.fps
    writer = H264Writer.constant_rate(out, fps, (175, 143))  # odd size: padded to even
    for frame in frames:
        writer.write(frame[:143, :175])
    writer.close()
    writer.close()  # idempotent

    times, codec = _decode_all(out)
    assert codec == "h264"
    assert len(times) == 120
    with VideoReader(out) as back:
        assert back.size == (176, 144)
        assert back.frame_count == 120
        assert back.duration == pytest.approx(120 / float(fps), abs=0.01)
        first = next(iter(back))
    # H.264 at crf 20 stays close to the source.
    assert np.abs(first[:143, :175].astype(int) - frames[0][:143, :175]).mean() < 6


def test_real_timestamps_are_kept(tmp_path: Path) -> None:
    out = tmp_path / "timed.mp4"
    stamps = [1000.0 + t for t in (0.0, 0.04, 0.1, 0.1, 0.35, 0.5, 1.25)]  # irregular, one duplicate
    with H264Writer.live(out, (64, 48), 30) as writer:
        for i, t in enumerate(stamps):
            writer.write(np.full((48, 64, 3), i * 30, np.uint8), t_seconds=t)
    times, _ = _decode_all(out)
    assert len(times) == len(stamps)
    expected = [t - stamps[0] for t in stamps]
    expected[3] += 1 / 90000  # a repeated stamp moves one tick later: PTS stay strictly increasing
    assert times == pytest.approx(expected, abs=1e-4)


def test_killed_writer_leaves_a_playable_file(tmp_path: Path) -> None:
    # 95 frames at 30 fps, keyframe every second: frames 0..89 sit in finished fragments
    # when the process dies without close().
    child = _run_child(
        """
        import os, signal
        import numpy as np
        from engine.media.video_io import H264Writer, X264Options
        rng = np.random.default_rng(0)
        writer = H264Writer.constant_rate("killed.mp4", 30, (96, 64), x264=X264Options(keyframe_interval_s=1.0, low_latency=True))
        for _ in range(95):
            writer.write(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8))
        os.kill(os.getpid(), signal.SIGKILL)
        """,
        tmp_path,
    )
    assert child.returncode == -9, child.stderr
    times, codec = _decode_all(tmp_path / "killed.mp4")
    assert codec == "h264"
    assert len(times) >= 90


def test_disk_full_is_a_clear_error_and_the_start_stays_playable(tmp_path: Path) -> None:
    # RLIMIT_FSIZE makes writes past 500 kB fail like a full disk (EFBIG).
    child = _run_child(
        """
        import resource, signal
        import numpy as np
        from engine.errors import MediaError
        from engine.media.video_io import H264Writer
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (500_000, 500_000))
        rng = np.random.default_rng(0)
        writer = H264Writer.live("full.mp4", (160, 120), 30)
        try:
            for i in range(300):
                writer.write(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8), t_seconds=i / 30)
        except MediaError as exc:
            print(exc)
            try:
                writer.write(np.zeros((120, 160, 3), np.uint8), t_seconds=99.0)
            except MediaError:
                print("still refused")
        writer.close()
        """,
        tmp_path,
    )
    assert child.returncode == 0, child.stderr
    message = child.stdout.splitlines()
    assert "full.mp4" in message[0] and "disk is full" in message[0] and "playable" in message[0]
    assert message[1] == "still refused"
    times, _ = _decode_all(tmp_path / "full.mp4")
    assert len(times) >= 30  # at least the first whole fragment (one second)


def test_each_constructor_is_one_way_of_timing(tmp_path: Path) -> None:
    """constant_rate takes no times, live needs them, and only a live writer with a sound format takes sound:
    nothing is decided by the first write."""
    frame = np.zeros((48, 64, 3), np.uint8)
    with H264Writer.constant_rate(tmp_path / "rate.mp4", 30, (64, 48)) as writer:
        with pytest.raises(ValueError, match="constant rate"):
            writer.write(frame, t_seconds=0.0)
        writer.write(frame)
        with pytest.raises(ValueError, match="without live sound"):
            writer.write_audio(np.zeros((480, 1), np.float32), 0.0)
    with H264Writer.live(tmp_path / "live.mp4", (64, 48), 30) as writer:
        with pytest.raises(ValueError, match="capture times"):
            writer.write(frame)
        writer.write(frame, t_seconds=5.0)
        writer.write(frame, t_seconds=5.5)
        assert writer.duration == pytest.approx(0.5 + 1 / 30)
    with H264Writer.live(tmp_path / "sound.mp4", (64, 48), 30, audio=AudioFormat(48000, 1)) as writer:
        writer.write_audio(np.full((4800, 1), 0.1, np.float32), 10.0)  # before the first frame: held
        writer.write(frame, t_seconds=10.0)
        writer.write(frame, t_seconds=10.5)
    assert writer.audio_seconds == pytest.approx(0.1)  # the block held until the first frame, then placed at 0
    assert [len(_decode_all(tmp_path / name)[0]) for name in ("rate.mp4", "live.mp4", "sound.mp4")] == [1, 2, 2]


def test_unwritable_destinations_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="does not exist"):
        H264Writer.constant_rate(tmp_path / "missing" / "out.mp4", 30, (64, 48))
    (tmp_path / "a file").write_text("x")
    with pytest.raises(MediaError, match="is not a folder"):
        H264Writer.live(tmp_path / "a file" / "out.mp4", (64, 48), 30)
    with pytest.raises(MediaError, match="cannot write image"):
        write_image(tmp_path / "missing" / "snap.png", np.zeros((4, 4, 3), np.uint8))


def test_unreadable_videos_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="video not found"):
        VideoReader(tmp_path / "nope.mp4")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    with pytest.raises(MediaError, match="not a video file"):
        VideoReader(text)


def test_images_round_trip_with_unicode_paths(tmp_path: Path, fixtures_dir: Path) -> None:
    portrait = read_image(fixtures_dir / "portraits" / "astronaut.png")
    assert portrait.shape == (512, 512, 3) and portrait.dtype == np.uint8
    path = write_image(tmp_path / "snímek 写真.png", portrait)
    assert np.array_equal(read_image(path), portrait)
    with pytest.raises(MediaError, match="image not found"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "fake.png").write_bytes(b"not an image")
    with pytest.raises(MediaError, match="not an image file"):
        read_image(tmp_path / "fake.png")


def test_a_gif_portrait_is_read_as_its_first_frame(tmp_path: Path, fixtures_dir: Path) -> None:
    """OpenCV's wheel reads no GIF; a GIF portrait (an animated one too) is its first frame, and the app's
    target kinds and the file dialog take it. A damaged one is named as a GIF."""
    from PIL import Image

    from engine.session import target_kind

    portrait = read_image(fixtures_dir / "portraits" / "astronaut.png")
    first, second = Image.fromarray(portrait), Image.fromarray(255 - portrait)
    first.save(tmp_path / "portrait.gif", save_all=True, append_images=[second], duration=100)
    data = (tmp_path / "portrait.gif").read_bytes()
    got = read_image(tmp_path / "portrait.gif")
    assert got.shape == portrait.shape
    assert np.abs(got.astype(int) - portrait).mean() < 8  # a 256-colour palette of the same picture
    assert target_kind(tmp_path / "portrait.gif") == "image"
    (tmp_path / "cut.gif").write_bytes(data[: len(data) // 4])
    with pytest.raises(MediaError, match=r"cut\.gif: a damaged or incomplete GIF file$"):
        read_image(tmp_path / "cut.gif")


@pytest.mark.parametrize(("source_name", "codec"), [("aac.mp4", "aac"), ("pcm.mkv", "pcm_s16le")])
def test_audio_is_carried_from_the_source(tmp_path: Path, source_name: str, codec: str) -> None:
    source = tmp_path / source_name
    _make_av_source(source, codec)
    out = tmp_path / "with audio.mp4"
    with VideoReader(source) as video:
        assert video.has_audio
        with H264Writer.constant_rate(out, video.fps, video.size, audio_from=source) as writer:
            for frame in video:
                writer.write(frame)
    with av.open(str(out)) as container:
        assert [s.codec_context.name for s in container.streams] == ["h264", "aac"]
        samples = sum(frame.samples for frame in container.decode(container.streams.audio[0]))
    assert samples / 44100 == pytest.approx(2.0, abs=0.1)
