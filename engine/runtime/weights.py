"""Weights for the engine: any supported file → `models/` modules, and originals → a Mimic pack.

    load_generator(path)        StyleGAN2 G from a rosinality .pt, NVIDIA .pkl, the paper's or ReStyle's
                                checkpoint (their decoder), a bare state dict or a pack
    load_paper_pack(path)       (PaperModel, ReStyleInverter, manifest) from a pack
    load_arcface(path)          ArcFace from model_ir_se50.pth or a pack with ArcFace
    load_latent(path)           a stored W+ identity, float32 [n_latent, D]
    import_weights(...)         best_model.pt + restyle_psp_ffhq_encode.pt (+ G, ArcFace) → pack
    generate(...)               one image from a latent file or a seed
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine import values
from engine.output_file import check_output, replacing, write_bytes
from engine.reenactor import ProgressFn
from models.checkpoints.errors import CheckpointError
from models.checkpoints.formats import (
    GeneratorWeights, Kind, arcface_weights, generator_weights, paper_weights, read_checkpoint, restyle_weights,
)
from models.checkpoints.latents import read_latent
from models.checkpoints.pack import (
    PAPER_COMPONENTS, Pack, config_json, file_sha256, generator_config_from, irse_config_from, manifest_text,
    open_pack, pack_contents, save_pack, sidecar_path, state_hash,
)
from models.checkpoints.schema import INPUT_SIZES, MAX_RESTYLE_ITERS, Fields
from models.checkpoints.strict import check_state, load_strict
from models.encoders import ArcFace
from models.irse import IRSEConfig
from models.paper import PaperConfig, PaperModel, ReStyleInverter
from models.stylegan2 import Generator, GeneratorConfig, NoiseMode

log = logging.getLogger(__name__)

PACK_SUFFIXES = (".safetensors",)


# ------------------------------------------------------------------------------------------ loading


def load_generator(path: Path, verify: bool = False) -> Generator:
    """A StyleGAN2 Generator (eval mode, no grad) from any file that holds one."""
    weights = generator_weights_of(Path(path), verify)
    return _build_generator(weights.config, weights.state, Path(path).name)


def generator_weights_of(path: Path, verify: bool = False) -> GeneratorWeights:
    """Config + rosinality-keyed state of the generator in `path` (any supported kind, packs included)."""
    return _generator_source(Path(path), verify)[0]


def _generator_source(path: Path, verify: bool = False) -> tuple[GeneratorWeights, Kind]:
    ckpt = read_checkpoint(path)
    if ckpt.kind is Kind.PACK:
        pack = open_pack(path)
        return GeneratorWeights(pack.generator_config(), pack.component("G", verify)), Kind.PACK
    return generator_weights(ckpt), ckpt.kind


def load_paper_pack(path: Path, verify: bool = False) -> tuple[PaperModel, ReStyleInverter, dict[str, Any]]:
    """The paper's model and the ReStyle inverter from a pack; they share G where the pack has one G."""
    path = Path(path)
    ckpt = read_checkpoint(path)
    if ckpt.kind is not Kind.PACK:
        raise CheckpointError(f"{path.name} looks like {ckpt.kind.value}; expected a Mimic model pack "
                              "(make one with `python -m app import-weights`)")
    pack = open_pack(path)
    missing = [c for c in (*PAPER_COMPONENTS, "latent_avg") if not pack.has(c)]
    if missing:
        raise CheckpointError(f"{pack.name} is a generator-only pack (no {', '.join(missing)}); expected a pack "
                              "made from the paper's and ReStyle's checkpoints")
    config = paper_config(pack)
    restyle_g = pack.manifest["configs"].get("restyle_generator")
    restyle_config = config if restyle_g is None else \
        replace(config, generator=generator_config_from(restyle_g, pack.name, "configs.restyle_generator"))
    with _empty_modules(path.stat().st_size // 4):  # the pack's tensors are assigned
        model, inverter = PaperModel(config), ReStyleInverter(restyle_config)
    load_strict(model.encoder, pack.component("E_m", verify), pack.name, "E_m (motion encoder)")
    load_strict(model.mapping_net, pack.component("M", verify), pack.name, "M (mapping network)")
    load_strict(model.decoder, pack.component("G", verify), pack.name, "G (generator)")
    load_strict(inverter.encoder, pack.component("E_i", verify), pack.name, "E_i (ReStyle encoder)")
    if pack.has("G_restyle"):
        load_strict(inverter.decoder, pack.component("G_restyle", verify), pack.name, "ReStyle's generator")
    else:
        inverter.decoder = model.decoder  # one G in memory
    inverter.latent_avg = _latent_avg(pack, verify, config.generator)
    return _frozen(model), _frozen(inverter), pack.manifest


def paper_config(pack: Pack) -> PaperConfig:
    """The paper's architecture from the pack's (validated) manifest; the paper's parts must all be there."""
    c = Fields(pack.manifest["configs"], pack.name, "configs")
    return PaperConfig(generator=pack.generator_config(),
                       encoder=irse_config_from(c.require("encoder"), pack.name, "configs.encoder"),
                       input_size=c.integer("input_size", *INPUT_SIZES, power_of_two=True),
                       restyle_iters=c.integer("restyle_iters", 1, MAX_RESTYLE_ITERS))


def load_arcface(path: Path, verify: bool = False) -> ArcFace:
    """ArcFace IR-SE50 from model_ir_se50.pth or from a pack that holds one."""
    path = Path(path)
    ckpt = read_checkpoint(path)
    if ckpt.kind is Kind.PACK:
        pack = open_pack(path)
        c = pack.manifest["configs"].get("arcface")
        if not pack.has("arcface") or c is None:
            raise CheckpointError(f"{pack.name} has no ArcFace weights (import them with --arcface)")
        config = irse_config_from(c["irse"], pack.name, "configs.arcface.irse")
        embedding, state = c["embedding"], pack.component("arcface", verify)
    else:
        weights = arcface_weights(ckpt)
        config, embedding, state = weights.config, weights.embedding, weights.state
    with _empty_modules(sum(t.numel() for t in state.values())):
        arcface = ArcFace(config, embedding)
    return _frozen(load_strict(arcface, state, path.name, "ArcFace"))


def load_latent(path: Path, n_latent: int | None = None, style_dim: int | None = None) -> np.ndarray:
    """A stored identity latent (.npy / pickled NumPy array) as float32 [n_latent, D]."""
    return read_latent(Path(path), n_latent, style_dim)


def _build_generator(config: GeneratorConfig, state: dict[str, torch.Tensor], file_name: str) -> Generator:
    with _empty_modules(sum(t.numel() for t in state.values())):
        g = Generator(config)
    return _frozen(load_strict(g, state, file_name, "the StyleGAN2 generator"))


def _empty_modules(numel: int) -> contextlib.AbstractContextManager:
    """Where to build modules that receive assigned weights: big ones on the meta device (no memory, no
    random init); small ones normally, as meta's one-time set-up costs about 2 s."""
    return torch.device("meta") if numel > 20_000_000 else contextlib.nullcontext()


def _latent_avg(pack: Pack, verify: bool, g: GeneratorConfig) -> torch.Tensor:
    avg = pack.component("latent_avg", verify)["latent_avg"]
    if tuple(avg.shape) != (g.n_latent, g.style_dim) or not avg.is_floating_point():
        raise CheckpointError(f"{pack.name}: latent_avg is {str(avg.dtype).removeprefix('torch.')} of shape "
                              f"{list(avg.shape)}; expected floats of shape [{g.n_latent}, {g.style_dim}]")
    return avg


def _frozen(module: torch.nn.Module) -> Any:
    return module.eval().requires_grad_(False)


# ------------------------------------------------------------------------------------------ importing


@dataclass(frozen=True)
class ImportReport:
    path: Path
    manifest: dict[str, Any]
    notes: list[str]  # things the user should know (e.g. "--stylegan differs from the paper's decoder")

    @property
    def sidecar(self) -> Path:
        """The human-readable copy of the manifest beside the pack."""
        return sidecar_path(self.path)


def import_weights(paper: Path, restyle: Path, stylegan: Path | None = None, arcface: Path | None = None, *,
                   out: Path, progress: ProgressFn | None = None) -> ImportReport:
    """Check the original checkpoints against Mimic's modules and write them as one pack.

    paper:    the paper's best_model.pt (E_m, M, G);  restyle: restyle_psp_ffhq_encode.pt (E_i, its G, latent_avg);
    stylegan: optional generator file (rosinality .pt / NVIDIA .pkl / pack) used as G instead of the paper's decoder;
    arcface:  optional model_ir_se50.pth, stored for the identity metric.
    """
    steps = 4 + (stylegan is not None) + (arcface is not None)
    done = 0

    def step(message: str) -> None:
        nonlocal done
        if progress is not None:
            progress(done / steps, message)
        done += 1

    paper, restyle, out = Path(paper), Path(restyle), check_pack_output(out)
    stylegan = None if stylegan is None else Path(stylegan)
    arcface = None if arcface is None else Path(arcface)
    notes: list[str] = []
    step(f"reading {paper.name}")
    pw = paper_weights(read_checkpoint(paper))
    step(f"reading {restyle.name}")
    rw = restyle_weights(read_checkpoint(restyle))
    g = pw.decoder
    if stylegan is not None:
        step(f"reading {stylegan.name}")
        g, stylegan_kind = _generator_source(stylegan)
        _same_shape(g.config, pw.decoder.config, stylegan.name, f"the paper's decoder in {paper.name}")
        if state_hash(g.state) != state_hash(pw.decoder.state):
            notes.append(f"{stylegan.name} differs from the decoder in {paper.name}; "
                         f"the pack renders with {stylegan.name}")
    _same_shape(rw.decoder.config, g.config, restyle.name, "the generator")
    if pw.encoder_config != _rgb(rw.encoder_config):
        raise CheckpointError(f"{restyle.name}: ReStyle's IR-SE body {rw.encoder_config} differs from E_m's "
                              f"{pw.encoder_config} in {paper.name}")
    config = PaperConfig(generator=g.config, encoder=pw.encoder_config, input_size=rw.input_size,
                         restyle_iters=rw.n_iters)
    step("checking tensors")
    with _empty_modules(paper.stat().st_size // 4):  # only the shapes are used
        model, inverter = PaperModel(config), ReStyleInverter(config)
    check_state(model.encoder, pw.encoder, paper.name, "E_m (motion encoder)")
    check_state(model.mapping_net, pw.mapping, paper.name, "M (mapping network)")
    check_state(model.decoder, g.state, (stylegan or paper).name, "G (generator)")
    check_state(inverter.encoder, rw.encoder, restyle.name, "E_i (ReStyle encoder)")
    check_state(inverter.decoder, rw.decoder.state, restyle.name, "ReStyle's generator")
    components = {"G": g.state, "E_m": pw.encoder, "M": pw.mapping, "E_i": rw.encoder}
    configs: dict[str, Any] = {"generator": config_json(config.generator), "encoder": config_json(config.encoder),
                               "input_size": config.input_size, "restyle_iters": config.restyle_iters}
    if rw.decoder.config != g.config or state_hash(rw.decoder.state) != state_hash(g.state):
        components["G_restyle"] = rw.decoder.state
        configs["restyle_generator"] = config_json(rw.decoder.config)
        notes.append("ReStyle's generator differs from the rendering generator; the pack keeps both")
    sources = [_source("paper", paper, Kind.PAPER), _source("restyle", restyle, Kind.RESTYLE)]
    if stylegan is not None:
        sources.append(_source("stylegan", stylegan, stylegan_kind))
    if arcface is not None:
        step(f"reading {arcface.name}")
        aw = arcface_weights(read_checkpoint(arcface))
        with _empty_modules(arcface.stat().st_size // 4):
            arc = ArcFace(aw.config, aw.embedding)
        check_state(arc, aw.state, arcface.name, "ArcFace")
        components["arcface"] = aw.state
        configs["arcface"] = {"irse": config_json(aw.config), "embedding": aw.embedding}
        sources.append(_source("arcface", arcface, Kind.ARCFACE))
    step(f"writing {out.name}")
    manifest = write_pack(out, components, configs, sources, latent_avg=rw.latent_avg)
    if progress is not None:
        progress(1.0, f"wrote {out.name}")
    for note in notes:
        log.info(note)
    return ImportReport(out, manifest, notes)


def import_generator(stylegan: Path, out: Path) -> ImportReport:
    """A generator-only pack (for `generate` and tests) from any generator file."""
    check_pack_output(out)
    g, kind = _generator_source(Path(stylegan))
    source = _source("stylegan", Path(stylegan), kind)
    manifest = write_pack(Path(out), {"G": g.state}, {"generator": config_json(g.config)}, [source])
    return ImportReport(Path(out), manifest, [])


def check_pack_output(out: Path) -> Path:
    """Before any work: the pack and its sidecar may be written (regular files or absent, writable folder)."""
    check_output(out, PACK_SUFFIXES, "pack")
    check_output(sidecar_path(out), what="manifest copy")
    return Path(out)


def write_pack(out: Path, components: dict[str, dict[str, torch.Tensor]], configs: dict[str, Any],
               sources: list[dict[str, str]], latent_avg: torch.Tensor | None = None) -> dict[str, Any]:
    """The pack and its sidecar through the safe output writer: `out` is replaced only once both are written,
    and never when it is not a regular file; returns the manifest."""
    tensors, manifest = pack_contents(components, configs, sources, latent_avg)
    with replacing(out, PACK_SUFFIXES, "pack") as tmp:
        save_pack(tmp, tensors, manifest)
        write_bytes(sidecar_path(out), manifest_text(manifest).encode(), what="manifest copy")
    return manifest


def _rgb(config: IRSEConfig) -> IRSEConfig:
    return IRSEConfig(units=config.units, channels=config.channels, in_channels=3)


def _same_shape(a: GeneratorConfig, b: GeneratorConfig, name: str, other: str) -> None:
    if (a.size, a.style_dim, a.n_latent) != (b.size, b.style_dim, b.n_latent):
        raise CheckpointError(f"{name}: generator {a.size}px with {a.n_latent}x{a.style_dim} latents does not match "
                              f"{other} ({b.size}px, {b.n_latent}x{b.style_dim})")


def _source(role: str, path: Path, kind: Kind) -> dict[str, str]:
    return {"role": role, "file": path.name, "sha256": file_sha256(path), "kind": kind.name.lower()}


# ------------------------------------------------------------------------------------------ generating


def generate(weights: Path, latent: Path | None = None, seed: int | None = None, truncation: float = 1.0,
             noise: NoiseMode | str = NoiseMode.CONST) -> np.ndarray:
    """One image, RGB uint8 [size, size, 3], from a stored W+ latent or from a seed.

    noise: a NoiseMode or its name ("const", "none", "random"; the CLI passes the name).

    seed: z ~ N(0, I) (numpy RandomState(seed)) → w = G.map(z) → w ← mean + truncation·(w − mean)
    (mean = G.mean_latent()) → repeated over the W+ layers. NoiseMode.RANDOM draws its noise from `seed`.
    """
    if (latent is None) == (seed is None):
        raise ValueError("give exactly one of latent and seed")
    if seed is not None:
        seed = values.SEED.check(seed, "seed")
    truncation = values.TRUNCATION.check(truncation, "truncation")
    noise = NoiseMode(noise)
    g = load_generator(weights)
    cfg = g.config
    with torch.no_grad():
        if latent is not None:
            w_plus = torch.from_numpy(load_latent(latent, cfg.n_latent, cfg.style_dim))[None]
        else:
            z = torch.from_numpy(np.random.RandomState(seed).randn(1, cfg.style_dim)).float()
            w = g.map(z)
            if truncation != 1.0:
                mean = g.mean_latent()
                w = mean + truncation * (w - mean)
            w_plus = w[:, None].repeat(1, cfg.n_latent, 1)
        image = g.synthesize(w_plus, noise, seed=seed)
    return to_uint8(image[0])


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """[3, H, W] in ≈[-1, 1] → RGB uint8 [H, W, 3]."""
    return ((image.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
