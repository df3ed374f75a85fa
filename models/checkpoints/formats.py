"""Checkpoint formats users bring (docs/weights.md): detect the kind, pull out state dicts and configs.

| kind      | layout                                                                          |
|-----------|---------------------------------------------------------------------------------|
| paper     | {state_dict: {encoder.*, mapping_net.*, decoder.*}, opts}                       |
| restyle   | {state_dict: {encoder.* (6-channel input), decoder.*}, opts, latent_avg [n, D]}  |
| psp       | {state_dict: {encoder.*, decoder.*}, opts, latent_avg}  (only its decoder is used) |
| rosinality| {g_ema, g, d, g_optim, d_optim, args: Namespace, latent_avg [D]}                 |
| nvidia    | pickle {G, D, G_ema, augment_pipe, …} of NVIDIA network objects (read inert)     |
| generator | a bare rosinality generator state dict                                          |
| arcface   | a bare IR-SE50 ArcFace state dict (input_layer.*, body.*, output_layer.*)       |
| pack      | Mimic pack (.safetensors + manifest)                                            |
"""
from __future__ import annotations

import enum
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from models.checkpoints.configs import generator_config, irse_config, restyle_input_size
from models.checkpoints.errors import CheckpointError
from models.checkpoints.inert import InertModule
from models.checkpoints.nvidia import convert_generator
from models.checkpoints.safe_pickle import kind
from models.checkpoints.schema import MAX_EMBEDDING, MAX_RESTYLE_ITERS, integer_setting
from models.checkpoints.torch_file import read_pickled
from models.irse import IRSEConfig
from models.stylegan2 import GeneratorConfig

StateDict = dict[str, torch.Tensor]


class Kind(enum.Enum):
    PAPER = "the paper's checkpoint (best_model.pt)"
    RESTYLE = "a ReStyle encoder checkpoint (restyle_psp_ffhq_encode.pt)"
    PSP = "a pSp encoder checkpoint"
    ROSINALITY = "a StyleGAN2 checkpoint (rosinality)"
    NVIDIA = "an NVIDIA StyleGAN2 pickle"
    GENERATOR = "a StyleGAN2 generator state dict"
    ARCFACE = "an ArcFace IR-SE50 state dict (model_ir_se50.pth)"
    PACK = "a Mimic model pack"
    NUMPY = "a NumPy array file"


# Kinds that hold a StyleGAN2 generator.
GENERATOR_KINDS = (Kind.PAPER, Kind.RESTYLE, Kind.PSP, Kind.ROSINALITY, Kind.NVIDIA, Kind.GENERATOR, Kind.PACK)


@dataclass
class Checkpoint:
    """A checkpoint file read into memory (pickles via the restricted unpickler), with its kind."""

    path: Path
    kind: Kind
    content: Any = field(repr=False)

    @property
    def name(self) -> str:
        return self.path.name

    def expect(self, *kinds: Kind, wanted: str) -> None:
        if self.kind not in kinds:
            raise CheckpointError(f"{self.name} looks like {self.kind.value}; expected {wanted}")


@dataclass(frozen=True)
class GeneratorWeights:
    config: GeneratorConfig
    state: StateDict  # rosinality keys
    w_avg: torch.Tensor | None = None  # [D] truncation centre stored with the weights, if any


@dataclass(frozen=True)
class PaperWeights:
    encoder: StateDict  # E_m
    encoder_config: IRSEConfig
    mapping: StateDict  # M
    decoder: GeneratorWeights  # G
    opts: dict[str, Any]


@dataclass(frozen=True)
class ReStyleWeights:
    encoder: StateDict  # E_i
    encoder_config: IRSEConfig  # in_channels = 6
    decoder: GeneratorWeights
    latent_avg: torch.Tensor  # [n_latent, D]
    input_size: int
    n_iters: int
    opts: dict[str, Any]


@dataclass(frozen=True)
class ArcFaceWeights:
    state: StateDict
    config: IRSEConfig
    embedding: int


def file_kind(path: Path) -> str:
    """'pack', 'numpy' or 'pickle' from the first bytes (no parsing); CheckpointError if unreadable."""
    try:
        with Path(path).open("rb") as f:
            head = f.read(16)
    except FileNotFoundError:
        raise CheckpointError(f"file not found: {path}") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path} is a folder; expected a checkpoint file") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None
    if head.startswith(b"\x93NUMPY"):
        return "numpy"
    if len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 100_000_000:
        return "pack"
    return "pickle"


