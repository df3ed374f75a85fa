"""Offline rendering: a driving video or image + a target → an MP4 (H.264, driver's audio) or a PNG.

Frames where the driver shows no face are never dropped: the reenactor holds its last
output (before the first face: the target at rest), and the count is reported.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from engine.errors import MediaError
from engine.output_file import check_output
from engine.reenactor import Reenactor, TargetSpec
from engine.media.video_io import (IMAGE_SUFFIXES, DecodeError, H264Writer, VideoReader, read_image,
                                   sound_track_problem, write_image)

log = logging.getLogger(__name__)

LATENT_SUFFIXES = {".npy", ".pkl"}
STILL_SUFFIXES = tuple(s for s in IMAGE_SUFFIXES if s != ".gif")  # drivers that are one picture; a GIF drives as a video
VIDEO_SUFFIXES = {".mp4"}

# frame_progress(frames done, frames expected or None)
FrameProgress = Callable[[int, "int | None"], None]


@dataclass
class RenderReport:
    output: Path
    frames: int
    fps: float
    no_face_frames: int
    stage_ms: dict[str, float] = field(default_factory=dict)  # median per stage


def parse_target(text: str, seed: int = 0) -> TargetSpec:
    """`random`, a latent file (.npy/.pkl) or an image file."""
    if text == "random":
        return TargetSpec.random(seed)
    path = Path(text)
    if path.suffix.lower() in LATENT_SUFFIXES:
        if not path.is_file():
            raise MediaError(f"latent not found: {path}")
        return TargetSpec.from_latent(path)
    return TargetSpec.from_image(read_image(path), path)


def render(reenactor: Reenactor, driving: Path, output: Path, progress: FrameProgress | None = None) -> RenderReport:
    """Reenact every frame of `driving` (video or image) into `output` (.mp4 or .png)."""
    driving, output = Path(driving), Path(output)
    check_render_output(driving, output)
    if driving.suffix.lower() in STILL_SUFFIXES:
        return _render_image(reenactor, driving, output)
    return _render_video(reenactor, driving, output, progress)


def check_render_output(driving: Path, output: Path) -> None:
    """Refuse an output `render` cannot write (wrong type for the driver, a folder, a device, a missing
    folder) with one line — before any work (the `render` command calls it before building anything)."""
    driving, output = Path(driving), Path(output)
    suffix = output.suffix.lower()
    if suffix not in VIDEO_SUFFIXES | {".png"}:
        if output.is_dir():
            raise MediaError(f"cannot write {output}: it is a folder; give the path of an .mp4 or .png file")
        raise MediaError(f"cannot write {output}: expected an .mp4 (video) or .png (image) output")
    check_output(output)  # never over a device, FIFO or folder
    if driving.suffix.lower() in STILL_SUFFIXES and suffix != ".png":
        raise MediaError(f"{driving} is an image: write the result as a .png, not {output.name}")
    if driving.suffix.lower() not in STILL_SUFFIXES and suffix == ".png":
        raise MediaError(f"{driving} is a video: write the result as an .mp4, not {output.name}")


def _render_image(reenactor: Reenactor, driving: Path, output: Path) -> RenderReport:
    result = reenactor.drive(read_image(driving))
    if not result.face_found:
        raise MediaError(f"no face found in {driving}")
    write_image(output, result.image)
    return RenderReport(output, frames=1, fps=0.0, no_face_frames=0, stage_ms=dict(result.timings_ms))


def _render_video(reenactor: Reenactor, driving: Path, output: Path, progress: FrameProgress | None) -> RenderReport:
    """Every frame of `driving` into `output` through `<name>.partial.mp4`, renamed into place at the end.

    The driver's sound is carried over when its track decodes; an undecodable one is left out with one warning.
    A frame of the driver that fails to decode ends the render: the frames before it are kept in `output`
    and the error names the driver and the frame."""
    timings: dict[str, list[float]] = {}
    no_face = 0
    frames = 0
    partial = output.with_name(output.stem + ".partial.mp4")
    failed: DecodeError | None = None
    try:
        with VideoReader(driving) as video:
            expected = video.frame_count
            audio = driving if video.has_audio else None
            problem = sound_track_problem(driving) if audio is not None else None
            if problem is not None:
                log.warning("the sound track of %s cannot be decoded (%s): rendering without sound", driving, problem)
                audio = None
            with H264Writer.constant_rate(partial, video.fps, reenactor.output_size, audio_from=audio) as writer:
                frames_in = iter(video)
                while True:
                    try:
                        frame = next(frames_in, None)
                    except DecodeError as exc:
                        failed = exc
                        break
                    if frame is None:
                        break
                    result = reenactor.drive(frame)
                    no_face += not result.face_found
                    for stage, ms in result.timings_ms.items():
                        timings.setdefault(stage, []).append(ms)
                    writer.write(result.image)
                    frames += 1
                    if progress:
                        progress(frames, expected)
            fps = float(video.fps)
    except Exception:  # nothing half-written is left behind (an interrupted render keeps its playable partial)
        partial.unlink(missing_ok=True)
        raise
    if frames == 0:
        partial.unlink(missing_ok=True)
        raise failed or MediaError(f"{driving} has no frames")
    check_output(output)  # again: the rename replaces whatever is there now
    partial.replace(output)
    if failed is not None:
        raise MediaError(f"{failed}; the {frames} frame(s) before it were written to {output}")
    if no_face:
        log.warning("%d of %d frames had no face: the last output was held", no_face, frames)
    medians = {k: float(np.median(v)) for k, v in timings.items()}
    return RenderReport(output, frames=frames, fps=fps, no_face_frames=no_face, stage_ms=medians)
