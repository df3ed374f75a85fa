"""Video and image files: read frames (PyAV), write crash-safe H.264 MP4, read/write images.

Frames are RGB ``uint8`` arrays [H, W, 3]. Every failure a user can cause (missing
file, not a video, unwritable folder, disk full) raises `MediaError` with one line.

`H264Writer` writes a *fragmented* MP4: the index travels with every fragment, so a
file cut short by a crash, a kill or a full disk still plays up to its last fragment.
It carries sound either from a source video (`audio_from`) or live (`live_audio`): AAC
blocks placed by their capture times on the same timeline as the frames.
"""
from __future__ import annotations

import errno
import io
import logging
import math
import warnings
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from engine.errors import MediaError
from engine.output_file import check_output, write_bytes
from engine.values import MIN_IMAGE_SIDE

log = logging.getLogger(__name__)

# Fragmented MP4: playable when cut off, no trailing index to write at the end.
FRAGMENTED_MP4 = {"movflags": "frag_keyframe+empty_moov+default_base_moof"}
TIMESTAMP_TIME_BASE = Fraction(1, 90000)  # PTS unit when frames carry real timestamps
MP4_AUDIO_CODECS = {"aac", "mp3", "alac", "opus"}  # copied as is; anything else is transcoded to AAC
AUDIO_LEAD_S = 0.5  # audio is muxed this far ahead of the video so both stay interleaved
AUDIO_HOLD_S = 5.0  # live sound waits at most this long for the video (a stalled camera) before it is written
AAC_PRIMING = 1024  # samples the AAC encoder emits before the first real one (its delay)
AUDIO_SYNC_TOLERANCE_S = 0.010  # live sound further off its capture time than this is re-placed (gap/overlap)


@dataclass(frozen=True)
class AudioFormat:
    rate: int  # samples per second
    channels: int  # 1 (mono) or 2 (stereo)


def as_fraction(fps: float | Fraction) -> Fraction:
    """Frame rate as an exact fraction (29.97 → 2997/100; 30000/1001 stays as is)."""
    rate = fps if isinstance(fps, Fraction) else Fraction(fps).limit_denominator(1001)
    if rate <= 0:
        raise ValueError(f"frame rate must be positive, got {fps}")
    return rate


