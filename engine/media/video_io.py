"""Video and image files: read frames (PyAV), write crash-safe H.264 MP4, read/write images.

Frames are RGB ``uint8`` arrays [H, W, 3]. Every failure a user can cause (missing
file, not a video, unwritable folder, disk full) raises `MediaError` with one line.

`H264Writer` writes a *fragmented* MP4: the index travels with every fragment, so a
file cut short by a crash, a kill or a full disk still plays up to its last fragment.
Its two constructors are its two timings: `constant_rate` (a render; sound copied from a
source video) and `live` (frames and sound blocks placed by their capture times).
"""
from __future__ import annotations

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
from engine.output_file import check_output, describe_os_error, write_bytes
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
    if image is None and image_format(data) == "GIF":  # OpenCV's wheel reads no GIF
        image = _first_gif_frame(data)
    if image is None:
        kind = image_format(data)
        if kind is not None:  # the signature says what it is: the rest is cut short or corrupt
            raise MediaError(f"cannot read image {path}: a damaged or incomplete {kind} file")
        raise MediaError(f"cannot read image {path}: not an image file (expected PNG, JPEG, WebP, BMP, TIFF or GIF)")
    check_picture_size(image.shape[1], image.shape[0], f"image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _first_gif_frame(data: bytes) -> np.ndarray | None:
    """A GIF's first frame as BGR uint8 (Pillow; its size was checked from the header), None if it is damaged."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as gif:
            return np.ascontiguousarray(np.asarray(gif.convert("RGB"))[:, :, ::-1])
    except Exception:  # noqa: BLE001 - a damaged GIF: read_image says so in one line
        return None


# The image types read_image reads (a GIF: its first frame), by file name.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
# The first bytes of each image format read_image takes → its name.
IMAGE_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"BM", "BMP"),
                    (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"))


def image_format(data: bytes) -> str | None:
    """"PNG", "JPEG", "WebP", "BMP", "TIFF" or "GIF" from a file's first bytes, else None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return next((name for signature, name in IMAGE_SIGNATURES if data.startswith(signature)), None)


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


@dataclass(frozen=True)
class X264Options:
    """How libx264 encodes (yuv420p, in a fragmented MP4)."""

    crf: int = 20  # quality: 0 lossless … 51 worst; 18–23 looks transparent
    preset: str = "veryfast"  # speed/size trade-off
    keyframe_interval_s: float = 1.0  # max seconds between keyframes = fragments = what a crash can lose
    low_latency: bool = False  # x264 zerolatency: frames leave the encoder at once (live recording)


LIVE_X264 = X264Options(low_latency=True)


class H264Writer:
    """H.264 (libx264, yuv420p) in a fragmented MP4, with or without sound. Made by one of two constructors:

    - `H264Writer.constant_rate(path, fps, size, audio_from=…)`: `write(frame)` places frame n at n / fps (a
      render); the sound, if any, is copied from a source video.
    - `H264Writer.live(path, size, fps_hint, audio=…)`: `write(frame, t_seconds)` places each frame at its
      capture time (the first frame is t=0), so a recording keeps real timing; live sound comes through
      `write_audio` on the same clock.

    Odd sizes are padded to even by repeating the last row/column. After a write error (e.g. disk full)
    the writer is closed and the frames already written remain playable.
    """

    def __init__(self, path: Path | str, timing: _Timing, size: tuple[int, int], sound: _Soundtrack,
                 x264: X264Options = X264Options()) -> None:
        """Use constant_rate() or live(); `size`: (width, height) of the frames to be written."""
        self.path = Path(path)
        self.size = (int(size[0]), int(size[1]))
        if min(self.size) < 2:
            raise ValueError(f"frame size must be at least 2x2, got {self.size}")
        self.fps = timing.fps
        self.frames_written = 0
        self._timing = timing
        self._sound = sound
        self._keyframe_interval_s = x264.keyframe_interval_s
        self._coded_size = (self.size[0] + self.size[0] % 2, self.size[1] + self.size[1] % 2)
        self._last_key_t = -math.inf
        self._last_t = 0.0
        self._closed = False
        self._error: MediaError | None = None

        check_output(self.path)  # a regular file or nothing, in a writable folder
        self._container = _open_fragmented_mp4(self.path)
        try:
            self._stream = self._add_video_stream(x264)
            sound.attach(self._container)
        except BaseException:
            self._release()
            raise

    @classmethod
    def constant_rate(cls, path: Path | str, fps: float | Fraction, size: tuple[int, int],
                      audio_from: Path | str | None = None, x264: X264Options = X264Options()) -> H264Writer:
        """Frames at a constant `fps`; `audio_from`: a source video whose audio track is copied (or transcoded
        to AAC), or None for a silent file."""
        sound = _SourceSound(Path(audio_from)) if audio_from is not None else _Soundtrack()
        return cls(path, _ConstantRate(as_fraction(fps)), size, sound, x264)

    @classmethod
    def live(cls, path: Path | str, size: tuple[int, int], fps_hint: float | Fraction,
             audio: AudioFormat | None = None, x264: X264Options = LIVE_X264) -> H264Writer:
        """Frames at their capture times; `fps_hint`: the rate expected (the last frame's duration, x264's
        keyframe backstop); `audio`: the format of the sound passed to write_audio(), or None for none."""
        sound = _LiveSound(audio) if audio is not None else _Soundtrack()
        return cls(path, _CaptureTimes(as_fraction(fps_hint), sound.lead_s), size, sound, x264)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def duration(self) -> float:
        """Seconds of video written so far (last frame's time + one frame)."""
        return self._last_t + 1 / float(self.fps) if self.frames_written else 0.0

    def write(self, frame: np.ndarray, t_seconds: float | None = None) -> None:
        """Append one RGB uint8 [H, W, 3] frame; `t_seconds`: its capture time (any origin) for a live writer,
        None for a constant-rate one."""
        self._check_open()
        h, w = frame.shape[:2]
        if (w, h) != self.size or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"expected RGB uint8 {self.size[1]}x{self.size[0]}x3 frames, got {frame.dtype} {frame.shape}")
        pts, t = self._timing.place(self.frames_written, t_seconds)
        if self.frames_written == 0:
            self._sound.start(self._timing.origin)
        video_frame = av.VideoFrame.from_ndarray(self._pad_even(frame), format="rgb24")
        video_frame.pts = pts
        video_frame.time_base = self._timing.time_base
        if t - self._last_key_t >= self._keyframe_interval_s:
            video_frame.pict_type = av.video.frame.PictureType.I
            self._last_key_t = t
        self._guard(lambda: self._mux_video(video_frame, t))
        self._last_t = t
        self.frames_written += 1

    def write_audio(self, samples: np.ndarray, t_seconds: float) -> None:
        """Append live sound: float32 [frames, channels] whose first sample was captured at `t_seconds`.

        The clock is the one of write()'s `t_seconds`; sound before the first frame is cut off.
        """
        self._check_open()
        self._guard(lambda: self._sound.take(samples, float(t_seconds), self._last_t))

    @property
    def audio_seconds(self) -> float:
        """Seconds of live sound encoded so far (0 without live sound)."""
        return self._sound.encoded_s

    @property
    def audio_gaps(self) -> int:
        """Times live sound was missing (a dropout) and silence was put in its place."""
        return self._sound.gaps

    def close(self) -> None:
        """Flush the encoder, finish the sound and close the file. Idempotent."""
        if self._closed:
            return
        try:
            if self._error is None and self.frames_written:
                self._guard(self._finish)
        finally:
            self._closed = True
            self._release()

    def __enter__(self) -> H264Writer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ internals

    def _add_video_stream(self, x264: X264Options) -> av.VideoStream:
        options = {"crf": str(x264.crf), "preset": x264.preset, **({"tune": "zerolatency"} if x264.low_latency else {})}
        if self._sound.carries_sound:
            # A fragmented MP4 has no edit list to carry B-frames' reordering delay: each track starts at
            # its own first timestamp, and the picture would trail the sound by two frames.
            options["bf"] = "0"
        stream = self._container.add_stream("libx264", rate=self.fps, options=options)
        stream.width, stream.height = self._coded_size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = self._timing.time_base
        stream.time_base = stream.codec_context.time_base
        # Keyframes are forced by time (write); x264's own GOP limit only as a backstop.
        stream.codec_context.gop_size = max(1, round(float(self.fps) * x264.keyframe_interval_s * 2))
        return stream

    def _check_open(self) -> None:
        if self._error is not None:
            raise self._error
        if self._closed:
            raise MediaError(f"cannot write {self.path}: the recording is already closed")

    def _pad_even(self, frame: np.ndarray) -> np.ndarray:
        w, h = self.size
        if (w, h) == self._coded_size:
            return frame
        return np.pad(frame, ((0, self._coded_size[1] - h), (0, self._coded_size[0] - w), (0, 0)), mode="edge")

    def _mux_video(self, video_frame: av.VideoFrame, t: float) -> None:
        self._sound.mux_until(t + AUDIO_LEAD_S)  # the sound runs a little ahead, so both stay interleaved
        self._container.mux(self._stream.encode(video_frame))

    def _finish(self) -> None:
        self._container.mux(self._stream.encode(None))
        self._sound.finish(self.duration)

    def _guard(self, step) -> None:
        """Run an encoding step; turn I/O failures into one MediaError and close the file."""
        try:
            step()
        except (av.error.FFmpegError, OSError) as exc:
            kept = self.path.is_file() and self.path.stat().st_size > 0
            self._error = MediaError(
                f"recording to {self.path} stopped after {self.frames_written} frames: {describe_os_error(exc)}"
                + (" (the part that reached the disk is playable)" if kept else "; nothing playable was written")
            )
            self._closed = True
            self._release()
            raise self._error from None

    def _release(self) -> None:
        self._sound.close()
        try:
            self._container.close()
        except (av.error.FFmpegError, OSError) as exc:  # e.g. disk still full while writing the last fragment
            log.warning("closing %s: %s", self.path, describe_os_error(exc))


