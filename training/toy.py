"""A toy world in which the paper's training provably has something to learn, small enough for a CPU.

The world: a tiny random StyleGAN2 G; K "people", each an identity latent w_k = G.map(z_k)
repeated over the W+ layers; J motion directions d_j ∈ W+, each acting on a band of layers
(coarse ≈ pose, middle ≈ expression); the "videos" are frames G(w_k + Σ_j a_j(t)·d_j) along
smooth random trajectories a(t) ∈ [-1, 1]^J. A perfect E_m and M exist (E_m reads a(t) off the
frame and M adds Σ a_j d_j to the identity), so the trainer has to discover them from pixels.

Training is the real thing — the same Trainer, TransferStep, TransferLoss (same terms and weights),
Ranger and pack export as a real run; only the data source and the loss backbones (LPIPS, ArcFace:
random, there are no pretrained weights here) are swapped. E_m (tiny IR-SE) and M start from scratch.

Figures, on held-out frames (motions never seen in training):
- reconstruction loss: the objective's reconstruction terms for ŷ = G(M(w_A ‖ E_m(x_A))) vs x_A, before and
  after training (and the plain whole-frame MSE, which includes the border that no weighted term looks at);
- transfer MSE ‖G(M(w_B ‖ E_m(x_A))) − G(w_B + m_A)‖² (B ≠ A; the toy knows the ground truth) on the face
  region (the inner crop), against the no-motion baseline ‖G(w_B) − G(w_B + m_A)‖² (and both on the whole frame).
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.encoders import ArcFace
from models.irse import IRSEConfig
from models.paper import PaperConfig, PaperModel, ReStyleInverter
from models.stylegan2 import Generator, NoiseMode
from training.data import EpochOrder, Sample, other_index
from training.distributed import Rank, join, rank_from_env, shutdown
from training.export import write_restyle_checkpoint
from training.losses import TransferLoss, inner_crop
from training.lpips import random_lpips
from training.trainer import TrainConfig, Trainer

log = logging.getLogger(__name__)

TOY_ARCFACE = IRSEConfig(units=(1, 1, 1, 1), channels=(16, 16, 32, 32))


@dataclass(frozen=True)
class ToyConfig:
    model: PaperConfig = PaperConfig.tiny()  # G 64 px, W+ 10x64; E_m a tiny IR-SE
    people: int = 12  # identities
    frames: int = 40  # training frames per person
    held_out: int = 8  # evaluation frames per person (fresh motions)
    motion_layers: tuple[tuple[int, int], ...] = ((0, 4), (4, 8))  # W+ layer band of each motion direction
    identity_spread: float = 0.4  # people = mean w + this x (their own w − mean w): faces resemble each other
    motion_strength: float = 1.0  # |d_j| per layer, in units of the spread of w over random z
    image_std: float = 0.5  # G's output is calibrated to this standard deviation (random G: ≈ [-1, 1])
    seed: int = 0  # the world (G, people, motions)


class ToyWorld:
    """The world's G, people and clips; frames are rendered once and kept in memory."""

    def __init__(self, config: ToyConfig = ToyConfig()) -> None:
        self.config = config
        g_cfg = config.model.generator
        gen = torch.Generator().manual_seed(config.seed)
        with torch.random.fork_rng():
            torch.manual_seed(config.seed)
            self.generator = Generator(g_cfg).eval().requires_grad_(False)
        with torch.no_grad():
            w = self.generator.map(torch.randn(config.people, g_cfg.style_dim, generator=gen))  # [K, D]
            spread = w.std(dim=0).mean()
            w = w.mean(0) + config.identity_spread * (w - w.mean(0))
            self.identities = w[:, None].repeat(1, g_cfg.n_latent, 1)  # [K, n, D]
            self.directions = torch.zeros(len(config.motion_layers), g_cfg.n_latent, g_cfg.style_dim)  # [J, n, D]
            for j, (lo, hi) in enumerate(config.motion_layers):
                d = torch.randn(g_cfg.style_dim, generator=gen)
                self.directions[j, lo:hi] = d / d.norm() * spread * g_cfg.style_dim**0.5 * config.motion_strength
            self._calibrate(config.image_std)
        rng = np.random.default_rng(config.seed)
        self.train_motion = self._trajectories(rng, config.frames)  # [K, T, J]
        self.test_motion = self._trajectories(rng, config.held_out)
        self.train_frames = self.render(self.identities.repeat_interleave(config.frames, 0),
                                        self.train_motion.reshape(-1, self.n_motions))
        self.test_frames = self.render(self.identities.repeat_interleave(config.held_out, 0),
                                       self.test_motion.reshape(-1, self.n_motions))

    @property
    def n_motions(self) -> int:
        return len(self.config.motion_layers)

    def _calibrate(self, std: float) -> None:
        """Scale the to-RGB layers (the image is linear in them) so that frames have the given spread."""
        image = self.generator.synthesize(self.identities)
        factor = std / float(image.std())
        for to_rgb in [self.generator.to_rgb1, *self.generator.to_rgbs]:
            to_rgb.conv.weight.mul_(factor)
            to_rgb.bias.mul_(factor)

    def _trajectories(self, rng: np.random.Generator, n: int) -> torch.Tensor:
        """Smooth random motion per person: a_j(t) = sin(ω_j t + φ_j), ω random per clip. [K, n, J]"""
        k, j = self.config.people, self.n_motions
        t = np.arange(n)[None, :, None]
        omega = rng.uniform(0.2, 0.9, (k, 1, j))
        phase = rng.uniform(0, 2 * np.pi, (k, 1, j))
        return torch.from_numpy(np.sin(omega * t + phase)).float()

    def motion_latent(self, a: torch.Tensor) -> torch.Tensor:
        """Coefficients [B, J] → W+ offsets [B, n, D]."""
        return torch.einsum("bj,jnd->bnd", a, self.directions)

    @torch.no_grad()
    def render(self, identity: torch.Tensor, a: torch.Tensor, batch: int = 64) -> torch.Tensor:
        """G(w_id + Σ a_j d_j): identity [B, n, D], a [B, J] → frames [B, 3, S, S]."""
        w = identity + self.motion_latent(a)
        return torch.cat([self.generator.synthesize(w[i:i + batch]) for i in range(0, len(w), batch)])

    def dataset(self, held_out: bool = False, seed: int = 0) -> "ToyDataset":
        frames = self.test_frames if held_out else self.train_frames
        per = self.config.held_out if held_out else self.config.frames
        return ToyDataset(frames, np.repeat(np.arange(self.config.people), per), self.identities, seed)

    def restyle_stand_in(self, seed: int) -> ReStyleInverter:
        """A random E_i around the toy G (for the pack format only: the toy's identities are known exactly)."""
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            inverter = ReStyleInverter(self.config.model)
        inverter.decoder.load_state_dict(self.generator.state_dict())
        inverter.latent_avg.copy_(self.identities.mean(0))
        return inverter


