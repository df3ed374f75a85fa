"""Recordings with sound, against a real (private) PulseAudio: sync, no device, device lost, kill, a video's own track.

The sync test plays a click train into a null sink at known monotonic times while frames
with known capture times (and a model's latency) are recorded; it then finds the clicks in
the file and checks them against the video timeline. Run with `-s` to see the figures.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import av
import numpy as np
import pytest

from engine.media.audio import AudioError, FileAudio, Microphone, find_microphone, open_audio
from engine.media.camera import VideoFileSource
from engine.media.recorder import Layout, Recorder
from engine.session import Notice, Session
from engine.tasks import EventQueue
from tests.audio_server import MIC, ClickPlayer, PrivatePulse, find_clicks
from tests.support import clip_with_clicks

ROOT = Path(__file__).resolve().parents[1]
FPS = 30.0
SIZE = (64, 48)


@pytest.fixture
def mic(pulse: PrivatePulse):
    mic = Microphone(find_microphone(MIC))
    _wait_for_sound(mic)
    yield mic
    mic.close()


def _wait_for_sound(mic, settle_s: float = 0.2) -> None:
    deadline = time.monotonic() + 10.0
    while mic.blocks_captured == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert mic.blocks_captured, f"no sound from {mic.name}: {mic.status.message}"
    time.sleep(settle_s)


def _feed(recorder: Recorder, start: float, seconds: float, flashes: list[float], latency_s: float = 0.1,
          between=None) -> list[float]:
    """Submit frames captured at start + i/FPS, each `latency_s` late (the model); white when a flash is due."""
    times = []
    for i in range(int(seconds * FPS)):
        t = start + i / FPS
        if between is not None:
            between(t)
        time.sleep(max(0.0, t + latency_s - time.monotonic()))
        white = any(abs(t - f) < 0.5 / FPS for f in flashes)
        frame = np.full((SIZE[1], SIZE[0], 3), 255 if white else 0, np.uint8)
        assert recorder.submit(frame, t)
        times.append(t)
    return times


def _decode(path: Path) -> tuple[list[float], list[float], np.ndarray, float, int]:
    """(video pts s, brightness per frame, mono audio, audio start s, rate) of a recording."""
    with av.open(str(path)) as container:
        video = [(float(f.pts * f.time_base), float(f.to_ndarray(format="gray").mean()))
                 for f in container.decode(video=0)]
    audio, start, rate = np.zeros(0, np.float32), 0.0, 48000
    with av.open(str(path)) as container:
        if container.streams.audio:
            frames = list(container.decode(audio=0))
            rate = frames[0].sample_rate
            start = float(frames[0].pts * frames[0].time_base)
            audio = np.concatenate([f.to_ndarray().mean(axis=0) for f in frames])
    return [p for p, _ in video], [b for _, b in video], audio, start, rate


@pytest.mark.slow
def test_clicks_line_up_with_the_video_timeline_over_20_s(mic: Microphone, tmp_path: Path) -> None:
    out = tmp_path / "sync.mp4"
    recorder = Recorder(out, Layout.OUTPUT, SIZE, fps_hint=FPS, audio=mic)
    start = time.monotonic() + 0.3
    clicks = [start + 0.5 + 0.5 * k for k in range(40)]  # 20 s of clicks, two a second
    with ClickPlayer(clicks) as player:
        captured = _feed(recorder, start, 20.6, clicks)
    stats = recorder.stop()
    assert stats.error is None and stats.frames_dropped == 0 and stats.audio_notice is None

    pts, brightness, audio, audio_start, rate = _decode(out)
    assert len(pts) == len(captured)
    # The output frame of capture time t is shown at t in the file (within one 90 kHz tick); only the
    # first frame starts the file at 0, a bit earlier (the MP4 muxer starts every track at 0).
    video_origin = np.array(pts[1:]) - (np.array(captured[1:]) - captured[0])  # file time of capture time captured[0]
    assert np.ptp(video_origin) < 2 / 90000 and pts[0] <= video_origin[0]
    played = np.array(player.played)
    expected = video_origin[0] + (played - captured[0])
    found = audio_start + find_clicks(audio, rate)
    assert len(found) == len(played), f"{len(found)} clicks found in the file, {len(played)} played"
    offsets = found - expected
    drift = np.median(offsets[-10:]) - np.median(offsets[:10])  # the last 5 s against the first 5 s
    print(f"\nA/V offset over {len(offsets)} clicks: median {np.median(offsets) * 1000:+.2f} ms, "
          f"max |offset| {np.abs(offsets).max() * 1000:.2f} ms, drift {drift * 1000:+.2f} ms over 20 s, "
          f"dropouts {stats.audio_dropouts}, overflows {mic.overflows}, player underflows {player.underflows}")
    assert np.abs(offsets).max() < 1 / FPS
    assert abs(drift) < 0.010
    # And the flashed frames (nearest the clicks) are where the clicks are heard, within half a frame.
    flashes = np.array(pts)[np.array(brightness) > 128]
    assert len(flashes) == len(clicks)  # (a click due before the player's stream ran is not played)
    nearest = flashes[np.abs(flashes[None, :] - found[:, None]).argmin(axis=1)]
    assert np.abs(nearest - found).max() <= 0.5 / FPS + 0.002


def test_no_device_is_a_clear_error_and_none_records_without_sound(pulse: PrivatePulse, tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="microphone 'no such mic' not found; available: .*pulse"):
        open_audio("no such mic")
    assert open_audio("none") is None and open_audio(None) is None
    with pytest.raises(AudioError, match="needs a video file"):
        open_audio("source")
    recorder = Recorder(tmp_path / "silent.mp4", Layout.OUTPUT, SIZE, fps_hint=FPS, audio=None)
    _feed(recorder, time.monotonic(), 1.0, [], latency_s=0.0)
    stats = recorder.stop()
    assert stats.audio_s == 0 and stats.error is None
    with av.open(str(tmp_path / "silent.mp4")) as container:
        assert [s.type for s in container.streams] == ["video"]


def test_device_removed_mid_recording_keeps_the_video_going(pulse: PrivatePulse, mic: Microphone,
                                                            tmp_path: Path) -> None:
    notices: list[str] = []
    recorder = Recorder(tmp_path / "lost.mp4", Layout.SIDE_BY_SIDE, SIZE, driver_size=(32, 24), fps_hint=FPS,
                        audio=mic, on_notice=notices.append)  # side by side: the same, with sound
    start = time.monotonic()
    removed: list[float] = []

    def unplug_once(t: float) -> None:
        if not removed and t > start + 1.5:
            pulse.remove_sink()
            removed.append(time.monotonic())

    try:
        _feed(recorder, start, 3.0, [], latency_s=0.0, between=unplug_once)
        stats = recorder.stop()
    finally:
        pulse.add_sink()
    assert stats.error is None
    assert notices and "continues without sound" in notices[0] and stats.audio_notice == notices[0]
    assert "lost" in mic.status.message and not mic.status.ok
    pts, _, audio, _, rate = _decode(tmp_path / "lost.mp4")
    assert len(pts) == stats.frames_written == int(3.0 * FPS)  # every frame, before and after the loss
    assert 1.2 < len(audio) / rate < 2.3  # the sound up to the loss is kept


KILLED_CHILD = textwrap.dedent("""
    import sys, time
    import numpy as np
    from engine.media.audio import Microphone, find_microphone
    from engine.media.recorder import Layout, Recorder
    mic = Microphone(find_microphone("pulse"))
    while mic.blocks_captured == 0:
        time.sleep(0.05)
    time.sleep(0.2)
    recorder = Recorder(sys.argv[1], Layout.OUTPUT, (64, 48), fps_hint=30, audio=mic)
    start = time.monotonic()
    print("recording", start, flush=True)
    for i in range(100000):
        t = start + i / 30
        time.sleep(max(0.0, t - time.monotonic()))
        recorder.submit(np.full((48, 64, 3), (i * 7) % 256, np.uint8), t)
