"""The training loop (docs/training.md): E_m and M learn, E_i is not involved (latents are precomputed),
G stays frozen unless `finetune_generator` ("Ours-Gen").

One code path for every setting: one CPU process, N processes under torchrun (gloo or NCCL,
DistributedDataParallel, global-batch BatchNorm), CUDA with autocast. The run folder holds

    config.json              the TrainConfig
    metrics.jsonl            one line per logged window / validation: {"step", "split", "loss", terms…}
    tensorboard/             the same scalars, plus the validation grids (when tensorboard is installed)
    samples/step_N.png       validation grid: driver | target (G(w_B)) | output (transfer) | reconstruction
    checkpoints/step_N.pt    trainable weights + optimiser state (the last `keep_checkpoints`)
    best_model.pt            the paper's checkpoint format, from the best validation loss
    model.safetensors        Mimic pack of the best model (+ `model.json` manifest), written at the end
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from models.checkpoints.errors import CheckpointError
from models.checkpoints.pack import state_hash
from models.checkpoints.safe_pickle import describe, kind
from models.checkpoints.torch_file import read_pickled
from models.paper import PaperModel
from models.stylegan2 import NoiseMode
from training.data import KeyedDataset, StepSampler
from training.distributed import Rank, mean_over_ranks, sync_batchnorm
from training.errors import TrainingError
from training.export import write_pack, write_paper_checkpoint
from training.grid import save_grid
from training.losses import LossWeights, TransferLoss
from training.optim import Ranger
from training.step import TransferStep

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 500_000  # optimiser steps (the paper: 500k)
    batch_size: int = 4  # global batch, split evenly over the processes
    lr: float = 1e-4  # Ranger's learning rate
    loss: LossWeights = LossWeights()
    finetune_generator: bool = False  # also train G (the paper's "Ours-Gen")
    noise: NoiseMode = NoiseMode.RANDOM  # G's noise while training (the paper: fresh noise per pass)
    seed: int = 0  # data order and noise
    log_every: int = 100  # steps per logged training window
    val_every: int = 1000  # steps between validations (and at the last step)
    val_samples: int = 16  # validation samples (fixed keys)
    grid_rows: int = 4  # validation samples shown in the grid
    checkpoint_every: int = 5000  # steps between checkpoints (and at the last step)
    keep_checkpoints: int = 2  # newest checkpoints kept on disk
    workers: int = 4  # data-loading processes per training process
    amp: bool = True  # autocast on CUDA (bf16 where supported, else fp16 with loss scaling); ignored on CPU

    def as_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["noise"] = self.noise.value
        return data


@dataclass
class TrainResult:
    step: int  # steps done
    best_val: float | None  # best validation loss
    paper_checkpoint: Path | None  # best_model.pt
    pack: Path | None  # the Mimic pack
    history: list[dict[str, float]] = field(default_factory=list)  # metrics logged by this process (main rank)


class Trainer:
    """Trains `model`'s E_m and M (and G with finetune_generator) on keyed datasets.

    restyle: the ReStyle checkpoint whose E_i and latent_avg go into the final pack (the identity
    latents of the data come from it); arcface: optionally stored in the pack for the identity metric.
    """

    def __init__(self, config: TrainConfig, model: PaperModel, criterion: TransferLoss, train_set: KeyedDataset,
                 val_set: KeyedDataset, out: Path, restyle: Path, arcface: Path | None = None,
                 device: torch.device | None = None, rank: Rank = Rank(), progress: bool = True) -> None:
        self.config, self.out, self.restyle, self.arcface = config, Path(out), Path(restyle), arcface
        self.train_set, self.val_set, self.rank, self.progress = train_set, val_set, rank, progress
        self.device = device or torch.device("cpu")
        if config.batch_size % rank.world:
            raise TrainingError(f"batch size {config.batch_size} does not split over {rank.world} processes")
        self.model = model.to(self.device)
        model.decoder.requires_grad_(config.finetune_generator)
        if rank.distributed:
            sync_batchnorm(model.encoder, self.device)
        self.step_module = TransferStep(model, config.noise, cosface=config.loss.cosface > 0).train()
        self.forward = self.step_module
        if rank.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.forward = DistributedDataParallel(self.step_module, device_ids=ids, forward_sync_buffers=False)
        self.criterion = criterion.to(self.device)
        self.optimizer = Ranger([p for p in model.parameters() if p.requires_grad], lr=config.lr)
        self.amp_dtype: torch.dtype | None = None
        if config.amp and self.device.type == "cuda":
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.step = 0  # optimiser steps done
        self.best_val: float | None = None
        self.history: list[dict[str, float]] = []
        self._tensorboard: Any = None

    # ------------------------------------------------------------------------------------ the loop

    def run(self, resume: Path | None = None, resume_state: dict[str, Any] | None = None) -> TrainResult:
        """Train up to config.steps (from a checkpoint with `resume`, already read as `resume_state` if
        given); returns what was written."""
        cfg = self.config
        start = self.step = self.load_checkpoint(resume, resume_state) if resume is not None else 0
        if self.rank.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.json").write_text(json.dumps(cfg.as_json(), indent=2) + "\n")
        sampler = StepSampler(cfg.batch_size, start, cfg.steps, self.rank.rank, self.rank.world)
        loader = DataLoader(self.train_set, batch_sampler=sampler, num_workers=cfg.workers,
                            pin_memory=self.device.type == "cuda")
        window: dict[str, torch.Tensor] = {}
        window_steps = 0
        bar = tqdm(total=cfg.steps, initial=start, desc="train", unit="step", dynamic_ncols=True,
                   disable=not (self.progress and self.rank.is_main))
        try:
            for step, batch in zip(range(start, cfg.steps), loader):
                terms = self.train_step(batch, step)
                for k, v in terms.items():
                    window[k] = window.get(k, 0.0) + v
                window_steps += 1
                done = self.step = step + 1
                bar.update(1)
                if done % cfg.log_every == 0 or done == cfg.steps:
                    means = mean_over_ranks({k: v / window_steps for k, v in window.items()}, self.rank)
                    self._record(done, "train", means)
                    bar.set_postfix(loss=f"{means['loss']:.4f}")
                    window, window_steps = {}, 0
                if done % cfg.val_every == 0 or done == cfg.steps:
                    self.validate(done)
                if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                    self.save_checkpoint(done)
        finally:
            bar.close()
            if self._tensorboard is not None:
                self._tensorboard.close()
        return self._finish()

    def train_step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        """One optimiser step on this process's share of the step's batch; returns the detached terms."""
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            out = self.forward(batch["x"], batch["w_id"], batch["x1"], batch["w_id1"], seed=self._noise_seed(step))
            loss, terms = self.criterion(out)
        if not torch.isfinite(loss):
            raise TrainingError(f"the loss became {loss.item()} at step {step + 1}; lower the learning rate "
                                "or resume from an earlier checkpoint")
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        return terms

    def _noise_seed(self, step: int) -> int:
        return (self.config.seed * 1_000_003 + step) * 2  # the step's pair of seeds: outputs, identity target

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    # ------------------------------------------------------------------------------------ validation

    @torch.no_grad()
    def validate(self, step: int) -> dict[str, float]:
        """Mean losses over the fixed validation samples (every rank computes the same); saves the grid and,
        on improvement, best_model.pt."""
        cfg = self.config
        n = min(cfg.val_samples, len(self.val_set))
        loader = DataLoader(torch.utils.data.Subset(self.val_set, range(n)), batch_size=cfg.batch_size,
                            num_workers=min(cfg.workers, 2))
        self.step_module.eval()
        sums: dict[str, float] = {}
        rows: list[torch.Tensor] = []
        try:
            for batch in loader:
                batch = {k: v.to(self.device) for k, v in batch.items()}
                with self._autocast():
                    out = self.step_module(batch["x"], batch["w_id"], batch["x1"], batch["w_id1"],
                                           seed=self.config.seed * 2 + 1)
                    _, terms = self.criterion(out)
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + float(v) * len(batch["x"])
                if len(rows) < cfg.grid_rows:
                    rows += [torch.stack(r) for r in zip(out["x"], out["target1"], out["y_hat1"], out["y_hat"])]
        finally:
            self.step_module.train()
        means = {k: v / n for k, v in sums.items()}
        self._record(step, "val", means)
        if self.rank.is_main:
            grid = save_grid(self.out / "samples" / f"step_{step:07d}.png", rows[:cfg.grid_rows])
            if self._board() is not None:
                self._board().add_image("val/grid", grid, step, dataformats="HWC")
        if self.best_val is None or means["loss"] < self.best_val:
            self.best_val = means["loss"]
            if self.rank.is_main:
                write_paper_checkpoint(self.out / "best_model.pt", self.model, self._opts(step))
                log.info("step %d: validation loss %.5f (best so far) → best_model.pt", step, means["loss"])
        return means

    def _opts(self, step: int) -> dict[str, Any]:
        """The paper's option names, for best_model.pt."""
        cfg, w = self.config, self.config.loss
        return {"output_size": self.model.config.generator.size, "batch_size": cfg.batch_size,
                "learning_rate": cfg.lr, "optim_name": "ranger", "train_decoder": cfg.finetune_generator,
                "lpips_lambda": w.lpips, "lpips_lambda_crop": w.lpips_crop, "l2_lambda": w.l2,
                "l2_lambda_crop": w.l2_crop, "id_lambda": w.identity, "cosface_lambda": w.cosface,
                "max_steps": cfg.steps, "step": step, "best_val_loss": self.best_val, "noise": cfg.noise.value,
                "seed": cfg.seed, "writer": "mimic train"}

    # ------------------------------------------------------------------------------------ logging

    def _record(self, step: int, split: str, values: dict[str, float]) -> None:
        if not self.rank.is_main:
            return
        row = {"step": step, "split": split, **values}
        self.history.append(row)
        with (self.out / "metrics.jsonl").open("a") as f:
            f.write(json.dumps(row) + "\n")
        board = self._board()
        if board is not None:
            for k, v in values.items():
                board.add_scalar(f"{split}/{k}", v, step)
            board.flush()

    def _board(self) -> Any:
        """TensorBoard's writer, or None when the tensorboard package is not installed."""
        if self._tensorboard is None and self.rank.is_main:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                log.warning("tensorboard is not installed: metrics go to metrics.jsonl only (pip install tensorboard)")
                self._tensorboard = False
            else:
                self._tensorboard = SummaryWriter(str(self.out / "tensorboard"))
        return self._tensorboard or None

    # ------------------------------------------------------------------------------------ checkpoints

    def _trainable_state(self) -> dict[str, torch.Tensor]:
        keep = ("encoder.", "mapping_net.") + (("decoder.",) if self.config.finetune_generator else ())
        return {k: v.detach().clone() for k, v in self.model.state_dict().items() if k.startswith(keep)}

    def save_checkpoint(self, step: int) -> Path | None:
        """checkpoints/step_N.pt (main rank); older ones beyond keep_checkpoints are removed."""
        if not self.rank.is_main:
            return None
        folder = self.out / "checkpoints"
        folder.mkdir(parents=True, exist_ok=True)
        state = {
            "step": step,
            "model": self._trainable_state(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
            "best_val": self.best_val,
            "generator_hash": None if self.config.finetune_generator else state_hash(self.model.decoder.state_dict()),
            "config": self.config.as_json(),
        }
        path = folder / f"step_{step:07d}.pt"
        tmp = path.with_name(path.name + ".part")
        torch.save(state, tmp)
        tmp.replace(path)
        for old in sorted(folder.glob("step_*.pt"))[:-self.config.keep_checkpoints]:
            old.unlink()
        return path

    def load_checkpoint(self, path: Path, state: dict[str, Any] | None = None) -> int:
        """Restore weights, optimiser and counters from a checkpoint this trainer wrote (`state`: it, already
        read by `read_training_checkpoint`); returns its step."""
        path = Path(path)
        state = read_training_checkpoint(path) if state is None else state
        saved, mine = state["config"], self.config.as_json()
        changed = [k for k in ("batch_size", "finetune_generator", "loss", "noise", "seed") if saved.get(k) != mine[k]]
        if changed:
            raise TrainingError(f"{path.name} was trained with other {', '.join(changed)}; resume with the same settings")
        if state["generator_hash"] not in (None, state_hash(self.model.decoder.state_dict())):
            raise TrainingError(f"{path.name} was trained with another generator; resume with the same weights")
        missing = set(self._trainable_state()) - set(state["model"])
        if missing:
            raise TrainingError(f"{path.name} lacks {len(missing)} tensors (e.g. {sorted(missing)[0]})")
        try:
            self.model.load_state_dict(state["model"], strict=False)
            self.optimizer.load_state_dict(state["optimizer"])
            if self.scaler is not None and state["scaler"] is not None:
                self.scaler.load_state_dict(state["scaler"])
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as exc:
            raise TrainingError(f"{path.name} does not fit this run's model or optimiser ({describe(exc)})") from None
        self.best_val = state["best_val"]
        log.info("resumed from %s at step %d", path, state["step"])
        return int(state["step"])

    # ------------------------------------------------------------------------------------ the end

    def _finish(self) -> TrainResult:
        best = self.out / "best_model.pt"
        pack = None
        if self.rank.is_main and best.is_file():
            pack = write_pack(best, self.restyle, self.arcface, self.out / "model.safetensors")
        return TrainResult(self.step, self.best_val, best if best.is_file() else None, pack, self.history)


# What a training checkpoint holds (save_checkpoint): field → accepted types.
_CHECKPOINT_FIELDS: dict[str, tuple[type, ...]] = {
    "step": (int,), "model": (dict,), "optimizer": (dict,), "scaler": (dict, type(None)),
    "best_val": (float, int, type(None)), "generator_hash": (str, type(None)), "config": (dict,),
}


def read_training_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint of `save_checkpoint`, read like every other file: Mimic's restricted, bounded unpickler
    (never torch.load), then each field checked; TrainingError with one line otherwise."""
    try:
        state = read_pickled(path)
    except CheckpointError as exc:
        raise TrainingError(f"cannot resume from the training checkpoint: {exc}") from None
    if not isinstance(state, dict):
        raise TrainingError(f"{path.name} is not a Mimic training checkpoint (it holds {kind(state)})")
    for name, types in _CHECKPOINT_FIELDS.items():
        value = state.get(name, ...)
        if value is ... or type(value) is bool or not isinstance(value, types):
            found = "missing" if value is ... else kind(value)
            raise TrainingError(f"{path.name} is not a Mimic training checkpoint ({name} is {found})")
    if state["step"] < 0 or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                    for k, v in state["model"].items()):
        raise TrainingError(f"{path.name} is not a Mimic training checkpoint (bad step or model tensors)")
    return state


def latest_checkpoint(out: Path) -> Path | None:
    """The newest checkpoints/step_N.pt of a run folder, if any."""
    found = sorted((Path(out) / "checkpoints").glob("step_*.pt"))
    return found[-1] if found else None
