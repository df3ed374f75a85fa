"""Mimic model pack: one .safetensors file with a JSON manifest in its metadata.

Tensors are prefixed by component — `G.` (generator), `E_m.` (motion encoder), `M.` (mapping),
`E_i.` (ReStyle encoder), `G_restyle.` (ReStyle's generator, only where it differs from G),
`arcface.` (optional) — plus `latent_avg` [n_latent, D]. The manifest (metadata key "mimic", also
written beside the pack as `<name>.json` for people) holds the architecture configs, where the
weights came from (file names and sha256), a sha256 per component and `content_hash` over them.
Safetensors holds only raw tensors and JSON, so reading a pack cannot run code.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from models.checkpoints.errors import CheckpointError
from models.checkpoints.safe_pickle import describe
from models.checkpoints.schema import check_manifest, generator_config_of, irse_config_of
from models.irse import IRSEConfig
from models.stylegan2 import GeneratorConfig

FORMAT = "mimic-pack"
FORMAT_VERSION = 1
WRITER = "mimic 0.1"
COMPONENTS = ("G", "E_m", "M", "E_i", "G_restyle", "arcface")
PAPER_COMPONENTS = ("G", "E_m", "M", "E_i")  # + latent_avg: what the paper's pipeline needs
StateDict = dict[str, torch.Tensor]
_READ_ERRORS = (SafetensorError, OSError, ValueError, RuntimeError)


def sidecar_path(path: Path) -> Path:
    """Where the human-readable copy of the manifest goes: `<pack stem>.json` beside the pack."""
    return Path(path).with_suffix(".json")


def state_hash(state: StateDict) -> str:
    """sha256 over names, dtypes, shapes and bytes, in name order (independent of file layout)."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().contiguous().cpu()
        h.update(f"{name}|{str(t.dtype)}|{list(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())  # the buffer itself, no copy
    return h.hexdigest()


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def config_json(config: Any) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(config)))


MAX_MANIFEST_CHARS = 1 << 20  # a real manifest is a few kB


def generator_config_from(data: dict[str, Any], file_name: str = "the manifest",
                          where: str = "configs.generator") -> GeneratorConfig:
    return generator_config_of(data, file_name, where)


def irse_config_from(data: dict[str, Any], file_name: str = "the manifest",
                     where: str = "configs.encoder") -> IRSEConfig:
    return irse_config_of(data, file_name, where)


def pack_contents(components: dict[str, StateDict], configs: dict[str, Any], sources: list[dict[str, str]],
                  latent_avg: torch.Tensor | None = None) -> tuple[StateDict, dict[str, Any]]:
    """The tensors and the manifest of a pack (written by `save_pack`).

    components: prefix → state dict (prefixes from COMPONENTS; "G" required);
    configs: JSON-ready architecture configs; sources: [{role, file, sha256, kind}].
    """
    unknown = set(components) - set(COMPONENTS)
    if "G" not in components or unknown:
        raise ValueError(f"pack components must include G and come from {COMPONENTS}; got {sorted(components)}")
    tensors: StateDict = {}
    hashes: dict[str, str] = {}
    for prefix, state in components.items():
        hashes[prefix] = state_hash(state)
        tensors.update({f"{prefix}.{k}": v.detach().contiguous().cpu().clone() for k, v in state.items()})
    if latent_avg is not None:
        tensors["latent_avg"] = latent_avg.detach().float().contiguous().cpu().clone()
        hashes["latent_avg"] = state_hash({"latent_avg": tensors["latent_avg"]})
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "writer": WRITER,
        "components": sorted(hashes),
        "configs": configs,
        "sources": sources,
        "hashes": hashes,
        "content_hash": hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest(),
    }
    return tensors, manifest


def save_pack(path: Path, tensors: StateDict, manifest: dict[str, Any]) -> None:
    """The .safetensors file itself (the caller makes the write atomic and safe: engine.output_file)."""
    save_file(tensors, str(path), metadata={"mimic": json.dumps(manifest, sort_keys=True)})


def manifest_text(manifest: dict[str, Any]) -> str:
    """The sidecar's content: the manifest for people."""
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"


@dataclass
class Pack:
    """An open pack: manifest plus lazy, memory-mapped access to its tensors."""

    path: Path
    manifest: dict[str, Any]
    keys: list[str]

    @property
    def name(self) -> str:
        return self.path.name

    def has(self, component: str) -> bool:
        return component in self.manifest["components"]

    def component(self, prefix: str, verify: bool = False) -> StateDict:
        """The state dict of one component (tensors read from the memory-mapped file)."""
        if not self.has(prefix):
            held = ", ".join(self.manifest["components"])
            raise CheckpointError(f"{self.name} has no {prefix} weights (it holds {held})")
        names = [k for k in self.keys if k.startswith(prefix + ".")] if prefix != "latent_avg" else ["latent_avg"]
        try:
            with safe_open(str(self.path), framework="pt") as f:
                tensors = {k: f.get_tensor(k) for k in names}
        except _READ_ERRORS as exc:
            raise CheckpointError(f"{self.name} is truncated or corrupt ({describe(exc)})") from None
        state = tensors if prefix == "latent_avg" else {k[len(prefix) + 1:]: v for k, v in tensors.items()}
        if verify and state_hash(state) != self.manifest["hashes"].get(prefix):
            raise CheckpointError(f"{self.name}: the {prefix} weights do not match the pack's recorded hash "
                                  "(the file was modified or damaged)")
        return state

    def generator_config(self) -> GeneratorConfig:
        return generator_config_from(self.manifest["configs"]["generator"], self.name)


def open_pack(path: Path) -> Pack:
    """Open a pack and check its manifest; CheckpointError for anything that is not a readable pack."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"model pack not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            keys = list(f.keys())
    except _READ_ERRORS as exc:
        raise CheckpointError(f"{path.name} is not a readable .safetensors file ({describe(exc)})") from None
    text = metadata.get("mimic")
    if not isinstance(text, str):
        raise CheckpointError(f"{path.name} is a .safetensors file without a Mimic manifest; "
                              "make a pack with `python -m app import-weights`")
    if len(text) > MAX_MANIFEST_CHARS:
        raise CheckpointError(f"{path.name}: the manifest has {len(text):,} characters; a pack's has a few thousand")
    try:
        manifest = json.loads(text)
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else describe(exc)
        raise CheckpointError(f"{path.name}: the manifest is not valid JSON ({reason})") from None
    if isinstance(manifest, dict) and isinstance(manifest.get("format_version"), int) \
            and manifest.get("format") == FORMAT and manifest["format_version"] > FORMAT_VERSION:
        raise CheckpointError(f"{path.name} is pack format {manifest.get('format_version')}; this Mimic reads up to "
                              f"{FORMAT_VERSION} (update Mimic)")
    check_manifest(manifest, path.name, FORMAT, FORMAT_VERSION, COMPONENTS)
    for component in manifest["components"]:
        prefix = "latent_avg" if component == "latent_avg" else component + "."
        if not any(k == prefix or k.startswith(prefix) for k in keys):
            raise CheckpointError(f"{path.name}: the manifest lists {component} but the file has no such tensors")
    return Pack(path, manifest, keys)