def _open_fragmented_mp4(path: Path) -> av.container.OutputContainer:
    """The writer's container (the path already passed check_output)."""
    try:
        return av.open(
            str(path), "w", format="mp4", options=FRAGMENTED_MP4,
            # max_interleave_delta: a stream that falls silent (microphone lost) holds the others back ≤ 1 s,
            # not the default 10 s, so a kill still finds the video written (measured: 4 of 5 s vs 0.9 s)
            container_options={"flush_packets": "1", "max_interleave_delta": "1000000"},
        )
    except (av.error.FFmpegError, OSError) as exc:
        raise MediaError(f"cannot write {path}: {describe_os_error(exc)}") from None


# ------------------------------------------------------------------ timing: where each frame goes


class _Timing:
    """Places frames on the video's timeline: pts in `time_base` units and seconds since the first frame."""

    fps: Fraction  # the (expected) frame rate
    time_base: Fraction
    origin: float = 0.0  # the time of the first frame on the caller's clock (sound is placed relative to it)

    def place(self, index: int, t_seconds: float | None) -> tuple[int, float]:
        raise NotImplementedError


class _ConstantRate(_Timing):
    """Frame n at n / fps (a render of a file): write(frame) without times."""

    def __init__(self, fps: Fraction) -> None:
        self.fps = fps
        self.time_base = 1 / fps

    def place(self, index: int, t_seconds: float | None) -> tuple[int, float]:
        if t_seconds is not None:
            raise ValueError("this writer places frames at a constant rate: write(frame) takes no time "
                             "(H264Writer.live places frames at their capture times)")
        return index, index / float(self.fps)


