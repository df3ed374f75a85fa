"""Frame sources for the live loop: a camera (with reconnect) or a video file looped at its own pace.

Every source answers `read() -> (frame, timestamp) | None`: an RGB uint8 frame [H, W, 3] and
its capture time (`time.monotonic()` seconds), or None when no frame can be had right now
(camera lost, reconnecting). Sources never raise while running; `status` says what is wrong.
"""
from __future__ import annotations

import glob
import logging
import re
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from engine.errors import MediaError
from engine.media.video_io import VideoReader

log = logging.getLogger(__name__)

Frame = tuple[np.ndarray, float]  # (RGB uint8 [H, W, 3], monotonic capture time in seconds)


@dataclass(frozen=True)
class SourceStatus:
    ok: bool  # frames are flowing
    message: str  # one line for the user, e.g. "Camera 0: not available (busy or unplugged) — retrying"


class FrameSource(Protocol):
    """Something that yields driving frames."""

    name: str  # shown to the user, e.g. "Camera 0 (HD Webcam)" or "clip.mp4"

    def read(self) -> Frame | None:
        """The next frame (blocks up to about one frame interval), or None when none is available."""
        ...

    @property
    def status(self) -> SourceStatus: ...

    def close(self) -> None: ...


# ------------------------------------------------------------------------------------------- cameras


@dataclass(frozen=True)
class CameraInfo:
    index: int  # what cv2.VideoCapture takes
    name: str  # the device's name where the OS tells it, else "Camera N"
    path: str = ""  # e.g. /dev/video0 on Linux


def list_cameras(max_probe: int = 6) -> list[CameraInfo]:
    """Cameras that open right now. Slow (opens each device): call it off the GUI thread.

    Linux: the /dev/video* nodes that are capture devices; elsewhere: indices 0..max_probe-1.
    """
    if sys.platform.startswith("linux"):
        candidates = []
        for node in sorted(glob.glob("/dev/video*"), key=_node_number):
            index = _node_number(node)
            name_file = Path(f"/sys/class/video4linux/video{index}/name")
            name = name_file.read_text().strip() if name_file.is_file() else f"Camera {index}"
            candidates.append(CameraInfo(index, name, node))
    else:
        candidates = [CameraInfo(i, f"Camera {i}") for i in range(max_probe)]
    found = []
    for cam in candidates:
        capture = _open_quietly(cam.index)
        try:
            if capture.isOpened() and capture.read()[0]:
                found.append(cam)
        finally:
            capture.release()
    return found


def _open_quietly(device: int | str) -> cv2.VideoCapture:
    """cv2.VideoCapture without OpenCV's console warnings for missing devices (we report those ourselves)."""
    previous = cv2.getLogLevel()
    cv2.setLogLevel(0)  # 0 = silent
    try:
        if isinstance(device, int) and sys.platform.startswith("linux"):
            return cv2.VideoCapture(device, cv2.CAP_V4L2)
        return cv2.VideoCapture(device)
    finally:
        cv2.setLogLevel(previous)


def _node_number(node: str) -> int:
    match = re.search(r"(\d+)$", node)
    return int(match.group(1)) if match else -1


@dataclass(frozen=True)
class CameraConfig:
    device: int | str = 0  # camera index, or a stream URL / file path OpenCV can open
    resolution: tuple[int, int] | None = (1280, 720)  # requested (width, height); the camera picks the nearest
    retry_s: float = 1.0  # pause between reconnect attempts
    read_failures_to_lost: int = 5  # consecutive failed reads before the camera counts as lost