class ToyDataset:
    """Keyed samples of the toy world (see training.data): frame of A, w_A, frame of B ≠ A, w_B."""

    def __init__(self, frames: torch.Tensor, owner: np.ndarray, identities: torch.Tensor, seed: int) -> None:
        self.frames, self.owner, self.identities = frames, owner, identities
        self.order = EpochOrder(len(frames), seed)

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, key: int) -> Sample:
        i, rng = self.order(key)
        j = other_index(rng, self.owner, i)
        return {"x": self.frames[i], "w_id": self.identities[self.owner[i]],
                "x1": self.frames[j], "w_id1": self.identities[self.owner[j]]}


@dataclass(frozen=True)
class ToyFigures:
    reconstruction_loss: float  # the objective's reconstruction terms (0.05·LPIPS + 0.3·LPIPS crop + 2·MSE crop)
    reconstruction_mse: float  # ‖G(M(w_A ‖ E_m(x_A))) − x_A‖² over the whole frame
    transfer_mse: float  # face region (the inner crop): ‖G(M(w_B ‖ E_m(x_A))) − G(w_B + m_A)‖², B ≠ A
    baseline_mse: float  # face region: ‖G(w_B) − G(w_B + m_A)‖², the target without the driver's motion
    transfer_mse_frame: float  # the same two over the whole frame
    baseline_mse_frame: float


@dataclass(frozen=True)
class ToyReport:
    before: ToyFigures
    after: ToyFigures
    steps: int
    out: Path | None  # the run folder (None: a temporary one, gone)

    @property
    def reconstruction_gain(self) -> float:
        """How many times lower the reconstruction loss got."""
        return self.before.reconstruction_loss / self.after.reconstruction_loss

    @property
    def transfer_gain(self) -> float:
        """How many times closer to the ground truth the transfer is than the no-motion baseline (face region)."""
        return self.after.baseline_mse / self.after.transfer_mse

    def lines(self) -> list[str]:
        b, a = self.before, self.after
        return [
            f"toy world, {self.steps} steps — held-out frames (motions never trained on):",
            f"  reconstruction loss {b.reconstruction_loss:.4f} → {a.reconstruction_loss:.4f}  "
            f"({self.reconstruction_gain:.1f}x lower; whole-frame MSE {b.reconstruction_mse:.4f} → "
            f"{a.reconstruction_mse:.4f})",
            f"  transfer MSE (face) {a.transfer_mse:.4f} vs no-motion baseline {a.baseline_mse:.4f}  "
            f"({self.transfer_gain:.1f}x lower; before training {b.transfer_mse:.4f}; whole frame "
            f"{a.transfer_mse_frame:.4f} vs {a.baseline_mse_frame:.4f})",
        ]


