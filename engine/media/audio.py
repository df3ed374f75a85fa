"""Sound for recordings: a microphone (PortAudio via `sounddevice`) or a video file's own audio track.

Every source captures on a thread of its own and hands out `AudioBlock`s stamped on
`time.monotonic()`, the clock camera frames are stamped on (see `engine.media.camera`), so a
recorder can put the voice at the same place in the file as the face captured with it.
Consumers `subscribe()` and get a bounded tap each; a slow consumer loses its oldest
blocks (counted), never the capture. A device that disappears is reported on `status`
and on every tap, and the capture stops; nothing already handed out is lost.

Microphone stamps come from PortAudio's input ADC time, mapped onto the monotonic clock
(measured on PulseAudio: median within 0.1 ms of the played clicks, 95 % within 0.6 ms; the
callback's arrival time minus the block was up to 26 ms early and jumped with the load;
docs/app.md, "Measured"; `benchmarks/audio_bench.py`).
"""
from __future__ import annotations

import collections
import contextlib
import ctypes
import ctypes.util
import logging
import math
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import av
import numpy as np

from engine.media.camera import SourceStatus
from engine.errors import MediaError
from engine.media.video_io import AudioFormat, sound_track_problem

if TYPE_CHECKING:
    from engine.media.camera import VideoFileSource

log = logging.getLogger(__name__)

NO_AUDIO = "none"  # the --audio / picker value for "record without sound"
SOURCE_AUDIO = "source"  # the --audio value for "the source video's own audio track"
MIC_RATE = 48000  # Hz, asked of every microphone first (else its own rate)
TAP_BLOCKS = 1000  # blocks a consumer may fall behind before its oldest are dropped (10 s of microphone)
LEVEL_WINDOW_S = 0.1  # the level meter shows the peak of this much recent sound
LOST_AFTER_S = 2.0  # a running stream that delivers nothing this long counts as lost
# A new stream's first blocks are not used: PulseAudio hands over a backlog with a shrinking latency for
# about a second (stamps that step 20 ms per 10 ms block). Blocks count from WARM_UP_S after the first
# callback once WARM_UP_BLOCKS in a row follow each other by their stamps, at the latest after WARM_UP_MAX_S.
WARM_UP_S = 1.5
WARM_UP_BLOCKS = 10
WARM_UP_MAX_S = 4.0


# PortAudio is one library-wide state: (re)initialising it from two threads at once crashes, and
# re-initialising it (to see newly plugged devices) closes every open stream. So all of it goes
# through this lock, and the device list is only re-read while no microphone is open.
_PORTAUDIO_LOCK = threading.RLock()
_open_microphones = 0


class AudioError(MediaError):
    """An audio device or track that cannot be used (one line for the user)."""


@dataclass(frozen=True)
class AudioBlock:
    samples: np.ndarray  # float32 [frames, channels], -1..1
    t: float  # time.monotonic() seconds at which the first sample was captured


@dataclass(frozen=True)
class MicrophoneInfo:
    index: int  # PortAudio device index
    name: str  # e.g. "pulse", "USB Audio: Mic (hw:1,0)"
    channels: int  # input channels the device offers
    is_default: bool
    default_rate: int = MIC_RATE  # the device's own sample rate (used when it cannot do MIC_RATE)


class AudioTap:
    """One consumer's view of a source: blocks since it subscribed (plus a little history)."""

    def __init__(self, max_blocks: int) -> None:
        self._blocks: collections.deque[AudioBlock] = collections.deque()
        self._max_blocks = max_blocks
        self._lock = threading.Lock()
        self.dropped = 0  # blocks lost because the consumer did not drain in time
        self.lost: str | None = None  # set when the source stopped for good (device gone)
        self.closed = False

    def put(self, block: AudioBlock) -> None:
        with self._lock:
            if len(self._blocks) >= self._max_blocks:
                self._blocks.popleft()
                self.dropped += 1
            self._blocks.append(block)

    def drain(self) -> list[AudioBlock]:
        """Every block waiting, oldest first."""
        with self._lock:
            blocks = list(self._blocks)
            self._blocks.clear()
        return blocks

    def close(self) -> None:
        self.closed = True


class AudioSource(Protocol):
    name: str
    format: AudioFormat

    @property
    def status(self) -> SourceStatus: ...

    def level_db(self) -> float: ...

    def subscribe(self, history_s: float = 1.0) -> AudioTap: ...

    def close(self) -> None: ...


