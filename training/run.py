"""A real training run from files: prepared data + ReStyle + loss-network weights → Trainer.

Under torchrun every process calls `train` with the same options; the main process (rank 0)
logs, validates to disk and writes checkpoints, best_model.pt and the pack.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from engine.runtime.weights import load_arcface
from training.distributed import join, pick_device, rank_from_env, shutdown
from training.errors import TrainingError
from training.frames import FrameDataset, split_identities
from training.losses import LossWeights, TransferLoss
from training.sources import LossBackbones, build_model, init_encoder_from_arcface, loss_networks
from training.trainer import TrainConfig, Trainer, TrainResult, latest_checkpoint, read_training_checkpoint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    data: Path  # prepared-data folder with latents
    out: Path  # run folder
    restyle: Path  # restyle_psp_ffhq_encode.pt
    stylegan: Path | None = None  # G to train against (default: ReStyle's)
    lpips_alexnet: Path | None = None
    lpips_linear: Path | None = None
    arcface: Path | None = None
    random_loss_backbones: bool = False  # tests only
    steps: int = 500_000
    batch_size: int = 4
    lr: float = 1e-4
    finetune_generator: bool = False
    cosface: float = 0.0
    val_identities: int = 4
    log_every: int = 100
    val_every: int = 1000
    checkpoint_every: int = 5000
    workers: int = 4
    device: str = "auto"
    amp: bool = True
    seed: int = 0
    resume: bool = False


def train(options: RunOptions) -> TrainResult | None:
    """Run (or resume) the training; the main process returns the result, the others None."""
    o = options
    rank = rank_from_env()
    device = pick_device(o.device, rank)
    resume = latest_checkpoint(o.out) if o.resume else None
    if o.resume and resume is None:
        raise TrainingError(f"--resume: no checkpoints in {Path(o.out) / 'checkpoints'}")
    if not o.resume and latest_checkpoint(o.out) is not None:
        raise TrainingError(f"{o.out} already holds a run; add --resume to continue it or pick another folder")
    resume_state = read_training_checkpoint(resume) if resume is not None else None  # a bad file fails first
    weights = LossWeights(cosface=o.cosface)
    files = LossBackbones(o.lpips_alexnet, o.lpips_linear, o.arcface, o.random_loss_backbones)
    lpips, arcface = loss_networks(weights, files, seed=o.seed)
    model = build_model(o.restyle, o.stylegan)
    if o.arcface is not None and not o.random_loss_backbones:
        copied = init_encoder_from_arcface(model, arcface if arcface is not None else load_arcface(o.arcface))
        log.info("E_m starts from ArcFace's IR-SE body (%d tensors), as pSp's encoders do", copied)
    g = model.config.generator
    train_ids, val_ids = split_identities(o.data, o.val_identities)
    size = model.config.input_size
    train_set = FrameDataset(o.data, train_ids, size, g.n_latent, g.style_dim, seed=o.seed)
    val_set = FrameDataset(o.data, val_ids, size, g.n_latent, g.style_dim, seed=o.seed + 1)
    log.info("%d training frames of %d identities; %d validation frames of %d identities",
             len(train_set), len(train_ids), len(val_set), len(val_ids))
    config = TrainConfig(steps=o.steps, batch_size=o.batch_size, lr=o.lr, loss=weights,
                         finetune_generator=o.finetune_generator, seed=o.seed, log_every=o.log_every,
                         val_every=o.val_every, checkpoint_every=o.checkpoint_every, workers=o.workers, amp=o.amp)
    join(rank, device)
    try:
        trainer = Trainer(config, model, TransferLoss(weights, lpips, arcface), train_set, val_set, o.out, o.restyle,
                          arcface=None if o.random_loss_backbones else o.arcface, device=device, rank=rank)
        result = trainer.run(resume, resume_state)
    finally:
        shutdown(rank)
    return result if rank.is_main else None
