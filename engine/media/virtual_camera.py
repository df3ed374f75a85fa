"""Virtual camera output (pyvirtualcam: v4l2loopback on Linux, OBS on Windows/macOS), optional.

Video-call apps expect a steady stream, so a thread sends the newest output at the camera's
rate, repeating the last frame while the reenactor is slower than that.
"""
from __future__ import annotations

import logging
import sys
import threading

import cv2
import numpy as np

from engine.errors import MediaError

log = logging.getLogger(__name__)


def probe_virtual_camera() -> tuple[bool, str]:
    """(available, one line): whether a virtual camera can be opened here, and which, or why not.

    Opens the device briefly: call it off the GUI thread.
    """
    try:
        import pyvirtualcam
    except ImportError:
        return False, "virtual camera needs the pyvirtualcam package (pip install pyvirtualcam)"
    try:
        with pyvirtualcam.Camera(width=640, height=480, fps=30) as cam:
            return True, f"virtual camera: {cam.device}"
    except Exception as exc:  # pyvirtualcam raises RuntimeError with a platform-specific hint
        log.info("no virtual camera: %s", exc)
        return False, NO_DEVICE_HINT.get(sys.platform, "no virtual camera device found")


NO_DEVICE_HINT = {
    "linux": "No virtual camera device: install v4l2loopback, then `sudo modprobe v4l2loopback`",
    "win32": "No virtual camera: install OBS Studio (version 26 or newer) and start its virtual camera once",
    "darwin": "No virtual camera: install OBS Studio (version 26 or newer) and start its virtual camera once",
}


def _first_sentence(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line.split(". ")[0].rstrip(".")


class VirtualCamera:
    """Streams submitted RGB frames to a virtual camera of fixed size at `fps`."""

    def __init__(self, size: tuple[int, int], fps: float = 30.0) -> None:
        try:
            import pyvirtualcam
        except ImportError:
            raise MediaError("virtual camera needs the pyvirtualcam package (pip install pyvirtualcam)") from None
        self.size = size
        try:
            self._cam = pyvirtualcam.Camera(width=size[0], height=size[1], fps=fps)
        except Exception as exc:
            raise MediaError(f"cannot open a virtual camera: {_first_sentence(str(exc))}") from None
        self.device: str = self._cam.device
        self._frame = np.zeros((size[1], size[0], 3), np.uint8)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mimic-virtual-camera", daemon=True)
        self._thread.start()
        log.info("virtual camera on %s (%dx%d @ %.0f fps)", self.device, size[0], size[1], fps)

    def submit(self, output: np.ndarray, t: float = 0.0, driver: np.ndarray | None = None) -> bool:
        """The frame to show from now on (resized to the camera's size); a `engine.live.FrameSink`."""
        if (output.shape[1], output.shape[0]) != self.size:
            output = cv2.resize(output, self.size, interpolation=cv2.INTER_AREA)
        with self._lock:
            self._frame = output
        return True

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        self._cam.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                frame = self._frame
            try:
                self._cam.send(frame)
            except Exception:  # the device vanished: stop streaming, keep the app alive
                log.exception("virtual camera stopped")
                return
            self._cam.sleep_until_next_frame()
