"""Small media files made by the tests (nothing binary is committed): videos with a display rotation, a sound
track that does not decode, a picture track that breaks part-way; used by test_media_tracks and the media fuzzer."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from engine.media.video_io import VideoReader


def marked_frame(i: int, width: int = 64, height: int = 48) -> np.ndarray:
    """A frame whose orientation shows: a white bar along its left edge, a red block in its top-right corner."""
    image = np.full((height, width, 3), 40 + (i * 7) % 100, np.uint8)
    image[:, : width // 8] = 255
    image[: height // 4, -width // 4:] = (255, 0, 0)
    return image


PIXEL_FORMATS = {"mjpeg": "yuvj420p", "gif": "rgb8"}
SOUND_CODECS = {".mp4": "aac", ".mov": "aac", ".webm": "libopus", ".mkv": "libopus", ".avi": "pcm_s16le"}


def write_video(path: Path, frames: list[np.ndarray], fps: int = 10, codec: str = "libx264", rotation: int = 0,
                hflip: bool = False, sound: str | None = None, sound_s: float = 1.0) -> Path:
    """`frames` (RGB uint8, all one size) as a video; `rotation` (counter-clockwise degrees) and `hflip` as the
    stream's display matrix; `sound`: None, "tone" (a real track in the container's usual codec) or "bogus"
    (AAC packets of random bytes)."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        video = container.add_stream(codec, rate=fps)
        video.width, video.height = width, height
        video.pix_fmt = PIXEL_FORMATS.get(codec, "yuv420p")
        if rotation or hflip:
            video.set_display_rotation(rotation, hflip=hflip)
        audio = None
        if sound is not None:
            sound_codec = "aac" if sound == "bogus" else SOUND_CODECS[path.suffix.lower()]
            audio = container.add_stream(sound_codec, rate=48000 if sound_codec == "libopus" else 16000)
            audio.layout = "mono"
        for image in frames:
            container.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(video.encode(None))
        if sound == "tone":
            _encode_tone(container, audio, sound_s)
        elif sound == "bogus":
            rng = np.random.default_rng(0)
            for k in range(int(sound_s * 16000 / 1024)):
                packet = av.Packet(rng.integers(0, 256, 200, dtype=np.uint8).tobytes())
                packet.stream = audio
                packet.pts = packet.dts = k * 1024
                packet.time_base = Fraction(1, 16000)
                container.mux(packet)
    return path


def _encode_tone(container: av.container.OutputContainer, stream: av.AudioStream, seconds: float) -> None:
    """A 440 Hz tone in the stream's own sample format and frame size."""
    rate = stream.codec_context.sample_rate
    step = stream.codec_context.frame_size or 1024
    t = np.arange(int(rate * seconds)) / rate
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
    resampler = av.AudioResampler(format=stream.codec_context.format, layout="mono", rate=rate)
    for start in range(0, tone.shape[1] - step + 1, step):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, start:start + step]), format="fltp",
                                           layout="mono")
        frame.sample_rate = rate
        frame.pts = start
        for out in resampler.resample(frame):
            container.mux(stream.encode(out))
    container.mux(stream.encode(None))


def write_broken_mjpeg(path: Path, frames: list[np.ndarray], broken_from: int, fps: int = 10) -> Path:
    """An MJPEG .avi whose packets from `broken_from` on are random bytes: the picture fails to decode there."""
    good = path.with_name(path.stem + ".good.avi")
    write_video(good, frames, fps=fps, codec="mjpeg")
    rng = np.random.default_rng(1)
    with av.open(str(good)) as src, av.open(str(path), "w") as dst:
        stream_in = src.streams.video[0]
        stream_out = dst.add_stream_from_template(stream_in)
        for index, packet in enumerate(p for p in src.demux(stream_in) if p.size):
            if index >= broken_from:
                broken = av.Packet(b"\xff\xd8" + rng.integers(0, 256, packet.size, dtype=np.uint8).tobytes())
                broken.pts, broken.dts, broken.time_base = packet.pts, packet.dts, packet.time_base
                broken.is_keyframe = True
                packet = broken
            packet.stream = stream_out
            dst.mux(packet)
    good.unlink()
    return path


def decoded_frames(path: Path) -> list[np.ndarray]:
    with VideoReader(path) as video:
        return list(video)


def has_sound(path: Path) -> bool:
    with av.open(str(path)) as container:
        return bool(container.streams.audio)