class _AudioHub:
    """What every source shares: taps, a short history, the level meter and the status line."""

    def __init__(self, name: str, fmt: AudioFormat) -> None:
        self.name = name
        self.format = fmt
        self.blocks_captured = 0
        self._taps: list[AudioTap] = []
        self._history: collections.deque[AudioBlock] = collections.deque()
        self._peaks: collections.deque[tuple[float, float]] = collections.deque()
        self._lock = threading.Lock()
        self._status = SourceStatus(False, f"{name}: starting…")
        self._lost: str | None = None

    @property
    def status(self) -> SourceStatus:
        return self._status

    def level_db(self) -> float:
        """Peak level of the last 100 ms in dBFS (-120 for silence or no sound at all)."""
        horizon = time.monotonic() - LEVEL_WINDOW_S
        with self._lock:
            peak = max((p for t, p in self._peaks if t >= horizon), default=0.0)
        return 20.0 * math.log10(max(peak, 1e-6))

    def subscribe(self, history_s: float = 1.0) -> AudioTap:
        """A new tap, primed with the blocks of the last `history_s` seconds (a recording may start a bit back)."""
        tap = AudioTap(max_blocks=TAP_BLOCKS)
        horizon = time.monotonic() - history_s
        with self._lock:
            for block in self._history:
                if block.t >= horizon:
                    tap.put(block)
            tap.lost = self._lost
            self._taps.append(tap)
        return tap

    def _publish(self, block: AudioBlock) -> None:
        """Hand one block to every tap (called on the capture thread)."""
        now = time.monotonic()
        peak = float(np.abs(block.samples).max()) if block.samples.size else 0.0
        with self._lock:
            self.blocks_captured += 1
            self._peaks.append((now, peak))
            while self._peaks and self._peaks[0][0] < now - LEVEL_WINDOW_S:
                self._peaks.popleft()
            self._history.append(block)
            while self._history and self._history[0].t < now - 2.0:
                self._history.popleft()
            self._taps = [tap for tap in self._taps if not tap.closed]
            taps = list(self._taps)
        for tap in taps:
            tap.put(block)
        if not self._status.ok and self._lost is None:
            self._status = SourceStatus(True, f"{self.name}: {self.format.rate} Hz, {self.format.channels} ch")

    def _lose(self, message: str) -> None:
        """The source stopped for good: tell the user once and every consumer."""
        with self._lock:
            if self._lost is not None:
                return
            self._lost = message
            self._status = SourceStatus(False, message)
            for tap in self._taps:
                tap.lost = message
        log.warning("%s", message)


# ---------------------------------------------------------------------------------------- microphones


_ALSA_ERROR_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
                                       ctypes.c_char_p)
_alsa_quiet: list = []  # keeps the installed no-op handler alive


def _silence_alsa() -> None:
    """Stop libasound printing its probing chatter ("Unknown PCM cards.pcm.rear", …) while PortAudio
    enumerates devices; PortAudio reports real failures as error codes anyway. Linux only, once."""
    if _alsa_quiet or not sys.platform.startswith("linux"):
        return
    try:
        asound = ctypes.cdll.LoadLibrary(ctypes.util.find_library("asound") or "libasound.so.2")
    except OSError:
        return
    handler = _ALSA_ERROR_HANDLER(lambda *args: None)
    asound.snd_lib_error_set_handler(handler)
    _alsa_quiet.append(handler)


def _sounddevice(refresh: bool = False):
    """The `sounddevice` module, PortAudio loaded (and its device list re-read when `refresh` and it is safe)."""
    try:
        with _PORTAUDIO_LOCK:
            _silence_alsa()
            fresh = "sounddevice" not in sys.modules  # importing it initialises PortAudio: the list is new
            import sounddevice
            if refresh and not fresh and _open_microphones == 0:
                sounddevice._terminate()
                sounddevice._initialize()
    except (ImportError, OSError) as exc:
        raise AudioError(f"audio capture is unavailable: PortAudio could not be loaded ({exc}); "
                         "install libportaudio2 (scripts/setup.sh)") from None
    return sounddevice


def list_microphones() -> list[MicrophoneInfo]:
    """Input devices PortAudio sees now (re-enumerated, so newly plugged devices show)."""
    sd = _sounddevice(refresh=True)
    try:
        with _PORTAUDIO_LOCK:
            default_in = sd.default.device[0]
            devices = sd.query_devices()
    except sd.PortAudioError as exc:
        raise AudioError(f"cannot list microphones: {exc}") from None
    return [
        MicrophoneInfo(int(d["index"]), str(d["name"]), int(d["max_input_channels"]), int(d["index"]) == default_in,
                       int(d["default_samplerate"] or MIC_RATE))
        for d in devices if d["max_input_channels"] > 0
    ]