class CameraSource:
    """An OpenCV camera that survives being busy, missing or unplugged: it keeps trying to reopen."""

    def __init__(self, config: CameraConfig = CameraConfig(), name: str | None = None) -> None:
        self.config = config
        self.name = name or (f"Camera {config.device}" if isinstance(config.device, int) else Path(str(config.device)).name)
        self.reconnects = 0  # successful reopenings after a loss
        self._capture: cv2.VideoCapture | None = None
        self._failures = 0
        self._next_attempt = 0.0
        self._ever_opened = False
        self._closed = threading.Event()
        self._lock = threading.Lock()  # read() and close() may come from different threads
        self._status = SourceStatus(False, f"{self.name}: starting…")

    @property
    def status(self) -> SourceStatus:
        return self._status

    def read(self) -> Frame | None:
        if self._closed.is_set():
            return None
        if self._capture is None and not self._try_open():
            return None
        with self._lock:
            if self._capture is None:  # closed meanwhile
                return None
            ok, bgr = self._capture.read()
        t = time.monotonic()
        if not ok or bgr is None:
            self._failures += 1
            if self._failures >= self.config.read_failures_to_lost:
                self._lose("stopped delivering frames (unplugged or taken by another program)")
            return None
        self._failures = 0
        if not self._status.ok:
            h, w = bgr.shape[:2]
            self._status = SourceStatus(True, f"{self.name}: {w}x{h}")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), t

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            if self._capture is not None:
                self._capture.release()
                self._capture = None

    def _try_open(self) -> bool:
        now = time.monotonic()
        if now < self._next_attempt:
            self._closed.wait(min(self._next_attempt - now, 0.1))  # don't spin; stay responsive to close()
            return False
        self._next_attempt = now + self.config.retry_s
        with self._lock:
            if self._closed.is_set():
                return False
            return self._open()

    def _open(self) -> bool:
        capture = _open_quietly(self.config.device)
        if not capture.isOpened():
            capture.release()
            what = "not found" if not self._ever_opened else "lost"
            self._status = SourceStatus(False, f"{self.name}: {what} (busy, unplugged or no permission) — retrying")
            return False
        if isinstance(self.config.device, int):
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # hand out fresh frames, not ones queued in the driver
            if self.config.resolution is not None:
                # Most webcams reach 30 fps at HD only with MJPEG; uncompressed YUYV drops to 5-10 fps.
                capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG"))
                capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.config.resolution[0])
                capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.config.resolution[1])
        if self._ever_opened:
            self.reconnects += 1
            log.info("%s reconnected", self.name)
        self._ever_opened = True
        self._capture = capture
        self._failures = 0
        return True

    def _lose(self, why: str) -> None:
        log.warning("%s %s", self.name, why)
        with self._lock:
            if self._capture is not None:
                self._capture.release()
            self._capture = None
        self._status = SourceStatus(False, f"{self.name}: {why} — reconnecting")
        self._next_attempt = time.monotonic() + self.config.retry_s


# --------------------------------------------------------------------------------------- video files


class VideoFileSource:
    """A video file played in a loop as if it were a camera, paced at the file's frame rate."""

    def __init__(self, path: Path | str, loop: bool = True) -> None:
        self.path = Path(path)
        self.loop = loop
        self.name = self.path.name
        self.loops = 0  # times the file has wrapped around
        self._reader = VideoReader(self.path)  # MediaError here when the file is unusable
        self.fps = float(self._reader.fps)
        self.size = self._reader.size
        self._frames = self._reader.timed_frames()
        self._anchors: dict[int, float] = {}  # pass over the file → monotonic time of its media time 0
        self._next_due: float | None = None
        self._closed = threading.Event()
        self._lock = threading.Lock()  # read() and close() may come from different threads
        self._status = SourceStatus(True, f"{self.name}: {self.size[0]}x{self.size[1]} @ {self.fps:.2f} fps (file)")

    @property
    def status(self) -> SourceStatus:
        return self._status

    def read(self) -> Frame | None:
        """The next frame when it is due. A reader that fell behind skips the frames it missed rather
        than taking them in a burst: frames never come faster than the file's rate (a camera's neither)."""
        if self._closed.is_set():
            return None
        while True:
            with self._lock:
                timed = None if self._closed.is_set() else self._next_frame()
            if timed is None:
                return None
            now = time.monotonic()
            if self._next_due is None or not 0.5 / self.fps < now - self._next_due <= 1.0:
                break
            self._next_due += 1.0 / self.fps  # over half a frame late: this one is skipped
        frame, media_t = timed
        resync = self._next_due is None or now - self._next_due > 1.0  # first frame, or we fell far behind
        if resync:
            self._next_due = now
        elif self._closed.wait(max(0.0, self._next_due - now)):
            return None
        t = time.monotonic()
        if resync or self.loops not in self._anchors:
            self._anchors[self.loops] = t - media_t
            self._anchors.pop(self.loops - 3, None)
        self._next_due += 1.0 / self.fps
        return frame, t

    def anchor(self, loop: int) -> float | None:
        """When pass `loop` over the file (0 = the first) showed, or would have shown, its media time 0.

        What `engine.media.audio.FileAudio` stamps the file's own sound with; None before that pass starts.
        """
        return self._anchors.get(loop)

    def _next_frame(self) -> tuple[np.ndarray, float] | None:
        try:
            frame = next(self._frames, None)
            if frame is None and self.loop:
                self._reader.close()
                self._reader = VideoReader(self.path)
                self._frames = self._reader.timed_frames()
                self.loops += 1
                frame = next(self._frames, None)
        except MediaError as exc:
            self._status = SourceStatus(False, str(exc))
            return None
        if frame is None:
            self._status = SourceStatus(False, f"{self.name}: end of file")
        return frame

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            self._reader.close()


def open_source(spec: str | int, resolution: tuple[int, int] | None = (1280, 720)) -> FrameSource:
    """A camera index (int or digits) → CameraSource; anything else → a looped VideoFileSource."""
    if isinstance(spec, int) or str(spec).isdigit():
        return CameraSource(CameraConfig(device=int(spec), resolution=resolution))
    path = Path(spec)
    if not path.is_file():
        raise MediaError(f"source video not found: {path}")
    return VideoFileSource(path)
