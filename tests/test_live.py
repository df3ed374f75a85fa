"""engine.live / engine.media.camera / engine.media.recorder: latest-frame-wins scheduling, reconnects, threaded recording."""
from __future__ import annotations

import gc
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from pathlib import Path

import av
import numpy as np
import pytest

from engine.media.camera import CameraConfig, CameraSource, VideoFileSource, open_source
from engine.errors import MediaError
from engine.live import LivePipeline, LiveResult, Mailbox
from engine.media.recorder import Layout, Recorder, canvas_size, compose
from engine.reenactor import DriveResult, ReenactorKind, TargetSpec
from engine.media.video_io import H264Writer, VideoReader, read_image

ROOT = Path(__file__).resolve().parents[1]


class SlowReenactor:
    """A real reenactor with extra latency per frame, to make inference slower than the camera."""

    def __init__(self, inner, delay_s: float) -> None:
        self.inner = inner
        self.delay_s = delay_s
        self.name = f"{inner.name} (+{delay_s * 1000:.0f} ms)"
        self.neutral_resets = 0

    def describe(self) -> str:
        return f"{self.inner.describe()} +{self.delay_s * 1000:.0f} ms"

    def set_target(self, target, progress=None, cancel=None) -> None:
        self.inner.set_target(target, progress, cancel)

    def drive(self, frame: np.ndarray) -> DriveResult:
        result = self.inner.drive(frame)
        time.sleep(self.delay_s)
        return result

    def reset_neutral(self) -> None:
        self.neutral_resets += 1
        self.inner.reset_neutral()

    @property
    def output_size(self) -> tuple[int, int]:
        return self.inner.output_size

    def close(self) -> None:
        """The wrapped reenactor is the module's; it is closed by its fixture."""


class Collector:
    """A FrameSink that keeps what it is handed (the recorder and virtual camera are sinks like it)."""

    def __init__(self) -> None:
        self.items: list[tuple[np.ndarray, float, np.ndarray | None]] = []

    def submit(self, output: np.ndarray, t: float, driver: np.ndarray | None = None) -> bool:
        self.items.append((output, t, driver))
        return True


@pytest.fixture(scope="module")
def clip(fixtures_dir: Path) -> Path:
    return fixtures_dir / "video" / "carphone_pristine.mp4"


@pytest.fixture(scope="module")
def warp(fixtures_dir: Path):
    from engine.warp import WarpReenactor

    reenactor = WarpReenactor()
    portrait = fixtures_dir / "portraits" / "astronaut.png"
    reenactor.set_target(TargetSpec.from_image(read_image(portrait), portrait))
    yield reenactor
    reenactor.close()