def read_checkpoint(path: Path) -> Checkpoint:
    """Read and classify any supported checkpoint; CheckpointError if it is none of them."""
    path = Path(path)
    kind = file_kind(path)
    if kind == "pack":
        return Checkpoint(path, Kind.PACK, None)
    if kind == "numpy":
        return Checkpoint(path, Kind.NUMPY, None)
    content = read_pickled(path)
    found = classify(content, path.name)
    if found is None:
        raise CheckpointError(f"{path.name} is a pickle/PyTorch file but no checkpoint format Mimic knows "
                              f"({_summary(content)})")
    return Checkpoint(path, found, content)


def classify(content: Any, file_name: str = "the checkpoint") -> Kind | None:
    if not isinstance(content, dict):
        return None
    for where, mapping in (("the checkpoint", content), ("state_dict", content.get("state_dict")),
                           ("g_ema", content.get("g_ema"))):
        if isinstance(mapping, dict):
            _string_keys(mapping, file_name, where)
    if isinstance(content.get("G_ema"), InertModule):
        return Kind.NVIDIA
    if isinstance(content.get("g_ema"), dict):
        return Kind.ROSINALITY
    state = content.get("state_dict")
    if isinstance(state, dict):
        if any(k.startswith("mapping_net.") for k in state):
            return Kind.PAPER
        first = state.get("encoder.input_layer.0.weight")
        if isinstance(first, torch.Tensor) and first.ndim == 4 and first.shape[1] == 6:
            return Kind.RESTYLE
        if any(k.startswith("decoder.") for k in state):
            return Kind.PSP
        return None
    if content and all(isinstance(v, torch.Tensor) for v in content.values()):
        if "conv1.conv.weight" in content and "style.1.weight" in content:
            return Kind.GENERATOR
        if "input_layer.0.weight" in content and "output_layer.3.weight" in content:
            return Kind.ARCFACE
    return None


def _string_keys(mapping: dict[Any, Any], file_name: str, where: str) -> None:
    """State dicts are keyed by tensor names; anything else is a malformed file, reported before any
    code treats a key as a name."""
    for key in mapping:
        if not isinstance(key, str):
            raise CheckpointError(f"{file_name}: {where} has a key that is not a name ({kind(key)}); "
                                  "expected tensor names")


def _summary(content: Any) -> str:
    if isinstance(content, dict):
        keys = [k if isinstance(k, str) and len(k) <= 60 else kind(k) for k in list(content)[:4]]
        return f"a dict with keys {', '.join(keys)}{', …' if len(content) > 4 else ''}"
    return f"a {type(content).__name__}"


def sub_state(state: dict[str, Any], prefix: str) -> StateDict:
    """Tensors under `prefix`, with it removed."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix) and isinstance(v, torch.Tensor)}


# ------------------------------------------------------------------------------------------ generators


def generator_weights(ckpt: Checkpoint) -> GeneratorWeights:
    """The StyleGAN2 generator held by any generator-bearing checkpoint (not packs: see pack.py)."""
    ckpt.expect(*[k for k in GENERATOR_KINDS if k is not Kind.PACK], wanted="a StyleGAN2 generator")
    c = ckpt.content
    if ckpt.kind is Kind.NVIDIA:
        nv = convert_generator(c["G_ema"], ckpt.name)
        state = nv.state
        return GeneratorWeights(generator_config(state, ckpt.name, nv.conv_clamp, nv.lr_mlp), state, nv.w_avg)
    if ckpt.kind is Kind.ROSINALITY:
        state, w_avg = _tensors(c["g_ema"]), c.get("latent_avg")
    elif ckpt.kind is Kind.GENERATOR:
        state, w_avg = _tensors(c), None
    else:  # paper / ReStyle / pSp: the decoder
        state, w_avg = sub_state(c["state_dict"], "decoder."), None
    config = generator_config(state, ckpt.name)
    if isinstance(w_avg, torch.Tensor):
        w_avg = _latent_rows(w_avg, config.style_dim, ckpt.name, "latent_avg")[0]
    else:
        w_avg = None
    return GeneratorWeights(config, state, w_avg)


def _latent_rows(latent: torch.Tensor, style_dim: int, file_name: str, where: str) -> torch.Tensor:
    """A stored mean latent ([D], [n, D] or [1, n, D]) as rows [n, D] of floats; CheckpointError otherwise."""
    if not latent.is_floating_point() or latent.ndim == 0 or latent.ndim > 3 or latent.shape[-1] != style_dim \
            or latent.numel() == 0:
        raise CheckpointError(f"{file_name}: {where} is a {str(latent.dtype).removeprefix('torch.')} tensor of shape "
                              f"{list(latent.shape)}; expected floats of shape [{style_dim}] or [n, {style_dim}]")
    return latent.float().reshape(-1, style_dim)


def _tensors(state: dict[str, Any]) -> StateDict:
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


# ------------------------------------------------------------------------------------------ encoders


def paper_weights(ckpt: Checkpoint) -> PaperWeights:
    """E_m, M and G of the paper's best_model.pt."""
    ckpt.expect(Kind.PAPER, wanted="the paper's checkpoint (best_model.pt)")
    state = ckpt.content["state_dict"]
    encoder = sub_state(state, "encoder.")
    extra = [k for k in state if not k.startswith(("encoder.", "mapping_net.", "decoder."))]
    if extra:
        raise CheckpointError(f"{ckpt.name}: unexpected tensor {extra[0]} in the paper's state_dict")
    decoder = GeneratorWeights(generator_config(sub_state(state, "decoder."), ckpt.name),
                               sub_state(state, "decoder."))
    return PaperWeights(encoder, irse_config(encoder, ckpt.name), sub_state(state, "mapping_net."), decoder,
                        _plain_opts(ckpt.content.get("opts")))


