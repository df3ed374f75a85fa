"""A private PulseAudio for the audio tests and benchmark: a null sink whose monitor is the microphone.

`PrivatePulse` starts `pulseaudio` with its own runtime folder and socket (never the user's
server) and points this process at it (PULSE_SERVER); PortAudio's "pulse" ALSA device then
records the sink's monitor. `ClickPlayer` plays a click train into the sink at chosen
`time.monotonic()` times (placed by PortAudio's DAC time), `find_clicks` finds them again.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

SINK = "mimic_test"
MIC = "pulse"  # PortAudio's ALSA device that talks to PULSE_SERVER; records the default source (the monitor)
CLICK_S = 0.002  # click length
CLICK_LEVEL = 0.8


class PulseUnavailable(RuntimeError):
    pass


class PrivatePulse:
    """`with PrivatePulse() as pulse:` — a PulseAudio server of our own, with a null sink."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="mimic-pa-"))
        self.socket = self.folder / "native"
        self.server = f"unix:{self.socket}"
        self._process: subprocess.Popen | None = None
        self._saved_env: dict[str, str | None] = {}

    def __enter__(self) -> "PrivatePulse":
        binary = shutil.which("pulseaudio")
        if binary is None:
            self._cleanup()
            raise PulseUnavailable("pulseaudio is not installed (scripts/setup.sh test installs it)")
        env = {**os.environ, "XDG_RUNTIME_DIR": str(self.folder), "HOME": str(self.folder)}
        self._process = subprocess.Popen(
            [binary, "-n", "--daemonize=no", "--exit-idle-time=-1", "--disable-shm=yes", "--use-pid-file=no",
             "--log-target=stderr", "--log-level=error",
             "-L", f"module-null-sink sink_name={SINK}",
             "-L", f"module-native-protocol-unix socket={self.socket} auth-anonymous=1"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        for key, value in {"PULSE_SERVER": self.server, "PULSE_RUNTIME_PATH": str(self.folder)}.items():
            self._saved_env[key] = os.environ.get(key)
            os.environ[key] = value
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                err = self._process.stderr.read().strip().splitlines() if self._process.stderr else []
                self.__exit__()
                raise PulseUnavailable(f"pulseaudio exited at start: {err[-1] if err else 'no message'}")
            if self.pactl("info", check=False).returncode == 0:
                return self
            time.sleep(0.1)
        self.__exit__()
        raise PulseUnavailable("pulseaudio did not answer within 10 s")

    def __exit__(self, *exc) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._cleanup()

    def _cleanup(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def pactl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        env = {**os.environ, "PULSE_SERVER": self.server}
        return subprocess.run(["pactl", *args], env=env, capture_output=True, text=True, timeout=10, check=check)

    def remove_sink(self) -> None:
        """Unplug the "microphone": the null sink (and its monitor) disappears."""
        self.pactl("unload-module", "module-null-sink")

    def add_sink(self) -> None:
        self.pactl("load-module", "module-null-sink", f"sink_name={SINK}")
        self.pactl("set-default-source", f"{SINK}.monitor")
        self.pactl("set-default-sink", SINK)


class ClickPlayer:
    """Plays short clicks into the sink so that each sounds at a given monotonic time."""

    def __init__(self, times: list[float], rate: int = 48000) -> None:
        import sounddevice as sd

        self.times = sorted(times)
        self.rate = rate
        self.played: list[float] = []  # monotonic times the clicks were placed at (as PortAudio reports)
        self.underflows = 0  # output blocks that came too late (the times after one are less certain)
        self._next = 0
        self._lock = threading.Lock()
        # A generous output buffer: on a loaded machine a late callback would shift the played times.
        self._stream = sd.OutputStream(device=MIC, samplerate=rate, channels=1, dtype="float32", blocksize=480,
                                       latency=0.1, callback=self._fill)

    def __enter__(self) -> "ClickPlayer":
        self._stream.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stream.close()

    def _fill(self, out: np.ndarray, frames: int, times, status) -> None:
        out[:] = 0
        self.underflows += bool(status.output_underflow)
        dac = times.outputBufferDacTime + (time.monotonic() - times.currentTime)  # PortAudio clock → monotonic
        click = max(1, round(CLICK_S * self.rate))
        while self._next < len(self.times) and self.times[self._next] < dac + frames / self.rate:
            start = round((self.times[self._next] - dac) * self.rate)
            if start >= 0:  # a click already due when the stream started is skipped
                out[start:start + click, 0] = CLICK_LEVEL
                self.played.append(dac + start / self.rate)
            self._next += 1


def find_clicks(signal: np.ndarray, rate: int, min_gap_s: float = 0.2) -> np.ndarray:
    """Onsets (seconds from the signal's start) of the clicks in a mono signal: first sample above half the level."""
    loud = np.flatnonzero(np.abs(signal) > CLICK_LEVEL / 2)
    onsets: list[int] = []
    for i in loud:
        if not onsets or i - onsets[-1] > min_gap_s * rate:
            onsets.append(int(i))
    return np.asarray(onsets, np.float64) / rate