def _collect(pipeline: LivePipeline, results: list[LiveResult], n: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while len(results) < n and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(results) >= n, f"only {len(results)} outputs in {timeout_s} s"


# ------------------------------------------------------------------------------------------ mailbox


def test_mailbox_keeps_only_the_newest_item() -> None:
    box: Mailbox[int] = Mailbox()
    for i in range(1, 6):
        box.put(i)
    assert box.depth == 1 and box.max_depth == 1
    assert box.dropped == 4
    assert box.get(timeout=0) == 5
    assert box.puts_at_last_get == 5
    assert box.get(timeout=0.01) is None  # empty: times out
    box.close()
    assert box.get() is None  # closed: returns at once


def test_mailbox_put_says_whether_the_taker_must_be_told() -> None:
    box: Mailbox[int] = Mailbox()
    assert box.put(1) is True  # was empty: signal the taker
    assert box.put(2) is False  # the taker has not looked yet: no second signal
    assert box.get(timeout=0) == 2 and box.put(3) is True


def test_mailbox_hands_over_between_threads() -> None:
    box: Mailbox[int] = Mailbox()
    got: list[int] = []
    consumer = threading.Thread(target=lambda: got.append(box.get(timeout=5)))
    consumer.start()
    box.put(7)
    consumer.join(5)
    assert got == [7]


# ------------------------------------------------------------------------------------------ live loop


def test_slow_inference_drops_stale_frames_and_takes_the_newest(clip: Path, warp) -> None:
    """Camera at ~30 fps, inference ~8 fps: nothing queues up, every output is from the newest frame."""
    results: list[LiveResult] = []
    pipeline = LivePipeline(on_result=results.append)
    pipeline.reenactor = SlowReenactor(warp, delay_s=0.12)
    pipeline.set_source(VideoFileSource(clip))
    pipeline.start()
    try:
        _collect(pipeline, results, 12)
    finally:
        stats = pipeline.stats()
        pipeline.stop()

    assert stats.max_mailbox_depth == 1  # no queue can grow
    assert stats.dropped > 0  # stale frames were skipped…
    assert all(r.seq == r.newest_seq_at_start for r in results)  # …and each output used the newest frame
    seqs = [r.seq for r in results]
    assert seqs == sorted(set(seqs))  # no frame processed twice or out of order
    assert all(r.captured_at <= r.started_at <= r.done_at for r in results)
    queue_ms = sorted(r.queue_ms for r in results[1:])
    print(f"\nlive: {len(results)} outputs, {stats.dropped} frames dropped, queue wait median "
          f"{queue_ms[len(queue_ms) // 2]:.1f} ms / max {queue_ms[-1]:.1f} ms (capture interval "
          f"{1000 / 29.97:.1f} ms), end-to-end latency median "
          f"{sorted(r.latency_ms for r in results)[len(results) // 2]:.0f} ms")


def test_every_output_fans_out_to_each_sink_until_removed(clip: Path, warp, tmp_path: Path) -> None:
    results: list[LiveResult] = []
    pipeline = LivePipeline(on_result=results.append)
    pipeline.reenactor = SlowReenactor(warp, delay_s=0.0)
    collector = Collector()
    recorder = Recorder(tmp_path / "out.mp4", Layout.OUTPUT, output_size=warp.output_size)
    pipeline.add_sink(collector)
    pipeline.add_sink(recorder)
    pipeline.set_source(VideoFileSource(clip))
    pipeline.start()
    try:
        _collect(pipeline, results, 10)
        accepted = pipeline.remove_sink(recorder)
        seen = len(collector.items)
        _collect(pipeline, results, len(results) + 3)
    finally:
        pipeline.stop()
    stats = recorder.stop()
    assert accepted >= 10 and abs(stats.frames_written - accepted) <= 1  # what it took, it wrote
    assert len(collector.items) > seen  # the other sink is still fed
    assert pipeline.accepted(collector) == len(collector.items) and pipeline.accepted(recorder) == 0
    output, t, driver = collector.items[0]
    assert output.shape[:2][::-1] == warp.output_size and driver is not None and t > 0


def test_outputs_follow_the_driver_and_neutral_can_be_retaken(clip: Path, warp) -> None:
    results: list[LiveResult] = []
    slow = SlowReenactor(warp, delay_s=0.0)
    pipeline = LivePipeline(on_result=results.append, mirror=True)
    pipeline.reenactor = slow
    pipeline.set_source(VideoFileSource(clip))
    pipeline.start()
    try:
        _collect(pipeline, results, 3)
        pipeline.retake_neutral()
        _collect(pipeline, results, len(results) + 10)
    finally:
        pipeline.stop()
    assert slow.neutral_resets == 1
    with_face = [r for r in results if r.result.face_found]
    assert len(with_face) >= 5
    first, last = with_face[0].result.image, with_face[-1].result.image
    assert first.shape == last.shape == (warp.output_size[1], warp.output_size[0], 3)
    assert np.abs(first.astype(int) - last).mean() > 0.5  # the output moves with the driver


def test_pipeline_without_reenactor_only_previews_and_survives_drive_errors(clip: Path) -> None:
    frames: list[float] = []
    errors: list[str] = []
    results: list[LiveResult] = []

    class Failing:
        """Raises like a reenactor without a target does."""

        kind = ReenactorKind.WARP
        name = "failing"

        def drive(self, frame):
            from engine.errors import MimicError

            raise MimicError("no target set")

        def reset_neutral(self) -> None: ...

    pipeline = LivePipeline(on_result=results.append, on_frame=lambda f, t: frames.append(t), on_error=errors.append)
    pipeline.set_source(VideoFileSource(clip))
    pipeline.start()
    try:
        deadline = time.monotonic() + 10
        while len(frames) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        pipeline.reenactor = Failing()
        while not errors and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
        alive = [t.is_alive() for t in pipeline._threads]
    finally:
        pipeline.stop()
    assert len(frames) >= 5 and not results
    assert errors == ["no target set"]  # reported once, not once per frame
    assert alive == [True, True]


# ------------------------------------------------------------------------------------------ sources


def test_file_source_loops_at_the_files_pace(clip: Path, tmp_path: Path) -> None:
    short = tmp_path / "short.mp4"
    with VideoReader(clip) as video, H264Writer.constant_rate(short, 25, video.size) as writer:
        for _, frame in zip(range(10), video):
            writer.write(frame)
    source = VideoFileSource(short)
    stamps = []
    for _ in range(15):
        frame, t = source.read()
        stamps.append(t)
    source.close()
    assert source.loops == 1
    assert frame.shape == (144, 176, 3)
    # Paced, not as fast as decoding: on average no faster than the file's rate.
    assert (stamps[-1] - stamps[0]) / 14 >= 0.95 / 25
    assert source.read() is None  # closed


def test_missing_camera_is_a_status_not_an_exception() -> None:
    camera = CameraSource(CameraConfig(device=97, retry_s=0.05))
    try:
        assert all(camera.read() is None for _ in range(5))
        assert not camera.status.ok
        assert "Camera 97" in camera.status.message and "retrying" in camera.status.message
    finally:
        camera.close()


def test_camera_unplugged_mid_stream_reconnects(clip: Path, tmp_path: Path) -> None:
    """A stream OpenCV opens by name stands in for a camera: it vanishes, then comes back."""
    stream = tmp_path / "camera.mp4"
    shutil.copy(clip, stream)
    camera = CameraSource(CameraConfig(device=str(stream), retry_s=0.05, read_failures_to_lost=2))
    try:
        assert camera.read() is not None and camera.status.ok
        stream.unlink()  # "unplugged": the stream ends and cannot be reopened
        while camera.read() is not None:
            pass
        for _ in range(5):
            assert camera.read() is None
        assert not camera.status.ok
        assert "reconnecting" in camera.status.message or "retrying" in camera.status.message
        shutil.copy(clip, stream)  # plugged back in
        deadline = time.monotonic() + 5
        got = None
        while got is None and time.monotonic() < deadline:
            got = camera.read()
        assert got is not None and camera.status.ok
        assert camera.reconnects == 1
    finally:
        camera.close()


def test_open_source_rejects_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="source video not found"):
        open_source(str(tmp_path / "nope.mp4"))
    (tmp_path / "bad.mp4").write_text("not a video")
    with pytest.raises(MediaError, match="not a video file"):
        open_source(str(tmp_path / "bad.mp4"))
    assert isinstance(open_source("3"), CameraSource)