class _CaptureTimes(_Timing):
    """Each frame at its capture time, the first at 0 (a live recording); pts strictly increasing.

    Every timestamp is shifted by `shift_s` (the AAC encoder's delay when there is live sound), so sound
    and picture align and no timestamp is negative.
    """

    time_base = TIMESTAMP_TIME_BASE

    def __init__(self, fps_hint: Fraction, shift_s: float) -> None:
        self.fps = fps_hint
        self.shift_s = shift_s
        self._last_pts = -1

    def place(self, index: int, t_seconds: float | None) -> tuple[int, float]:
        if t_seconds is None:
            raise ValueError("this writer places frames at their capture times: write(frame, t_seconds)")
        if index == 0:
            self.origin = float(t_seconds)
        t = float(t_seconds) - self.origin
        self._last_pts = max(round((t + self.shift_s) / self.time_base), self._last_pts + 1)
        return self._last_pts, t


# ------------------------------------------------------------------ sound: what goes into the audio track


class _Soundtrack:
    """No sound (a video-only file), and what every soundtrack answers: the writer calls these in order —
    attach (streams), start (at the first frame), take (live sound), mux_until (ahead of each frame),
    finish (at the end), close."""

    carries_sound = False
    lead_s = 0.0  # the encoder delay every video timestamp is shifted by
    encoded_s = 0.0  # seconds of live sound encoded so far
    gaps = 0  # dropouts filled with silence

    def attach(self, output: av.container.OutputContainer) -> None:
        """Add the audio stream(s) to `output`."""

    def start(self, t0: float) -> None:
        """The first frame's time on the caller's clock."""

    def take(self, samples: np.ndarray, t: float, video_t: float) -> None:
        """Live sound captured at `t`; `video_t`: the time of the last frame written."""
        raise ValueError("this writer was opened without live sound (H264Writer.live(…, audio=format))")

    def mux_until(self, t_end: float) -> None:
        """Encode the sound up to `t_end` seconds of the timeline."""

    def finish(self, duration: float) -> None:
        """Encode the rest up to the video's `duration` and flush the encoder."""

    def close(self) -> None:
        """Release what was opened (sources)."""


