"""Data preparation: talking-head videos → aligned 256x256 crops (+ identity latents, see latents.py).

Videos: `VIDEOS/<identity>/<video>/<clip>.mp4` (VoxCeleb2) or `VIDEOS/<identity>/*.mp4`. Frames are
sampled at `sample_fps` per second of video, FFHQ-aligned with MediaPipe (engine.face.align's quality
path) and cached as PNG (layout: training.cache). The clip is the unit of work and of resumption:
a clip listed in the manifest is never redone, a clip cut off by a crash is redone from scratch.
Unreadable videos and videos without a face are recorded as skipped, with the reason, and reported.

Work splits two ways, combinable: `workers` processes on this machine, and `rank`/`world` shards
(clip i belongs to shard i mod world) for several machines or jobs writing to one shared folder.
"""
from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from engine.face.align import align_face
from engine.errors import MediaError, NoFaceError
from engine.face.landmarks import FaceMeshDetector, MeshConfig
from engine.media.video_io import VideoReader, write_image
from training.cache import ClipRecord, ManifestWriter, clip_name, frame_path, identity_of, read_manifest
from training.errors import TrainingError

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


@dataclass(frozen=True)
class PrepareConfig:
    size: int = 256  # crop size (the encoders' input)
    sample_fps: float = 2.0  # frames taken per second of video


@dataclass
class PrepareReport:
    clips: int = 0  # clips processed in this run (skipped ones included)
    frames: int = 0  # crops written in this run
    already_done: int = 0  # clips of this shard found in the manifest and left alone
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (clip, reason)


def find_videos(videos: Path) -> list[Path]:
    """Every video file under `videos`, sorted (the order shards and resumption rely on)."""
    videos = Path(videos)
    if not videos.is_dir():
        raise TrainingError(f"videos folder not found: {videos}")
    return sorted(p for p in videos.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())


def prepare(videos: Path, data: Path, config: PrepareConfig = PrepareConfig(), workers: int = 1, rank: int = 0,
            world: int = 1, progress: bool = True) -> PrepareReport:
    """Align this shard's clips that the manifest does not list yet; see the module docstring."""
    from tqdm import tqdm

    if not 0 <= rank < world:
        raise TrainingError(f"shard {rank} of {world} does not exist (0 ≤ rank < world size)")
    if config.sample_fps <= 0:
        raise TrainingError(f"the sampling rate must be positive, got {config.sample_fps} frames per second")
    videos, data = Path(videos), Path(data)
    found = find_videos(videos)
    if not found:
        raise TrainingError(f"no videos ({', '.join(VIDEO_SUFFIXES)}) under {videos}")
    mine = [v for i, v in enumerate(found) if i % world == rank]
    done = read_manifest(data)
    todo = [v for v in mine if clip_name(v, videos) not in done]
    report = PrepareReport(already_done=len(mine) - len(todo))
    jobs = [(v, clip_name(v, videos)) for v in todo]
    with ManifestWriter(data, rank, world) as manifest, \
            tqdm(total=len(jobs), desc=f"align {rank + 1}/{world}" if world > 1 else "align", unit="clip",
                 disable=not progress) as bar:
        for record in _run(jobs, data, config, workers):
            manifest.add(record)
            report.clips += 1
            report.frames += len(record.frames)
            if record.skipped:
                report.skipped.append((record.clip, record.skipped))
                log.warning("skipped %s: %s", record.clip, record.skipped)
            bar.update(1)
            bar.set_postfix(frames=report.frames, skipped=len(report.skipped))
    return report


def _run(jobs: list[tuple[Path, str]], data: Path, config: PrepareConfig, workers: int) -> Iterator[ClipRecord]:
    if workers <= 1 or len(jobs) <= 1:
        aligner = _ClipAligner(data, config)  # in this process: closed when done (its MediaPipe graph)
        try:
            yield from (aligner.align_clip(*job) for job in jobs)
        finally:
            aligner.close()
        return
    context = multiprocessing.get_context("spawn")  # MediaPipe's threads do not survive fork
    with context.Pool(workers, initializer=_start_worker, initargs=(data, config)) as pool:
        yield from pool.imap_unordered(_align_job, jobs)


_worker: "_ClipAligner | None" = None  # a pool worker's own (it lives as long as its process)


def _start_worker(data: Path, config: PrepareConfig) -> None:
    global _worker
    if _worker is None or _worker.data != data or _worker.config != config:
        _worker = _ClipAligner(data, config)


def _align_job(job: tuple[Path, str]) -> ClipRecord:
    assert _worker is not None
    return _worker.align_clip(*job)


class _ClipAligner:
    """One per process: a MediaPipe detector (photo mode: sampled frames are far apart) and the settings."""

    def __init__(self, data: Path, config: PrepareConfig) -> None:
        self.data, self.config = data, config
        self.detector = FaceMeshDetector(MeshConfig(static_images=True))

    def close(self) -> None:
        self.detector.close()

    def align_clip(self, video: Path, clip: str) -> ClipRecord:
        record = ClipRecord(clip, identity_of(clip))
        try:
            for number, frame in self._sampled_frames(video):
                try:
                    aligned = align_face(frame, self.config.size, self.detector)
                except NoFaceError:
                    continue
                self._write(frame_path(self.data, clip, number), aligned.image)
                record.frames.append(number)
        except (MediaError, OSError, ValueError, cv2.error) as exc:  # the video's fault: skip it
            if not record.frames:  # a clip that breaks off keeps the frames read before
                record.skipped = f"unreadable: {exc}"
                return record
            log.warning("%s: stopped after %d frames: %s", clip, len(record.frames), exc)
        if not record.frames:
            record.skipped = "no face in any sampled frame"
        return record

    @staticmethod
    def _write(path: Path, image: np.ndarray) -> None:
        """Write a crop; failing to write is the data folder's fault and stops the run (TrainingError)."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_image(path, image)
        except (MediaError, OSError) as exc:
            raise TrainingError(f"cannot write the prepared frames: {exc}") from None

    def _sampled_frames(self, video: Path) -> Iterator[tuple[int, np.ndarray]]:
        """(frame number, RGB frame) at sample_fps, by the frames' timestamps."""
        interval = 1.0 / self.config.sample_fps
        next_t = 0.0
        with VideoReader(video) as reader:
            for number, (frame, t) in enumerate(reader.timed_frames()):
                if t + 1e-6 >= next_t:
                    yield number, frame
                    while next_t <= t + 1e-6:
                        next_t += interval