def _describe_os_error(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return "the disk is full (or the file size limit was reached)"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "permission denied (the folder is not writable)"
    return exc.strerror or str(exc)


# ------------------------------------------------------------------------------------------- images


MAX_IMAGE_PIXELS = 100_000_000  # 10000x10000; decoding one takes 300 MB, a 40000² one would take 4.8 GB


def read_image(path: Path | str) -> np.ndarray:
    """An image file as RGB uint8 [H, W, 3] (any path, unicode included; EXIF orientation applied).
    Its size is read from the header first: one over MAX_IMAGE_PIXELS is refused before decoding."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise MediaError(f"image not found: {path}") from None
    except OSError as exc:
        raise MediaError(f"cannot read image {path}: {exc.strerror or exc}") from None
    _check_image_size(data, path)
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    except cv2.error:
        image = None
    if image is None:
        raise MediaError(f"cannot read image {path}: not an image file (expected PNG, JPEG, WebP, BMP or TIFF)")
    check_picture_size(image.shape[1], image.shape[0], f"image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def check_picture_size(width: int, height: int, what: str) -> None:
    """Refuse a picture too small to hold a face (MIN_IMAGE_SIDE): face detection, the crop and the warp
    divide by its size. `what` names it in the one-line error ("image portrait.png", "video clip.mp4")."""
    if min(width, height) < MIN_IMAGE_SIDE:
        raise MediaError(f"cannot use {what}: it is {width}x{height} pixels, too small for a face "
                         f"(at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE})")


def _check_image_size(data: bytes, path: Path) -> None:
    """Refuse an image whose header declares more than MAX_IMAGE_PIXELS (Pillow reads only the header)."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as header:
                width, height = header.size
    except Image.DecompressionBombError:  # Pillow's own limit (above ours) says no size
        width = height = None
    except Exception:  # noqa: BLE001 - not an image Pillow knows; OpenCV decides below
        return
    limit = f"more than the {MAX_IMAGE_PIXELS // 1_000_000} megapixels supported"
    if width is None or width * height > MAX_IMAGE_PIXELS:
        size = "far larger" if width is None else f"{width}x{height} pixels"
        raise MediaError(f"cannot read image {path}: it is {size}, {limit}")


def write_image(path: Path | str, image: np.ndarray) -> Path:
    """Write RGB uint8 [H, W, 3] to `path` (format from the suffix, e.g. .png) through the safe output
    writer (never over a device/FIFO/folder; a temporary file renamed into place); returns the path."""
    path = Path(path)
    try:
        ok, data = cv2.imencode(path.suffix or ".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    except cv2.error:
        ok = False
    if not ok:
        raise MediaError(f"cannot encode image {path}: unknown image format {path.suffix!r}")
    return write_bytes(path, data.tobytes(), what="image")


# ------------------------------------------------------------------------------------------ reading


class VideoReader:
    """Decode a video file frame by frame, upright: the stream's display rotation and mirroring (a phone's
    portrait video is stored sideways with a display matrix) are applied to every frame.

    >>> with VideoReader("clip.mp4") as video:
    ...     for frame in video:          # RGB uint8 [H, W, 3], as a player shows it
    ...         ...

    The first frame is decoded when the file is opened: a file whose picture cannot be decoded at all, or is
    too small for a face, is refused there. A failure later names the frame (`DecodeError.frame`).
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise MediaError(f"video not found: {self.path}")
        try:
            self._container = av.open(str(self.path), "r")
        except (av.error.FFmpegError, OSError) as exc:
            raise MediaError(f"cannot read {self.path}: not a video file ({_short(exc)})") from None
        try:
            self._open_stream()
        except BaseException:
            self._container.close()
            raise

    def _open_stream(self) -> None:
        if not self._container.streams.video:
            raise MediaError(f"cannot read {self.path}: the file has no video stream")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.fps: Fraction = Fraction(rate) if rate and 0 < rate < 1000 else Fraction(30)
        self.has_audio: bool = bool(self._container.streams.audio)
        self._decoded = self._decode()
        first = next(self._decoded, None)
        if first is None:
            raise MediaError(f"cannot read {self.path}: its video track has no frames")
        self._first: tuple[np.ndarray, float] | None = first
        height, width = first[0].shape[:2]
        check_picture_size(width, height, f"video {self.path}")
        self.size: tuple[int, int] = (width, height)  # as shown (after the display rotation)

    def _decode(self) -> Iterator[tuple[np.ndarray, float]]:
        """(upright frame, its time in seconds) in decode order; DecodeError names the frame that failed."""
        index = 0
        orientation: Orientation | None = None
        packets = self._container.demux(self._stream)
        while True:
            try:
                packet = next(packets, None)
                frames = packet.decode() if packet is not None else []
            except (av.error.FFmpegError, MemoryError, ValueError) as exc:
                raise DecodeError(self.path, index, _short(exc)) from None
            if packet is None:
                return
            for frame in frames:
                if orientation is None:  # the stream's display matrix travels with its frames
                    orientation = self.orientation = _orientation(_display_matrix(frame))
                t = float(frame.time) if frame.time is not None else index / float(self.fps)
                try:
                    image = frame.to_ndarray(format="rgb24")
                except (av.error.FFmpegError, MemoryError, ValueError) as exc:
                    raise DecodeError(self.path, index, _short(exc)) from None
                index += 1
                yield orientation.apply(image), t

    @property
    def frame_count(self) -> int | None:
        """Frames in the stream, from the header or estimated from the duration; None when unknown."""
        if self._stream.frames:
            return int(self._stream.frames)
        duration = self.duration
        return round(duration * self.fps) if duration else None

    @property
    def duration(self) -> float | None:
        """Seconds, when the container says."""
        if self._stream.duration is not None and self._stream.time_base is not None:
            return float(self._stream.duration * self._stream.time_base)
        if self._container.duration is not None:
            return self._container.duration / av.time_base
        return None

    def timed_frames(self) -> Iterator[tuple[np.ndarray, float]]:
        """(frame, seconds since the first frame) in decode order; once per reader."""
        if self._first is None:
            raise RuntimeError("a VideoReader's frames can be read once")
        first, self._first = self._first, None
        start = first[1]
        yield first[0], 0.0
        for image, t in self._decoded:
            yield image, t - start

    def __iter__(self) -> Iterator[np.ndarray]:
        for frame, _ in self.timed_frames():
            yield frame

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class DecodeError(MediaError):
    """A frame of a video track could not be decoded (the frames before it were fine)."""

    def __init__(self, path: Path, frame: int, reason: str) -> None:
        super().__init__(f"cannot decode {path} at frame {frame + 1}: {reason}")
        self.path = path
        self.frame = frame  # 0-based index of the frame that failed = frames decoded before it


@dataclass(frozen=True)
class Orientation:
    """How to turn a stored frame upright: quarter turns counter-clockwise, then a mirror (FFmpeg's autorotate)."""

    quarter_turns: int = 0  # 0 … 3, counter-clockwise
    hflip: bool = False  # then mirrored left-right
    vflip: bool = False  # then mirrored top-bottom

    def apply(self, image: np.ndarray) -> np.ndarray:
        if self.quarter_turns:
            image = np.rot90(image, self.quarter_turns)
        if self.hflip:
            image = image[:, ::-1]
        if self.vflip:
            image = image[::-1]
        return np.ascontiguousarray(image) if self != UPRIGHT else image

    @property
    def degrees(self) -> int:
        return 90 * self.quarter_turns


UPRIGHT = Orientation()


def _display_matrix(frame: av.VideoFrame) -> tuple[int, ...] | None:
    """The frame's DISPLAYMATRIX side data (9 int32: 16.16 fixed point, the last column 2.30), if any."""
    try:
        for data in frame.side_data:
            if data.type == av.sidedata.sidedata.Type.DISPLAYMATRIX and len(bytes(data)) == 36:
                return tuple(np.frombuffer(bytes(data), "<i4").tolist())
    except (AttributeError, ValueError, av.error.FFmpegError):
        pass
    return None


def _orientation(matrix: tuple[int, ...] | None) -> Orientation:
    """FFmpeg's autorotate (fftools): the clockwise angle the matrix asks for, in quarter turns, and its mirrors.
    Angles other than quarter turns are left alone (no phone writes them)."""
    if matrix is None:
        return UPRIGHT
    m = [v / 65536 for v in matrix]
    scale_x, scale_y = math.hypot(m[0], m[3]), math.hypot(m[1], m[4])
    if scale_x == 0 or scale_y == 0:
        return UPRIGHT
    counter_clockwise = -math.degrees(math.atan2(m[1] / scale_y, m[0] / scale_x))  # av_display_rotation_get
    theta = -round(counter_clockwise)
    theta -= 360 * math.floor(theta / 360 + 0.9 / 360)  # clockwise, in [0, 360)
    if abs(theta - 90) < 1:  # transpose: "cclock_flip" (a plain transpose) or "clock"
        return Orientation(1, vflip=True) if matrix[3] > 0 else Orientation(3)
    if abs(theta - 270) < 1:  # transpose: "clock_flip" or "cclock"
        return Orientation(3, vflip=True) if matrix[3] < 0 else Orientation(1)
    if abs(theta - 180) < 1:
        return Orientation(0, hflip=matrix[0] < 0, vflip=matrix[4] < 0)
    if abs(theta) < 1:
        return Orientation(0, vflip=matrix[4] < 0)
    return UPRIGHT


def sound_track_problem(path: Path | str) -> str | None:
    """None when the first sound track of `path` demuxes and decodes to its end (or there is none); else why
    not, in a few words. Renders and recordings leave out a sound track that fails here instead of failing."""
    try:
        with av.open(str(path), "r") as container:
            if not container.streams.audio:
                return None
            stream = container.streams.audio[0]
            if stream.codec_context is None or not stream.codec_context.name:
                return "its codec is unknown"
            decoded = 0
            for packet in container.demux(stream):
                for _ in packet.decode():
                    decoded += 1
            return None if decoded else "it holds no sound that decodes"
    except (av.error.FFmpegError, MemoryError, ValueError, OSError) as exc:
        return _short(exc)


def _short(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc).splitlines()[0]


# ------------------------------------------------------------------------------------------ writing


def _open_fragmented_mp4(path: Path) -> av.container.OutputContainer:
    """The recorder's container (the path already passed check_output)."""
    try:
        return av.open(
            str(path), "w", format="mp4", options=FRAGMENTED_MP4,
            # max_interleave_delta: a stream that falls silent (microphone lost) holds the others back ≤ 1 s,
            # not the default 10 s, so a kill still finds the video written (measured: 4 of 5 s vs 0.9 s)
            container_options={"flush_packets": "1", "max_interleave_delta": "1000000"},
        )
    except (av.error.FFmpegError, OSError) as exc:
        raise MediaError(f"cannot write {path}: {_describe_os_error(exc)}") from None


class H264Writer:
    """H.264 (libx264, yuv420p) in a fragmented MP4, optionally with the audio of a source video.

    `write(frame)` places frames at a constant `fps`; `write(frame, t_seconds)` places them at
    their real capture times (the first frame is t=0), so a recording keeps real timing.
    Odd sizes are padded to even by repeating the last row/column. After a write error
    (e.g. disk full) the writer is closed and the frames already written remain playable.
    """

    def __init__(
        self,
        path: Path | str,
        fps: float | Fraction,
        size: tuple[int, int],  # (width, height) of the frames to be written
        audio_from: Path | None = None,  # a source video whose audio track is copied (or transcoded to AAC)
        *,
        live_audio: AudioFormat | None = None,  # sound passed to write_audio() with capture times (AAC)
        crf: int = 20,  # x264 quality: 0 lossless … 51 worst; 18–23 looks transparent
        preset: str = "veryfast",  # x264 speed/size trade-off
        keyframe_interval_s: float = 1.0,  # max seconds between keyframes = fragments = what a crash can lose
        low_latency: bool = False,  # x264 zerolatency: frames leave the encoder at once (live recording)
    ) -> None:
        if audio_from is not None and live_audio is not None:
            raise ValueError("a file gets its sound from a source video or live, not both")
        self.path = Path(path)
        self.fps = as_fraction(fps)
        self.size = (int(size[0]), int(size[1]))
        if min(self.size) < 2:
            raise ValueError(f"frame size must be at least 2x2, got {self.size}")
        self._coded_size = (self.size[0] + self.size[0] % 2, self.size[1] + self.size[1] % 2)
        self._x264 = {"crf": str(crf), "preset": preset, **({"tune": "zerolatency"} if low_latency else {})}
        if audio_from is not None or live_audio is not None:
            # A fragmented MP4 has no edit list to carry B-frames' reordering delay: each track starts at
            # its own first timestamp, and the picture would trail the sound by two frames.
            self._x264["bf"] = "0"
        self._keyframe_interval_s = keyframe_interval_s
        self.frames_written = 0
        self._timestamped: bool | None = None  # decided by the first write
        self._t0 = 0.0
        self._last_pts = -1
        self._last_key_t = -math.inf
        self._last_t = 0.0
        self._stream: av.VideoStream | None = None
        self._closed = False
        self._error: MediaError | None = None

        check_output(self.path)  # a regular file or nothing, in a writable folder
        self._container = _open_fragmented_mp4(self.path)
        self._audio = _AudioPass(Path(audio_from), self._container) if audio_from is not None else None
        self._live = _LiveAudio(live_audio, self._container) if live_audio is not None else None

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def duration(self) -> float:
        """Seconds of video written so far (last frame's time + one frame)."""
        return self._last_t + 1 / float(self.fps) if self.frames_written else 0.0

    def write(self, frame: np.ndarray, t_seconds: float | None = None) -> None:
        """Append one RGB uint8 [H, W, 3] frame; `t_seconds`: its real time (any origin), or None."""
        if self._error is not None:
            raise self._error
        if self._closed:
            raise MediaError(f"cannot write {self.path}: the recording is already closed")
        h, w = frame.shape[:2]
        if (w, h) != self.size or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"expected RGB uint8 {self.size[1]}x{self.size[0]}x3 frames, got {frame.dtype} {frame.shape}")
        timestamped = t_seconds is not None
        if self._timestamped is None:
            self._start(timestamped, t_seconds)
        elif timestamped != self._timestamped:
            raise ValueError("mixing timestamped and constant-rate frames in one file")

        assert self._stream is not None
        if timestamped:
            t = float(t_seconds) - self._t0
            shift = self._live.lead_s if self._live is not None else 0.0  # the AAC delay, so sound and picture align
            pts = max(round((t + shift) / TIMESTAMP_TIME_BASE), self._last_pts + 1)  # strictly increasing
        else:
            pts = self.frames_written
            t = pts / float(self.fps)
        video_frame = av.VideoFrame.from_ndarray(self._pad_even(frame), format="rgb24")
        video_frame.pts = pts
        video_frame.time_base = self._stream.codec_context.time_base
        if t - self._last_key_t >= self._keyframe_interval_s:
            video_frame.pict_type = av.video.frame.PictureType.I
            self._last_key_t = t
        self._guard(lambda: self._mux_video(video_frame, t))
        self._last_pts = pts
        self._last_t = t
        self.frames_written += 1

    def write_audio(self, samples: np.ndarray, t_seconds: float) -> None:
        """Append live sound: float32 [frames, channels] whose first sample was captured at `t_seconds`.

        The clock is the one of write()'s `t_seconds`; sound before the first frame is cut off.
        """
        if self._live is None:
            raise ValueError("this writer was opened without live_audio")
        if self._error is not None:
            raise self._error
        if self._closed:
            raise MediaError(f"cannot write {self.path}: the recording is already closed")
        self._live.push(samples, float(t_seconds))
        if self._live.started:
            self._guard(lambda: self._live.mux_until(max(self._last_t + AUDIO_LEAD_S, self._live.queued_until_s - AUDIO_HOLD_S)))

    @property
    def audio_seconds(self) -> float:
        """Seconds of live sound encoded so far (0 without live audio)."""
        return self._live.encoded_s if self._live is not None else 0.0

    @property
    def audio_gaps(self) -> int:
        """Times live sound was missing (a dropout) and silence was put in its place."""
        return self._live.gaps if self._live is not None else 0

    def close(self) -> None:
        """Flush the encoder, finish the audio and close the file. Idempotent."""
        if self._closed:
            return
        try:
            if self._error is None and self._stream is not None:
                self._guard(self._finish)
        finally:
            self._closed = True
            self._release()

    def __enter__(self) -> "H264Writer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ internals

    def _start(self, timestamped: bool, t_seconds: float | None) -> None:
        self._timestamped = timestamped
        self._t0 = float(t_seconds) if timestamped else 0.0
        stream = self._container.add_stream("libx264", rate=self.fps, options=self._x264)
        stream.width, stream.height = self._coded_size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = TIMESTAMP_TIME_BASE if timestamped else 1 / self.fps
        stream.time_base = stream.codec_context.time_base
        # Keyframes are forced by time (above); x264's own GOP limit only as a backstop.
        stream.codec_context.gop_size = max(1, round(float(self.fps) * self._keyframe_interval_s * 2))
        self._stream = stream
        if self._audio is not None:
            self._audio.add_stream()
        if self._live is not None:
            if not timestamped:
                raise ValueError("live audio needs frames with real timestamps")
            self._live.add_stream()
            self._live.start(self._t0)

    def _pad_even(self, frame: np.ndarray) -> np.ndarray:
        w, h = self.size
        if (w, h) == self._coded_size:
            return frame
        return np.pad(frame, ((0, self._coded_size[1] - h), (0, self._coded_size[0] - w), (0, 0)), mode="edge")

    def _mux_video(self, video_frame: av.VideoFrame | None, t: float) -> None:
        assert self._stream is not None
        if self._audio is not None:
            self._audio.mux_until(t + AUDIO_LEAD_S)
        if self._live is not None:
            self._live.mux_until(t + AUDIO_LEAD_S)
        self._container.mux(self._stream.encode(video_frame))

    def _finish(self) -> None:
        assert self._stream is not None
        self._container.mux(self._stream.encode(None))
        if self._audio is not None:
            self._audio.mux_until(self.duration)
            self._audio.flush()
        if self._live is not None:
            self._live.mux_until(self.duration)
            self._live.flush()

    def _guard(self, step) -> None:
        """Run an encoding step; turn I/O failures into one MediaError and close the file."""
        try:
            step()
        except (av.error.FFmpegError, OSError) as exc:
            kept = self.path.is_file() and self.path.stat().st_size > 0
            self._error = MediaError(
                f"recording to {self.path} stopped after {self.frames_written} frames: {_describe_os_error(exc)}"
                + (" (the part that reached the disk is playable)" if kept else "; nothing playable was written")
            )
            self._closed = True
            self._release()
            raise self._error from None

    def _release(self) -> None:
        if self._audio is not None:
            self._audio.close()
        try:
            self._container.close()
        except (av.error.FFmpegError, OSError) as exc:  # e.g. disk still full while writing the last fragment
            log.warning("closing %s: %s", self.path, _describe_os_error(exc))


class _AudioPass:
    """Carries a source video's audio into the output, interleaved with the video as it is written."""

    def __init__(self, source: Path, output: av.container.OutputContainer) -> None:
        self.source = source
        self._output = output
        try:
            self._input = av.open(str(source), "r")
        except (av.error.FFmpegError, OSError) as exc:
            raise MediaError(f"cannot read audio from {source}: {_short(exc)}") from None
        self._in_stream = self._input.streams.audio[0] if self._input.streams.audio else None
        self._out_stream = None
        self._copy = False
        self._packets: Iterator[av.Packet] | None = None
        self._pending: av.Packet | None = None

    def add_stream(self) -> None:
        src = self._in_stream
        if src is None:
            return  # the source is silent: a video-only file
        self._copy = src.codec_context.name in MP4_AUDIO_CODECS
        if self._copy:
            self._out_stream = self._output.add_stream_from_template(src)
        else:
            self._out_stream = self._output.add_stream("aac", rate=src.codec_context.sample_rate)
            self._out_stream.layout = "mono" if src.codec_context.layout.nb_channels == 1 else "stereo"
        self._packets = self._input.demux(src)

    def mux_until(self, t_end: float) -> None:
        """Move the source's audio up to `t_end` seconds into the output."""
        if self._packets is None:
            return
        while True:
            packet = self._pending if self._pending is not None else next(self._packets, None)
            self._pending = None
            if packet is None:
                self._packets = None
                return
            if packet.dts is None and packet.size == 0:
                continue  # demuxer's end-of-stream marker
            if packet.pts is not None and packet.time_base is not None and float(packet.pts * packet.time_base) > t_end:
                self._pending = packet
                return
            self._mux(packet)

    def _mux(self, packet: av.Packet) -> None:
        assert self._out_stream is not None
        if self._copy:
            packet.stream = self._out_stream
            self._output.mux(packet)
            return
        for frame in packet.decode():
            frame.pts = None  # the AAC encoder numbers its own frames
            self._output.mux(self._out_stream.encode(frame))

    def flush(self) -> None:
        if self._out_stream is not None and not self._copy:
            self._output.mux(self._out_stream.encode(None))

    def close(self) -> None:
        self._input.close()


class _LiveAudio:
    """Live sound into the output: each block placed by its capture time on the video's timeline.

    Blocks follow each other sample by sample while their stamps agree with that (within
    AUDIO_SYNC_TOLERANCE_S, judged on the median of the last few, so stamp jitter never
    clicks); a dropout is filled with silence and an overlap is cut, so the sound never drifts
    away from the picture. Encoding follows the video (`mux_until`), which keeps both interleaved.
    """

    def __init__(self, fmt: AudioFormat, output: av.container.OutputContainer) -> None:
        if fmt.channels not in (1, 2):
            raise ValueError(f"live audio must be mono or stereo, got {fmt.channels} channels")
        self.format = fmt
        self.lead_s = AAC_PRIMING / fmt.rate  # every timestamp is shifted by the encoder delay, none negative
        self.gaps = 0
        self.overlaps = 0
        self._output = output
        self._stream: av.AudioStream | None = None
        self._t0: float | None = None
        self._pending: deque[tuple[np.ndarray, float]] = deque()  # blocks before the first frame
        self._queue: deque[np.ndarray] = deque()  # placed samples waiting for the encoder
        self._queued = 0
        self._encoded = 0
        self._errors: deque[int] = deque(maxlen=5)  # recent (stamped − placed) positions, in samples

    @property
    def started(self) -> bool:
        return self._t0 is not None

    @property
    def encoded_s(self) -> float:
        return self._encoded / self.format.rate

    @property
    def queued_until_s(self) -> float:
        return (self._encoded + self._queued) / self.format.rate

    def add_stream(self) -> None:
        stream = self._output.add_stream("aac", rate=self.format.rate)
        stream.layout = "mono" if self.format.channels == 1 else "stereo"
        stream.time_base = Fraction(1, self.format.rate)
        self._stream = stream

    def start(self, t0: float) -> None:
        """The first frame's time: sound is placed relative to it, anything earlier is cut off."""
        self._t0 = t0
        while self._pending:
            self.push(*self._pending.popleft())

    def push(self, samples: np.ndarray, t: float) -> None:
        samples = np.asarray(samples, np.float32).reshape(-1, self.format.channels)
        if self._t0 is None:
            self._pending.append((samples, t))
            while t - self._pending[0][1] > AUDIO_HOLD_S:
                self._pending.popleft()
            return
        end = self._encoded + self._queued  # where the next sample goes
        error = round((t - self._t0) * self.format.rate) - end
        self._errors.append(error)
        if end == 0:  # the first block goes exactly where its stamp says
            correction = error
        else:
            correction = int(np.median(self._errors))
            if abs(correction) <= AUDIO_SYNC_TOLERANCE_S * self.format.rate:
                correction = 0
            elif correction > 0:
                self.gaps += 1
            else:
                self.overlaps += 1
        if correction:
            self._errors = deque((e - correction for e in self._errors), maxlen=self._errors.maxlen)
        if correction > 0:
            self._append(np.zeros((correction, self.format.channels), np.float32))
        elif correction < 0:
            samples = samples[min(-correction, len(samples)):]
        self._append(samples)

    def _append(self, samples: np.ndarray) -> None:
        if len(samples):
            self._queue.append(samples)
            self._queued += len(samples)

    def mux_until(self, t_end: float) -> None:
        """Encode the placed sound up to `t_end` seconds of the timeline."""
        wanted = round(t_end * self.format.rate) - self._encoded
        while wanted > 0 and self._queue:
            chunk = self._queue.popleft()
            if len(chunk) > wanted:
                chunk, rest = chunk[:wanted], chunk[wanted:]
                self._queue.appendleft(rest)
            self._queued -= len(chunk)
            wanted -= len(chunk)
            self._encode(chunk)

    def _encode(self, chunk: np.ndarray) -> None:
        assert self._stream is not None
        layout = "mono" if self.format.channels == 1 else "stereo"
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk.T), format="fltp", layout=layout)
        frame.sample_rate = self.format.rate
        frame.time_base = Fraction(1, self.format.rate)
        frame.pts = self._encoded + AAC_PRIMING
        self._encoded += len(chunk)
        self._output.mux(self._stream.encode(frame))

    def flush(self) -> None:
        if self._stream is not None:
            self._output.mux(self._stream.encode(None))