""")


def test_killed_recording_plays_with_sound_up_to_the_last_fragment(pulse: PrivatePulse, tmp_path: Path) -> None:
    out = tmp_path / "killed.mp4"
    errors = tmp_path / "child.log"
    with errors.open("w") as log:
        child = subprocess.Popen([sys.executable, "-c", KILLED_CHILD, str(out)], cwd=ROOT, stdout=subprocess.PIPE,
                                 stderr=log, text=True)
    try:
        line = child.stdout.readline()
        assert line.startswith("recording"), f"child did not start recording: {errors.read_text()[-1500:]}"
        start = float(line.split()[1])
        clicks = [start + 0.5 * k for k in range(1, 7)]
        with ClickPlayer(clicks):
            time.sleep(max(0.0, start + 3.6 - time.monotonic()))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
    pts, _, audio, audio_start, rate = _decode(out)
    video_end = pts[-1] + 1 / 30
    audio_end = audio_start + len(audio) / rate
    print(f"\nkilled at 3.6 s: {len(pts)} frames ({video_end:.2f} s) and {audio_end:.2f} s of sound play")
    assert video_end >= 2.0  # all but the last (unfinished) fragment of one second
    assert audio_end >= video_end - 0.6  # sound up to the last fragment, too
    assert len(find_clicks(audio, rate)) >= 3


def test_a_video_sources_own_audio_is_the_microphone_through_a_loop(tmp_path: Path) -> None:
    clip = tmp_path / "talking.mp4"
    clip_with_clicks(clip, 1.5, [0.5, 1.0])
    source = VideoFileSource(clip)
    sound = FileAudio(source)
    recorder: Recorder | None = None
    try:
        first = source.read()  # the video starts; its sound follows from the same moment
        assert first is not None
        recorder = Recorder(tmp_path / "out.mp4", Layout.OUTPUT, SIZE, fps_hint=FPS, audio=sound)
        recorder.submit(*first)
        for _ in range(45 + 40 - 1):  # one pass of 45 frames and well into the second
            frame = source.read()
            assert frame is not None
            recorder.submit(*frame)
        stats = recorder.stop()
    finally:
        if recorder is not None:
            recorder.stop()
        sound.close()
        source.close()
    assert stats.error is None
    pts, brightness, audio, audio_start, rate = _decode(tmp_path / "out.mp4")
    flashes = np.array(pts)[np.array(brightness) > 128]
    found = audio_start + find_clicks(audio, rate)
    assert len(flashes) == len(found) == 4  # two clicks per pass, two passes
    assert np.abs(found - flashes).max() < 1 / FPS


def test_session_switches_sound_and_reports_a_missing_device(pulse: PrivatePulse) -> None:
    queue, events = EventQueue(), []
    session = Session(lambda pack, progress: None, queue.post)
    session.subscribe(events.append)
    try:
        session.use_audio(MIC)
        assert queue.pump(lambda: session.state.audio is not None, 30.0)
        assert isinstance(session.state.audio, Microphone) and not session.busy
        session.use_audio("no such mic")
        assert queue.pump(lambda: not session.busy, 30.0)
        assert session.state.audio is None and session.state.audio_message.startswith("No sound: microphone")
        warnings = [e.text for e in events if isinstance(e, Notice) and e.kind == "warning"]
        assert warnings and "recordings will be silent" in warnings[-1]
        session.use_audio("none")
        assert session.state.audio is None and session.state.audio_message == "Recordings are silent."
    finally:
        session.close()


@pytest.mark.parametrize("low_latency", [False, True])
def test_a_render_with_the_sources_sound_keeps_it_on_the_picture(tmp_path: Path, low_latency: bool) -> None:
    """The offline path (H264Writer.constant_rate with audio_from): clicks stay on their flashes, B-frames or not."""
    from engine.media.video_io import H264Writer, VideoReader, X264Options

    source, out = tmp_path / "talking.mp4", tmp_path / "rendered.mp4"
    clip_with_clicks(source, 3.0, [1.0, 2.0])
    with VideoReader(source) as video, H264Writer.constant_rate(
            out, video.fps, video.size, audio_from=source, x264=X264Options(low_latency=low_latency)) as writer:
        for frame in video:
            writer.write(frame)
    pts, brightness, audio, audio_start, rate = _decode(out)
    flashes = np.array(pts)[np.array(brightness) > 128]
    found = audio_start + find_clicks(audio, rate)
    assert len(flashes) == len(found) == 2
    assert np.abs(found - flashes).max() < 0.005


def test_video_keeps_reaching_the_disk_after_the_sound_stops(tmp_path: Path) -> None:
    """A microphone lost mid-recording must not hold the video back in the muxer (what a kill would lose)."""
    from engine.media.video_io import AudioFormat, H264Writer

    path = tmp_path / "sound stopped.mp4"
    writer = H264Writer.live(path, SIZE, FPS, audio=AudioFormat(48000, 1))
    for i in range(int(5 * FPS)):
        t = i / FPS
        if t < 1.0:
            writer.write_audio(np.zeros((1600, 1), np.float32), t)
        writer.write(np.full((SIZE[1], SIZE[0], 3), i % 255, np.uint8), t_seconds=t)
    snapshot = tmp_path / "as a kill would leave it.mp4"
    snapshot.write_bytes(path.read_bytes())  # the file as it is on disk before close()
    writer.close()
    with av.open(str(snapshot)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert frames >= int(3.5 * FPS)  # all but the last fragment of 5 s, though the sound stopped at 1 s