# ------------------------------------------------------------------------------------------ recorder


def test_side_by_side_composition() -> None:
    size = canvas_size(Layout.SIDE_BY_SIDE, (256, 256), (640, 480))
    assert size == (256 + 341, 256)
    output = np.full((256, 256, 3), 200, np.uint8)
    driver = np.full((480, 640, 3), 50, np.uint8)
    frame = compose(Layout.SIDE_BY_SIDE, output, driver, size)
    assert frame.shape == (256, 597, 3)
    assert (frame[:, -256:] == 200).all() and (frame[128, 10] == 50).all()
    tall = np.full((300, 100, 3), 50, np.uint8)  # another camera shape: letterboxed into the same canvas
    assert compose(Layout.SIDE_BY_SIDE, output, tall, size).shape == (256, 597, 3)


def test_recorder_keeps_real_timing_and_counts_drops(tmp_path: Path) -> None:
    path = tmp_path / "rec.mp4"
    recorder = Recorder(path, Layout.SIDE_BY_SIDE, (64, 64), driver_size=(80, 60), queue_size=2)
    t0 = 500.0
    accepted = []
    for i in range(200):  # far faster than the encoder: the bounded queue overflows
        ok = recorder.submit(np.full((64, 64, 3), i, np.uint8), t0 + i * 0.05, np.zeros((60, 80, 3), np.uint8))
        if ok:
            accepted.append(t0 + i * 0.05)
    stats = recorder.stop()
    assert recorder.stop() == stats  # idempotent
    assert stats.error is None
    assert stats.frames_dropped == 200 - len(accepted) > 0
    assert stats.frames_written == len(accepted)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and (stream.width, stream.height) == (64 + 85 + 1, 64)
        times = [float(f.time) for f in container.decode(stream)]
    assert times == pytest.approx([t - accepted[0] for t in accepted], abs=1e-4)
    assert not recorder.submit(np.zeros((64, 64, 3), np.uint8), t0)  # stopped: refused, never blocks


