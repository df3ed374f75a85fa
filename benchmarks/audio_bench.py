"""Sound in recordings, measured against a private PulseAudio (null sink → monitor = the microphone).

    .venv/bin/python -m benchmarks.audio_bench [--seconds 20]

Prints: (1) how well each way of stamping microphone blocks puts played clicks on the monotonic
clock (PortAudio's ADC time, as `engine.media.audio.Microphone` does, vs. the callback's arrival time
minus the block, with and without the reported latency); (2) the A/V offset of the clicks in a
recording against its video timeline (median, max, drift) and the dropouts; (3) the CPU cost of
capture and of AAC encoding per second of recording, next to the H.264 encoding of the same run.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from engine.media.audio import Microphone, find_microphone
from engine.media.recorder import Layout, Recorder
from engine.media.video_io import AudioFormat, H264Writer
from tests.audio_server import MIC, ClickPlayer, PrivatePulse, find_clicks

FPS = 30.0


def stamping_methods(seconds: float) -> None:
    """Clicks played at known times, found in raw callback blocks stamped three ways."""
    import sounddevice as sd

    rate, blocks = 48000, []

    def on_block(indata, frames, times, status) -> None:
        blocks.append((time.monotonic(), times.inputBufferAdcTime, times.currentTime, indata[:, 0].copy()))

    with sd.InputStream(device=MIC, samplerate=rate, channels=1, blocksize=480, latency="low", callback=on_block) as s:
        latency = s.latency
        _settle(blocks)
        start = time.monotonic() + 0.2
        with ClickPlayer([start + 0.25 * k for k in range(int(seconds * 4))]) as player:
            time.sleep(seconds + 0.5)
    arrival, adc, current = (np.array([b[i] for b in blocks]) for i in range(3))
    signal = np.concatenate([b[3] for b in blocks])
    first = np.cumsum([0] + [len(b[3]) for b in blocks])[:-1]
    offset = np.median(arrival - current)  # PortAudio's clock → monotonic
    methods = {"ADC time (used)": adc + offset, "arrival − block": arrival - 480 / rate,
               "arrival − block − latency": arrival - 480 / rate - latency}
    played = np.array(player.played)
    onsets = (find_clicks(signal, rate) * rate).astype(int)
    print(f"stamping ({len(played)} clicks, 10 ms blocks, reported input latency {latency * 1000:.0f} ms):")
    for name, stamps in methods.items():
        block = np.searchsorted(first, onsets, side="right") - 1
        heard = stamps[block] + (onsets - first[block]) / rate
        errors = np.array([h - played[np.argmin(np.abs(played - h))] for h in heard])
        spread = np.abs(errors - np.median(errors))
        print(f"  {name:<26} offset median {np.median(errors) * 1000:+6.2f} ms, |error − median| "
              f"p95 {np.percentile(spread, 95) * 1000:5.2f} ms, max {spread.max() * 1000:5.2f} ms")


def _settle(blocks: list, timeout_s: float = 10.0) -> None:
    """Wait until the stream is past PulseAudio's start-up backlog: 0.5 s of blocks whose ADC times follow on."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(0.1)
        adc = np.array([b[1] for b in blocks[-50:]])
        if len(blocks) > 150 and np.abs(np.diff(adc) - 0.01).max() < 0.002:
            return