def restyle_weights(ckpt: Checkpoint) -> ReStyleWeights:
    """E_i, its G and latent_avg of ReStyle-pSp's checkpoint."""
    ckpt.expect(Kind.RESTYLE, wanted="a ReStyle-pSp checkpoint (restyle_psp_ffhq_encode.pt)")
    state = ckpt.content["state_dict"]
    extra = [k for k in state if not k.startswith(("encoder.", "decoder."))]
    if extra:
        raise CheckpointError(f"{ckpt.name}: unexpected tensor {extra[0]} in ReStyle's state_dict")
    encoder = sub_state(state, "encoder.")
    decoder = sub_state(state, "decoder.")
    config = generator_config(decoder, ckpt.name)
    latent_avg = ckpt.content.get("latent_avg")
    if not isinstance(latent_avg, torch.Tensor):
        raise CheckpointError(f"{ckpt.name}: ReStyle checkpoint without latent_avg")
    latent_avg = _latent_rows(latent_avg, config.style_dim, ckpt.name, "latent_avg")
    if latent_avg.shape[0] == 1:  # one W vector: repeat over the W+ layers
        latent_avg = latent_avg.expand(config.n_latent, -1)
    if tuple(latent_avg.shape) != (config.n_latent, config.style_dim):
        raise CheckpointError(f"{ckpt.name}: latent_avg has shape {list(latent_avg.shape)}; expected "
                              f"[{config.n_latent}, {config.style_dim}]")
    opts = _plain_opts(ckpt.content.get("opts"))
    n_iters = integer_setting(opts.get("n_iters_per_batch", 5), ckpt.name, "opts.n_iters_per_batch", 1,
                              MAX_RESTYLE_ITERS)
    return ReStyleWeights(encoder, irse_config(encoder, ckpt.name), GeneratorWeights(config, decoder),
                          latent_avg.contiguous(), restyle_input_size(encoder, ckpt.name), n_iters, opts)


def arcface_weights(ckpt: Checkpoint) -> ArcFaceWeights:
    """The ArcFace IR-SE50 backbone of model_ir_se50.pth."""
    ckpt.expect(Kind.ARCFACE, wanted="an ArcFace IR-SE50 state dict (model_ir_se50.pth)")
    state = _tensors(ckpt.content)
    head = state["output_layer.3.weight"]
    embedding = integer_setting(head.shape[0] if head.ndim == 2 else -1, ckpt.name,
                                "the embedding width (output_layer.3.weight)", 1, MAX_EMBEDDING)
    return ArcFaceWeights(state, irse_config(state, ckpt.name), embedding)


def _plain_opts(opts: Any) -> dict[str, Any]:
    """Training options as a dict of plain values (Namespaces become dicts; tensors are dropped)."""
    if opts is None:
        return {}
    if not isinstance(opts, dict):
        opts = vars(opts) if isinstance(opts, types.SimpleNamespace) else {}
    return {k: v for k, v in opts.items()
            if isinstance(k, str) and isinstance(v, (str, int, float, bool, type(None), list, tuple))}