def test_a_stopped_recorder_is_freed_without_the_cycle_collector(tmp_path: Path) -> None:
    # The session's callbacks close over the recorder they are given to (to tell which recording failed). Once
    # stopped, the recorder must not stay in that cycle: it holds its encoder's native memory, and the window's
    # process grew by each recording until a rare full collection (docs/robustness.md, the soak).
    gc.collect()
    gc.disable()
    try:
        seen: list = []

        def start() -> Recorder:  # as engine.session.sharing starts one: its callbacks close over it
            recorder = Recorder(tmp_path / "rec.mp4", Layout.SIDE_BY_SIDE, (64, 64), driver_size=(80, 60),
                                on_error=lambda message: seen.append((recorder, message)),
                                on_notice=lambda message: seen.append((recorder, message)))
            return recorder

        recorder = start()
        driver = np.zeros((60, 80, 3), np.uint8)
        for i in range(5):
            while not recorder.submit(np.full((64, 64, 3), i, np.uint8), 10.0 + i / 30, driver):
                time.sleep(0.005)
        assert recorder.stop().frames_written == 5
        alive = weakref.ref(recorder)
        del recorder
        assert alive() is None, "the stopped recorder (and its encoder) outlived its last reference"
        assert seen == []
    finally:
        gc.enable()


def test_recorder_reports_disk_full_once_and_keeps_the_start(tmp_path: Path) -> None:
    child = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(
            """
            import resource, signal, time
            import numpy as np
            from pathlib import Path
            from engine.media.recorder import Layout, Recorder
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (400_000, 400_000))
            errors = []
            rec = Recorder(Path("full.mp4"), Layout.OUTPUT, (160, 120), on_error=errors.append)
            rng = np.random.default_rng(0)
            for i in range(400):
                rec.submit(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8), i / 30)
                time.sleep(0.002)
            stats = rec.stop()
            print(len(errors), stats.frames_written)
            print(errors[0])
            """
        )],
        cwd=tmp_path, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr
    counts, message = child.stdout.splitlines()[:2]
    n_errors, written = (int(v) for v in counts.split())
    assert n_errors == 1 and "disk is full" in message and "playable" in message
    decoded = 0
    with av.open(str(tmp_path / "full.mp4")) as container:
        try:
            for _ in container.decode(video=0):
                decoded += 1
        except av.error.InvalidDataError:
            pass  # cut off mid-fragment
    assert 30 <= decoded <= written


def test_the_status_rate_never_exceeds_the_sources() -> None:
    """A 29.97 fps file once read "30.5 fps" in the status bar: outputs finish with a jitter of their own, and
    the rate counted up to `now` gains or loses an event where the window's edges fall. Captures come on the
    file's clock and read as its rate; outputs, a subset of them, never read above it."""
    from engine.live import LivePipeline

    pipeline = LivePipeline(on_result=lambda result: None)
    now = time.monotonic()
    interval = 1 / 29.97
    for k in range(59, -1, -1):  # 60 frames, the newest just captured
        captured = now - 0.05 - k * interval
        pipeline._captures.add(captured)
        # the first output in the window finished late, the last one early: 59 intervals in less time
        pipeline._outputs.add(captured + (0.035 if k == 59 else 0.005 if k == 0 else 0.02), 20.0)
    stats = pipeline.stats()
    assert 29.9 < stats.capture_fps <= 29.97 + 1e-6
    assert stats.fps <= stats.capture_fps
    time.sleep(0.6)  # nothing more comes: the rates fall instead of holding the last reading
    stalled = pipeline.stats()
    assert stalled.capture_fps < 29.0 and stalled.fps < 29.0
