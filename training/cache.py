"""The prepared-data folder that `prepare` writes and training reads.

    DATA/manifest/shard-R-of-W.jsonl   one JSON line per finished clip (any number of shard files:
                                       each preparing process appends to its own)
    DATA/frames/<clip>/<n>.png         aligned 256x256 RGB crops; n = frame number in the video
    DATA/latents/<identity>.npy        float32 [k ≤ 10, n_latent, D]: ReStyle inversions of k frames
    DATA/latents/info.json             which ReStyle weights made them

<clip> is the video's path under the videos folder without its suffix (VoxCeleb2: id/video/clip);
the identity is its first folder (a video straight in the videos folder is its own identity).
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

MANIFEST = "manifest"
FRAMES = "frames"
LATENTS = "latents"


@dataclass
class ClipRecord:
    clip: str  # posix path under the videos folder, without suffix
    identity: str
    frames: list[int] = field(default_factory=list)  # frame numbers with an aligned crop
    skipped: str | None = None  # why the clip gave nothing (unreadable, no face), else None

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @staticmethod
    def from_json(line: str) -> "ClipRecord":
        data = json.loads(line)
        return ClipRecord(data["clip"], data["identity"], list(data.get("frames", [])), data.get("skipped"))


def clip_name(video: Path, root: Path) -> str:
    return PurePosixPath(Path(video).relative_to(root).with_suffix("").as_posix()).as_posix()


def identity_of(clip: str) -> str:
    parts = PurePosixPath(clip).parts
    return parts[0]


def frame_path(data: Path, clip: str, frame: int) -> Path:
    return Path(data) / FRAMES / clip / f"{frame:06d}.png"


def latent_path(data: Path, identity: str) -> Path:
    return Path(data) / LATENTS / f"{identity}.npy"


def read_manifest(data: Path) -> dict[str, ClipRecord]:
    """Every finished clip of every shard file (a torn last line from a killed run is ignored)."""
    records: dict[str, ClipRecord] = {}
    for path in sorted((Path(data) / MANIFEST).glob("*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                record = ClipRecord.from_json(line)
            except (ValueError, KeyError):
                continue
            records[record.clip] = record
    return records


class ManifestWriter:
    """Appends finished clips to this process's shard file, one flushed line each."""

    def __init__(self, data: Path, rank: int = 0, world: int = 1) -> None:
        folder = Path(data) / MANIFEST
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"shard-{rank:05d}-of-{world:05d}.jsonl"
        self._file: IO[str] = self.path.open("a")

    def add(self, record: ClipRecord) -> None:
        self._file.write(record.to_json() + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "ManifestWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