def find_microphone(spec: str) -> MicrophoneInfo:
    """A device by index ("3"), exact name, or a unique part of its name (case-insensitive); "default" = the OS's."""
    mics = list_microphones()
    if not mics:
        raise AudioError("no microphone found (no audio input device is available)")
    if spec == "default":
        return next((m for m in mics if m.is_default), mics[0])
    if spec.isdigit():
        match = [m for m in mics if m.index == int(spec)]
    else:
        match = [m for m in mics if m.name.lower() == spec.lower()] or [m for m in mics if spec.lower() in m.name.lower()]
    if len(match) == 1:
        return match[0]
    names = ", ".join(f"{m.index}: {m.name}" for m in mics)
    what = "is ambiguous" if match else "not found"
    raise AudioError(f"microphone {spec!r} {what}; available: {names}")


class Microphone(_AudioHub):
    """A PortAudio input stream; PortAudio's callback thread stamps and publishes each 10 ms block."""

    def __init__(self, device: MicrophoneInfo, channels: int = 1) -> None:
        super().__init__(f"Microphone {device.name}", AudioFormat(MIC_RATE, min(channels, device.channels)))
        self.device = device
        self._closing = False
        self._last_callback = time.monotonic()
        self._clock_offsets: collections.deque[float] = collections.deque(maxlen=32)
        self._first_callback: float | None = None
        self._expected_next: float | None = None  # where the next block's stamp should be, from the last one
        self._steady = 0  # blocks in a row whose stamps followed on
        self.overflows = 0  # blocks PortAudio reported as overrun (sound lost before we got it)
        self._latency = 0.02  # until the stream reports its own (the callback may run before that)
        self._stream = self._open(device)
        self._latency = float(self._stream.latency)
        self._watchdog = threading.Thread(target=self._watch, name="mimic-audio-watch", daemon=True)
        self._watchdog.start()

    def _open(self, device: MicrophoneInfo):
        """A started input stream at 48 kHz, else at the device's own rate (hardware devices may insist)."""
        global _open_microphones
        sd = _sounddevice()
        error: Exception | None = None
        with _PORTAUDIO_LOCK:
            for rate in dict.fromkeys((MIC_RATE, device.default_rate)):
                self.format = AudioFormat(rate, self.format.channels)
                try:
                    stream = sd.InputStream(
                        device=device.index, samplerate=rate, channels=self.format.channels, dtype="float32",
                        blocksize=rate // 100, latency="low", callback=self._on_block,  # 10 ms blocks
                        finished_callback=self._on_finished,
                    )
                except (sd.PortAudioError, ValueError) as exc:
                    error = exc
                    continue
                try:
                    stream.start()
                except sd.PortAudioError as exc:
                    stream.close()
                    error = exc
                    continue
                _open_microphones += 1
                return stream
        raise AudioError(f"cannot open microphone {device.name!r}: {error}")

    def close(self) -> None:
        global _open_microphones
        if self._closing:
            return
        self._closing = True
        with _PORTAUDIO_LOCK:
            with contextlib.suppress(Exception):  # a stream whose device vanished may fail to close cleanly
                self._stream.close()
            _open_microphones -= 1

    def _on_block(self, indata: np.ndarray, frames: int, times, status) -> None:
        now = time.monotonic()
        self._last_callback = now
        if status.input_overflow:
            self.overflows += 1
        t = self._stamp(now, frames, times)
        if self._warming_up(t, frames, now):
            return
        self._publish(AudioBlock(indata.copy(), t))

    def _warming_up(self, t: float, frames: int, now: float) -> bool:
        """True while the stream is still settling (PulseAudio first hands over a backlog with shrinking latency)."""
        follows_on = self._expected_next is not None and abs(t - self._expected_next) < 0.002
        self._steady = self._steady + 1 if follows_on else 0
        self._expected_next = t + frames / self.format.rate
        if self.blocks_captured:
            return False
        self._first_callback = self._first_callback or now
        running = now - self._first_callback
        return running < WARM_UP_MAX_S and (running < WARM_UP_S or self._steady < WARM_UP_BLOCKS)

    def _stamp(self, now: float, frames: int, times) -> float:
        """Monotonic time of the block's first sample: the ADC time where PortAudio knows it, else arrival − latency."""
        self._clock_offsets.append(now - times.currentTime)
        offset = sorted(self._clock_offsets)[len(self._clock_offsets) // 2]  # PortAudio's clock → monotonic
        adc = times.inputBufferAdcTime
        if adc > 0 and 0.0 <= times.currentTime - adc < 2.0:
            return adc + offset
        return now - frames / self.format.rate - self._latency

    def _on_finished(self) -> None:
        if not self._closing:
            self._lose(f"{self.name}: lost (unplugged or taken away) — recording continues without sound")

    def _watch(self) -> None:
        while not self._closing:
            time.sleep(0.2)
            silent_for = time.monotonic() - self._last_callback
            if not self._closing and self.blocks_captured and silent_for > LOST_AFTER_S:
                self._lose(f"{self.name}: stopped delivering sound — recording continues without sound")
                return


# ------------------------------------------------------------------------------- a video's own audio


class FileAudio(_AudioHub):
    """The audio track of a `VideoFileSource`, played out in step with its frames as if a microphone heard it.

    Each block is stamped with the monotonic time at which the source shows the frame of the
    same media time (the source's loop anchors), so a looped clip keeps its sound in sync.
    """

    def __init__(self, source: VideoFileSource) -> None:
        self.source = source
        self.path = source.path
        try:
            with av.open(str(self.path)) as container:
                if not container.streams.audio:
                    raise AudioError(f"{self.path.name} has no audio track to record")
                stream = container.streams.audio[0]
                channels = 1 if stream.codec_context.layout.nb_channels == 1 else 2
                rate = stream.codec_context.sample_rate or MIC_RATE
        except av.error.FFmpegError as exc:
            raise AudioError(f"cannot read audio from {self.path}: {exc}") from None
        problem = sound_track_problem(self.path)  # a damaged track is left out here, not mid-recording
        if problem is not None:
            raise AudioError(f"the sound track of {self.path.name} cannot be decoded ({problem})")
        super().__init__(f"{self.path.name} (its own audio)", AudioFormat(rate, channels))
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mimic-file-audio", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=2.0)

    def _run(self) -> None:
        loop = self.source.loops  # the pass the video is in now (audio may be switched on mid-session)
        try:
            while not self._closed.is_set():
                if not self._play_once(loop) or not self.source.loop:
                    break
                loop += 1
        except av.error.FFmpegError as exc:
            self._lose(f"{self.name}: cannot decode ({exc}) — recording continues without sound")

    def _play_once(self, loop: int) -> bool:
        """Publish one pass over the track, paced by the video's anchor for `loop`; False when closed."""
        layout = "mono" if self.format.channels == 1 else "stereo"
        resampler = av.AudioResampler(format="flt", layout=layout, rate=self.format.rate)
        with av.open(str(self.path)) as container:
            video = container.streams.video[0] if container.streams.video else None
            origin = float(video.start_time * video.time_base) if video and video.start_time is not None else 0.0
            for frame in container.decode(container.streams.audio[0]):
                anchor = self._anchor(loop)
                if anchor is None:
                    return False
                media_t = float(frame.time) - origin if frame.time is not None else 0.0
                for out in resampler.resample(frame):
                    samples = out.to_ndarray().reshape(-1, self.format.channels)
                    block = AudioBlock(np.ascontiguousarray(samples, np.float32), anchor + media_t)
                    # Like a microphone: a block is there once its last sample has been "heard".
                    due = block.t + len(samples) / self.format.rate
                    if self._closed.wait(max(0.0, due - time.monotonic())):
                        return False
                    if due > time.monotonic() - 2.0:  # sound of a pass joined late is skipped, not flooded out
                        self._publish(block)
                    media_t += len(samples) / self.format.rate
        return True

    def _anchor(self, loop: int) -> float | None:
        """The monotonic time of media time 0 in pass `loop` of the video (waits for the video to get there)."""
        while not self._closed.is_set():
            anchor = self.source.anchor(loop)
            if anchor is not None:
                return anchor
            self._closed.wait(0.01)
        return None


# ------------------------------------------------------------------------------------------- opening


def open_audio(spec: str | None, video_source: VideoFileSource | None = None) -> AudioSource | None:
    """None / "none" → no sound; "source" → the video source's own track; else a microphone (see find_microphone)."""
    if spec is None or spec.lower() == NO_AUDIO:
        return None
    if spec.lower() == SOURCE_AUDIO:
        if video_source is None:
            raise AudioError("the source's own sound needs a video file as the source")
        return FileAudio(video_source)
    return Microphone(find_microphone(spec))