def sync_and_cost(seconds: float, size: tuple[int, int], folder: Path, pulse_pid: int | None) -> None:
    mic = Microphone(find_microphone(MIC))
    while mic.blocks_captured == 0:
        time.sleep(0.05)
    idle_cpu = _cpu_seconds(lambda: time.sleep(5.0), pulse_pid)  # the microphone alone, nothing recorded
    runs = {}
    for with_sound in (False, True):
        path = folder / f"bench-{'sound' if with_sound else 'silent'}.mp4"
        recorder = Recorder(path, Layout.OUTPUT, size, fps_hint=FPS, audio=mic if with_sound else None)
        start = time.monotonic() + 0.3
        clicks = [start + 0.5 + 0.5 * k for k in range(int(seconds * 2) - 1)]
        frames = [np.random.default_rng(i).integers(0, 255, (size[1], size[0], 3), np.uint8) for i in range(8)]
        with ClickPlayer(clicks) as player:
            cpu = _cpu_seconds(lambda: _feed(recorder, start, seconds, frames), pulse_pid)
        stats = recorder.stop()
        runs[with_sound] = (cpu, stats, player.played, start, path)
    mic.close()

    cpu, stats, played, start, path = runs[True]
    with av.open(str(path)) as container:
        pts = [float(f.pts * f.time_base) for f in container.decode(video=0)]
    with av.open(str(path)) as container:
        frames = list(container.decode(audio=0))
        sound = np.concatenate([f.to_ndarray()[0] for f in frames])
        sound_start, rate = float(frames[0].pts * frames[0].time_base), frames[0].sample_rate
    origin = pts[1] - 1 / FPS  # file time of capture time `start` (frame 0 starts the file at 0)
    expected = origin + (np.array(played) - start)
    found = sound_start + find_clicks(sound, rate)
    n = min(len(found), len(expected))
    offsets = found[:n] - expected[:n]
    drift = np.median(offsets[-10:]) - np.median(offsets[:10])  # the last 5 s against the first 5 s
    print(f"recording {seconds:.0f} s at {FPS:.0f} fps, {size[0]}x{size[1]}, frames 100 ms late (a model):")
    print(f"  A/V offset over {n} clicks ({len(found)} found, {len(played)} played): median "
          f"{np.median(offsets) * 1000:+.2f} ms, max |offset| {np.abs(offsets).max() * 1000:.2f} ms, "
          f"drift {drift * 1000:+.2f} ms over {seconds:.0f} s")
    print(f"  dropouts: {stats.audio_dropouts} (silence filled + blocks lost), input overflows {mic.overflows}, "
          f"video frames dropped {stats.frames_dropped}")
    silent_cpu = runs[False][0]
    print("CPU seconds per second (this process; pulseaudio server separately):")
    print(f"  microphone capture alone: {idle_cpu[0] / 5.0:.4f} (server {idle_cpu[1] / 5.0:.4f})")
    print(f"  recording without sound:  {silent_cpu[0] / seconds:.4f}")
    print(f"  recording with sound:     {cpu[0] / seconds:.4f} (server {cpu[1] / seconds:.4f}) "
          f"→ sound adds {(cpu[0] - silent_cpu[0]) / seconds:+.4f} "
          f"({(cpu[0] / silent_cpu[0] - 1) * 100:+.1f} % of the recording's CPU)")
    aac = _aac_encode_cost(folder / "aac.mp4", 60.0)
    print(f"  AAC encoding alone (48 kHz mono): {aac:.4f} CPU s per second of sound")


def _feed(recorder: Recorder, start: float, seconds: float, frames: list[np.ndarray]) -> None:
    for i in range(int(seconds * FPS)):
        t = start + i / FPS
        time.sleep(max(0.0, t + 0.1 - time.monotonic()))
        recorder.submit(frames[i % len(frames)], t)


def _cpu_seconds(work, pulse_pid: int | None) -> tuple[float, float]:
    """(this process's CPU seconds, the pulseaudio server's) spent while `work()` runs."""
    server = lambda: _proc_cpu(pulse_pid) if pulse_pid else 0.0  # noqa: E731
    before, server_before = os.times(), server()
    work()
    after = os.times()
    return (after.user - before.user + after.system - before.system), server() - server_before


def _proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _aac_encode_cost(path: Path, seconds: float) -> float:
    """Thread CPU seconds to AAC-encode `seconds` of noise through the recorder's writer (tiny video)."""
    rate = 48000
    noise = (np.random.default_rng(0).standard_normal((rate // 100, 1)) * 0.1).astype(np.float32)
    writer = H264Writer.live(path, (16, 16), FPS, audio=AudioFormat(rate, 1))
    writer.write(np.zeros((16, 16, 3), np.uint8), t_seconds=0.0)
    begin = time.thread_time()
    for k in range(int(seconds * 100)):
        writer.write_audio(noise, k / 100)
    writer.write(np.zeros((16, 16, 3), np.uint8), t_seconds=seconds)
    writer.close()
    return (time.thread_time() - begin) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the recordings (and click train)")
    parser.add_argument("--size", default="512x512", help="recorded frame size WxH")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if line.startswith("Model name")), "?")
    print(f"CPU: {model}, {os.cpu_count()} cores; load {os.getloadavg()[0]:.2f} (1 min)")
    with PrivatePulse() as pulse, tempfile.TemporaryDirectory() as folder:
        stamping_methods(min(args.seconds, 10.0))
        sync_and_cost(args.seconds, size, Path(folder), pulse.pid)
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
