"""A session's sound: where recordings take it from (a microphone, the video's own track, none), opened and
closed in the background, and the microphone list."""
from __future__ import annotations

import logging
from typing import Callable

from engine.media.audio import NO_AUDIO, SOURCE_AUDIO, AudioSource, MicrophoneInfo, list_microphones, open_audio
from engine.media.camera import FrameSource, VideoFileSource
from engine.session.events import Notice, Part
from engine.session.state import SessionContext
from engine.tasks import Task

log = logging.getLogger(__name__)


class Sound:
    """Owns `state.audio` (the sound source open now) and `state.audio_spec` / `audio_message` / `microphones`."""

    def __init__(self, ctx: SessionContext, current_source: Callable[[], FrameSource | None]) -> None:
        self.ctx = ctx
        self._current_source = current_source  # the video whose own track "source" means
        self._task: Task | None = None

    @property
    def busy(self) -> bool:
        """The sound source is being opened."""
        return self._task is not None

    def use(self, spec: str) -> None:
        """Take recordings' sound from microphone `spec` (name, index, "default"), "source" (the video's own
        track) or "none". The old source closes and the new one opens in the background; a failure is a
        warning, recordings are then silent."""
        ctx, state = self.ctx, self.ctx.state
        if self._task is not None:
            self._task.cancel()
        old, state.audio = state.audio, None
        state.audio_spec = spec
        silent = spec.lower() == NO_AUDIO
        source = self._current_source()
        video = source if isinstance(source, VideoFileSource) else None

        def work(progress, cancel) -> AudioSource | None:
            if old is not None:
                old.close()  # a PortAudio stream may take a while to close: never on the owner thread
            return None if silent else open_audio(spec, video)

        def done(opened: AudioSource | None) -> None:
            self._task = None
            state.audio = opened
            if opened is not None:
                state.audio_message = f"Recording sound from {opened.name}."
                log.info("sound for recordings: %s", opened.name)
            ctx.changed(Part.AUDIO)

        def failed(message: str) -> None:
            self._task = None
            state.audio_message = f"No sound: {message}"
            if spec != "default":  # a chosen device is worth a banner; no microphone at all only the hint
                ctx.notify(Notice("warning", f"{message} — recordings will be silent", 8000))
            ctx.changed(Part.AUDIO)

        state.audio_message = "Recordings are silent." if silent else "Opening the microphone…"
        self._task = ctx.run(Task("sound", work, ctx.post, done, failed,
                                  discard=lambda opened: opened and opened.close()))
        ctx.changed(Part.AUDIO)

    def source_changed(self) -> None:
        """The video source changed: "source" sound follows it (or none: a camera has no track)."""
        if self.ctx.state.audio_spec == SOURCE_AUDIO and self._task is None:
            self.use(SOURCE_AUDIO)

    def level_db(self) -> float | None:
        """Peak level of the sound source over the last 100 ms (dBFS), None without one."""
        audio = self.ctx.state.audio
        return audio.level_db() if audio is not None else None

    def refresh_microphones(self) -> None:
        def done(mics: list[MicrophoneInfo]) -> None:
            self.ctx.state.microphones = mics
            self.ctx.changed(Part.AUDIO)

        self.ctx.run(Task("microphone list", lambda progress, cancel: list_microphones(), self.ctx.post, done,
                          log.info))

    def close(self) -> None:
        audio, self.ctx.state.audio = self.ctx.state.audio, None
        if audio is not None:
            audio.close()