@torch.no_grad()
def evaluate(world: ToyWorld, model: PaperModel, criterion: TransferLoss) -> ToyFigures:
    """The figures on the held-out frames; each driver A is paired with the next person B = A + 1."""
    was_training = model.training
    model.eval()
    k, t = world.config.people, world.config.held_out
    owner = np.repeat(np.arange(k), t)
    partner = (owner + 1) % k
    x = world.test_frames
    code = model.encoder(x)
    rec = model.decoder.synthesize(model.mapping_net(world.identities[owner], code))
    out = model.decoder.synthesize(model.mapping_net(world.identities[partner], code))
    truth = world.render(world.identities[partner], world.test_motion.reshape(-1, world.n_motions))
    neutral = world.render(world.identities[partner], torch.zeros(len(x), world.n_motions))
    model.train(was_training)

    def mse(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a - b).square().mean())

    return ToyFigures(float(criterion.weighted(criterion.reconstruction_terms(rec, x))), mse(rec, x),
                      mse(inner_crop(out), inner_crop(truth)), mse(inner_crop(neutral), inner_crop(truth)),
                      mse(out, truth), mse(neutral, truth))


def toy_loss(seed: int, config: TrainConfig) -> TransferLoss:
    """The real objective with random backbones (LPIPS-Alex; a tiny ArcFace)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        arcface = ArcFace(TOY_ARCFACE).eval()
    return TransferLoss(config.loss, random_lpips(seed), arcface)


def toy_train_config(steps: int = 300, **changes) -> TrainConfig:
    """The paper's settings except: the toy G's noise is the stored one (the frames were rendered with it),
    a higher learning rate (a few hundred steps instead of 500k), in-process data, rare logging."""
    base = TrainConfig(steps=steps, lr=1e-3, noise=NoiseMode.CONST, log_every=25, val_every=max(steps // 2, 1),
                       val_samples=8, checkpoint_every=steps, workers=0)
    return dataclasses.replace(base, **changes)


def run_toy(out: Path | None = None, steps: int = 300, world_config: ToyConfig = ToyConfig(),
            train_config: TrainConfig | None = None, resume: Path | None = None, rank: Rank = Rank(),
            progress: bool = True) -> ToyReport:
    """Build the world, train with the real Trainer, measure before and after. One thread (tiny models).

    Under torchrun (`rank` from training.distributed, process group joined) every process trains its share."""
    config = train_config or toy_train_config(steps)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory() if out is None else contextlib.nullcontext(out) as folder:
            folder = Path(folder)
            world = ToyWorld(world_config)
            model = _fresh_model(world, config.seed)
            criterion = toy_loss(config.seed + 2, config)
            before = evaluate(world, model, criterion)
            restyle = folder / "toy_restyle.pt"  # only the main process writes (and later reads) it
            if rank.is_main:
                write_restyle_checkpoint(restyle, world.restyle_stand_in(config.seed + 1),
                                         {"n_iters_per_batch": world_config.model.restyle_iters, "toy": True})
            trainer = Trainer(config, model, criterion, world.dataset(seed=config.seed),
                              world.dataset(held_out=True, seed=config.seed + 3), folder, restyle, rank=rank,
                              progress=progress)
            trainer.run(resume)
            after = evaluate(world, model, criterion)
            return ToyReport(before, after, trainer.step, None if out is None else folder)
    finally:
        torch.set_num_threads(threads)


def train_toy(out: Path | None, config: TrainConfig, world_config: ToyConfig = ToyConfig(),
              progress: bool = True) -> ToyReport | None:
    """`run_toy` in one process, or in every process under torchrun (gloo, CPU).

    The main process returns the report, the others None."""
    rank = rank_from_env()
    join(rank, torch.device("cpu"))
    try:
        report = run_toy(out, world_config=world_config, train_config=config, rank=rank, progress=progress)
    finally:
        shutdown(rank)
    return report if rank.is_main else None


def _fresh_model(world: ToyWorld, seed: int) -> PaperModel:
    """E_m and M from scratch (M with the paper's constant init), G = the world's."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = PaperModel(world.config.model)
    model.decoder.load_state_dict(world.generator.state_dict())
    return model.train()
