"""Everything a real run reads besides the data: the networks to start from and the loss backbones.

- ReStyle's `restyle_psp_ffhq_encode.pt`: its G (FFHQ config-f; the identity latents live in its W+)
  is the generator unless another one is given; its E_i and latent_avg go into the final pack;
- the loss backbones, user-supplied (nothing is downloaded): LPIPS-Alex (two files) and ArcFace.
  A real run refuses to start without them; random backbones exist for tests and the toy only.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.runtime.weights import generator_weights_of, load_arcface
from models.checkpoints.formats import Kind, read_checkpoint, restyle_weights
from models.checkpoints.strict import load_strict
from models.encoders import ArcFace
from models.irse import IRSEConfig
from models.paper import PaperConfig, PaperModel
from training.errors import TrainingError
from training.losses import LossWeights
from training.lpips import LPIPS, load_lpips, random_lpips

log = logging.getLogger(__name__)

HINTS = {
    "lpips_alexnet": "--lpips-alexnet: torchvision's ImageNet AlexNet, alexnet-owt-7be5be79.pth "
                     "(https://download.pytorch.org/models/alexnet-owt-7be5be79.pth)",
    "lpips_linear": "--lpips-linear: the LPIPS v0.1 AlexNet heads, alex.pth "
                    "(github.com/richzhang/PerceptualSimilarity, lpips/weights/v0.1/alex.pth)",
    "arcface": "--arcface: model_ir_se50.pth, the IR-SE50 ArcFace of TreB1eN/InsightFace_Pytorch "
               "(linked from the pixel2style2pixel README)",
}
RANDOM_ARCFACE = IRSEConfig(units=(1, 1, 1, 1), channels=(16, 16, 32, 32))  # small: tests and the toy


@dataclass(frozen=True)
class LossBackbones:
    lpips_alexnet: Path | None = None
    lpips_linear: Path | None = None
    arcface: Path | None = None
    random: bool = False  # random LPIPS and ArcFace: tests and the toy only, never a real model


def loss_networks(weights: LossWeights, files: LossBackbones, seed: int = 0) -> tuple[LPIPS | None, ArcFace | None]:
    """The LPIPS and ArcFace networks the loss weights need; a clear error naming every missing file."""
    if files.random:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            arcface = ArcFace(RANDOM_ARCFACE).eval()
        log.warning("random loss backbones: for tests only, the trained model means nothing")
        return (random_lpips(seed) if weights.needs_lpips else None), (arcface if weights.needs_arcface else None)
    needed = []
    if weights.needs_lpips:
        needed += ["lpips_alexnet", "lpips_linear"]
    if weights.needs_arcface:
        needed.append("arcface")
    missing = [HINTS[name] for name in needed if getattr(files, name) is None]
    if missing:
        raise TrainingError("training needs pretrained loss networks that Mimic does not ship; give " + "; ".join(missing))
    for name in needed:
        if not Path(getattr(files, name)).is_file():
            raise TrainingError(f"file not found: {getattr(files, name)} ({HINTS[name].split(':')[0]})")
    lpips = load_lpips(files.lpips_alexnet, files.lpips_linear) if weights.needs_lpips else None
    arcface = load_arcface(files.arcface) if weights.needs_arcface else None
    return lpips, arcface


def build_model(restyle: Path, stylegan: Path | None = None) -> PaperModel:
    """A fresh PaperModel shaped after ReStyle's checkpoint: E_m with E_i's IR-SE body (random), M with the
    paper's constant init, G = `stylegan` or ReStyle's own generator (same size and latent shape)."""
    restyle = Path(restyle)
    ckpt = read_checkpoint(restyle)
    if ckpt.kind is not Kind.RESTYLE:
        raise TrainingError(f"{restyle.name} looks like {ckpt.kind.value}; --restyle takes ReStyle's "
                            "restyle_psp_ffhq_encode.pt (github.com/yuval-alaluf/restyle-encoder)")
    rw = restyle_weights(ckpt)
    g = generator_weights_of(stylegan) if stylegan is not None else rw.decoder
    if (g.config.size, g.config.n_latent, g.config.style_dim) != (rw.decoder.config.size, rw.decoder.config.n_latent,
                                                                   rw.decoder.config.style_dim):
        raise TrainingError(f"{Path(stylegan).name}: a {g.config.size}px generator; the identity latents need "
                            f"ReStyle's {rw.decoder.config.size}px generator shape")
    config = PaperConfig(generator=g.config, encoder=dataclasses.replace(rw.encoder_config, in_channels=3),
                         input_size=rw.input_size, restyle_iters=rw.n_iters)
    model = PaperModel(config)
    load_strict(model.decoder, g.state, (Path(stylegan) if stylegan else restyle).name, "G (generator)")
    return model


def init_encoder_from_arcface(model: PaperModel, arcface: ArcFace) -> int:
    """pSp's start for its encoders: E_m's input layer and IR-SE body take ArcFace's weights where shapes
    match. Returns the number of tensors copied."""
    source = arcface.state_dict()
    target = model.encoder.state_dict()
    same = {k: v for k, v in source.items()
            if k.startswith(("input_layer.", "body.")) and k in target and target[k].shape == v.shape}
    model.encoder.load_state_dict(same, strict=False)
    return len(same)
