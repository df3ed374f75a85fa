"""Identity latents for training: per identity, ReStyle inversions of 10 of its frames (as the paper).

Frames are picked evenly over the identity's prepared crops (all clips, in order), inverted with
E_i + G in `restyle_iters` iterations, and saved as DATA/latents/<identity>.npy [k, n, D]
(k = 10, or fewer for an identity with fewer frames). Resumable: existing files are kept.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.stylegan.images import to_tensor
from engine.media.video_io import read_image
from engine.runtime import weights
from models.checkpoints.errors import CheckpointError
from models.checkpoints.pack import file_sha256
from models.paper import ReStyleInverter
from training.cache import LATENTS, frame_path, latent_path, read_manifest
from training.errors import TrainingError

log = logging.getLogger(__name__)

PER_IDENTITY = 10
RESTYLE_HINT = ("ReStyle's restyle_psp_ffhq_encode.pt (github.com/yuval-alaluf/restyle-encoder, "
                "'ReStyle-pSp FFHQ') or a Mimic pack made from it")


@dataclass
class LatentsReport:
    identities: int = 0  # identities inverted in this run
    already_done: int = 0  # identities of this shard that had latents
    frames: int = 0  # frames inverted


def load_inverter(path: Path | None) -> ReStyleInverter:
    """E_i + G + latent_avg alone (no paper model) from ReStyle's checkpoint or from a Mimic pack (eval, frozen)."""
    if path is None:
        raise TrainingError(f"identity latents need the ReStyle encoder: give --restyle, {RESTYLE_HINT}")
    try:
        return weights.load_inverter(Path(path))
    except CheckpointError as exc:
        raise TrainingError(f"{exc} ({RESTYLE_HINT})") from None


def frames_by_identity(data: Path) -> dict[str, list[tuple[str, int]]]:
    """identity → its (clip, frame number) crops, in clip and frame order."""
    out: dict[str, list[tuple[str, int]]] = {}
    for record in sorted(read_manifest(data).values(), key=lambda r: r.clip):
        out.setdefault(record.identity, []).extend((record.clip, n) for n in record.frames)
    return {k: v for k, v in out.items() if v}


def compute_latents(data: Path, restyle: Path | None, device: torch.device = torch.device("cpu"),
                    per_identity: int = PER_IDENTITY, rank: int = 0, world: int = 1,
                    progress: bool = True) -> LatentsReport:
    """Invert `per_identity` frames of every identity of this shard (identity i belongs to shard i mod world)."""
    from tqdm import tqdm

    data = Path(data)
    identities = frames_by_identity(data)
    if not identities:
        raise TrainingError(f"{data} has no prepared frames; run `python -m app train prepare` first")
    inverter = load_inverter(restyle).to(device)
    _check_info(data, Path(restyle), inverter)
    mine = [name for i, name in enumerate(sorted(identities)) if i % world == rank]
    todo = [name for name in mine if not latent_path(data, name).is_file()]
    report = LatentsReport(already_done=len(mine) - len(todo))
    size = inverter.config.input_size
    for name in tqdm(todo, desc="invert", unit="identity", disable=not progress):
        frames = identities[name]
        picks = sorted(set(np.linspace(0, len(frames) - 1, min(per_identity, len(frames))).round().astype(int)))
        x = torch.cat([to_tensor(read_image(frame_path(data, *frames[i])), size) for i in picks]).to(device)
        with torch.no_grad():
            latents = inverter.invert(x).float().cpu().numpy()  # [k, n, D]
        _save_npy(latent_path(data, name), latents)
        report.identities += 1
        report.frames += len(picks)
    return report


def _check_info(data: Path, restyle: Path, inverter: ReStyleInverter) -> None:
    """latents/info.json names the weights; latents from other weights are not mixed in."""
    folder = data / LATENTS
    folder.mkdir(parents=True, exist_ok=True)
    g = inverter.config.generator
    info = {"restyle": restyle.name, "sha256": file_sha256(restyle), "n_latent": g.n_latent, "style_dim": g.style_dim}
    path = folder / "info.json"
    if path.is_file():
        old = json.loads(path.read_text())
        if old.get("sha256") != info["sha256"]:
            raise TrainingError(f"{folder} holds latents from {old.get('restyle')} (another file than {restyle.name}); "
                                "delete that folder to redo them")
        return
    tmp = path.with_name(f"info.json.{id(info)}.part")
    tmp.write_text(json.dumps(info, indent=2) + "\n")
    tmp.replace(path)


def _save_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.stem + ".part.npy")
    np.save(tmp, np.ascontiguousarray(array, dtype=np.float32))
    tmp.replace(path)