class _SourceSound(_Soundtrack):
    """Carries a source video's audio into the output, interleaved with the video as it is written."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self.carries_sound = True
        self._output: av.container.OutputContainer | None = None
        self._input: av.container.InputContainer | None = None
        self._out_stream = None
        self._copy = False
        self._packets: Iterator[av.Packet] | None = None
        self._pending: av.Packet | None = None

    def attach(self, output: av.container.OutputContainer) -> None:
        self._output = output
        try:
            self._input = av.open(str(self.source), "r")
        except (av.error.FFmpegError, OSError) as exc:
            raise MediaError(f"cannot read audio from {self.source}: {_short(exc)}") from None
        src = self._input.streams.audio[0] if self._input.streams.audio else None
        if src is None:
            return  # the source is silent: a video-only file
        self._copy = src.codec_context.name in MP4_AUDIO_CODECS
        if self._copy:
            self._out_stream = output.add_stream_from_template(src)
        else:
            self._out_stream = output.add_stream("aac", rate=src.codec_context.sample_rate)
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
        assert self._out_stream is not None and self._output is not None
        if self._copy:
            packet.stream = self._out_stream
            self._output.mux(packet)
            return
        for frame in packet.decode():
            frame.pts = None  # the AAC encoder numbers its own frames
            self._output.mux(self._out_stream.encode(frame))

    def finish(self, duration: float) -> None:
        self.mux_until(duration)
        if self._out_stream is not None and not self._copy:
            assert self._output is not None
            self._output.mux(self._out_stream.encode(None))

    def close(self) -> None:
        if self._input is not None:
            self._input.close()


class _LiveSound(_Soundtrack):
    """Live sound into the output: each block placed by its capture time on the video's timeline.

    Blocks follow each other sample by sample while their stamps agree with that (within
    AUDIO_SYNC_TOLERANCE_S, judged on the median of the last few, so stamp jitter never
    clicks); a dropout is filled with silence and an overlap is cut, so the sound never drifts
    away from the picture. Encoding follows the video (`mux_until`), which keeps both interleaved.
    """

    def __init__(self, fmt: AudioFormat) -> None:
        if fmt.channels not in (1, 2):
            raise ValueError(f"live audio must be mono or stereo, got {fmt.channels} channels")
        self.format = fmt
        self.carries_sound = True
        self.lead_s = AAC_PRIMING / fmt.rate  # every timestamp is shifted by the encoder delay, none negative
        self.gaps = 0
        self.overlaps = 0
        self._output: av.container.OutputContainer | None = None
        self._stream: av.AudioStream | None = None
        self._t0: float | None = None
        self._pending: deque[tuple[np.ndarray, float]] = deque()  # blocks before the first frame
        self._queue: deque[np.ndarray] = deque()  # placed samples waiting for the encoder
        self._queued = 0
        self._encoded = 0
        self._errors: deque[int] = deque(maxlen=5)  # recent (stamped − placed) positions, in samples

    @property
    def encoded_s(self) -> float:
        return self._encoded / self.format.rate

    @property
    def queued_until_s(self) -> float:
        return (self._encoded + self._queued) / self.format.rate

    def attach(self, output: av.container.OutputContainer) -> None:
        self._output = output
        stream = output.add_stream("aac", rate=self.format.rate)
        stream.layout = "mono" if self.format.channels == 1 else "stereo"
        stream.time_base = Fraction(1, self.format.rate)
        self._stream = stream

    def start(self, t0: float) -> None:
        """The first frame's time: sound is placed relative to it, anything earlier is cut off."""
        self._t0 = t0
        while self._pending:
            self._push(*self._pending.popleft())

    def take(self, samples: np.ndarray, t: float, video_t: float) -> None:
        self._push(samples, t)
        if self._t0 is not None:  # encode what the video has reached (or what waited AUDIO_HOLD_S for it)
            self.mux_until(max(video_t + AUDIO_LEAD_S, self.queued_until_s - AUDIO_HOLD_S))

    def _push(self, samples: np.ndarray, t: float) -> None:
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
        assert self._stream is not None and self._output is not None
        layout = "mono" if self.format.channels == 1 else "stereo"
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk.T), format="fltp", layout=layout)
        frame.sample_rate = self.format.rate
        frame.time_base = Fraction(1, self.format.rate)
        frame.pts = self._encoded + AAC_PRIMING
        self._encoded += len(chunk)
        self._output.mux(self._stream.encode(frame))

    def finish(self, duration: float) -> None:
        self.mux_until(duration)
        if self._stream is not None and self._output is not None:
            self._output.mux(self._stream.encode(None))
