"""Validated settings read from files: pack manifests and the architecture settings of checkpoints.

Every value a file supplies is checked for its type and range before anything is sized from it
(a generator of size 2^40, 10^9 ReStyle iterations, a width of 2^20), and a bad one is reported
as one line naming the file and the field: "pack.safetensors: configs.generator.size is 2**40;
expected a power of two from 8 to 1024".
"""
from __future__ import annotations

import math
from typing import Any

from models.checkpoints.errors import CheckpointError
from models.checkpoints.safe_pickle import kind
from models.irse import IRSEConfig
from models.stylegan2 import GeneratorConfig

# Ranges: every published model lies well inside them; beyond them only a hostile file goes.
GENERATOR_SIZES = (8, 1024)
MAX_STYLE_DIM = 2048
MAX_MAPPING_LAYERS = 16
MAX_CHANNELS = 2048
MAX_UNITS_PER_STAGE = 64
INPUT_SIZES = (32, 1024)
MAX_RESTYLE_ITERS = 50
MAX_EMBEDDING = 4096
MANIFEST_KEYS = {"format", "format_version", "writer", "components", "configs", "sources", "hashes", "content_hash"}
CONFIG_KEYS = {"generator", "encoder", "input_size", "restyle_iters", "restyle_generator", "arcface"}


class Fields:
    """Typed access to one mapping of a file, with the file and the field path in every error."""

    def __init__(self, data: Any, file_name: str, where: str) -> None:
        self.file_name, self.where = file_name, where
        if not isinstance(data, dict):
            self.fail(where or "the manifest", data, "a JSON object")
        self.data = data

    def fail(self, field: str, value: Any, expected: str) -> None:
        raise CheckpointError(f"{self.file_name}: {field} is {kind(value)}; expected {expected}")

    def name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def require(self, key: str) -> Any:
        if key not in self.data:
            raise CheckpointError(f"{self.file_name}: {self.name(key)} is missing")
        return self.data[key]

    def only(self, allowed: set[str]) -> None:
        unknown = sorted(str(k)[:40] for k in self.data if k not in allowed)
        if unknown:
            raise CheckpointError(f"{self.file_name}: unknown field {self.name(unknown[0])} "
                                  f"(this Mimic knows {', '.join(sorted(allowed))})")

    def integer(self, key: str, low: int, high: int, default: Any = ..., power_of_two: bool = False) -> int:
        value = self.require(key) if default is ... else self.data.get(key, default)
        if not _valid_int(value, low, high, power_of_two):
            self.fail(self.name(key), value, f"{'a power of two' if power_of_two else 'an integer'} "
                      f"from {low} to {high}")
        return value

    def number(self, key: str, low: float, high: float, default: Any = ..., optional: bool = False) -> float | None:
        value = self.require(key) if default is ... else self.data.get(key, default)
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not low < value <= high:
            self.fail(self.name(key), value, f"a number above {low:g} and at most {high:g}"
                      + (" (or null)" if optional else ""))
        return float(value)

    def text(self, key: str, default: Any = ...) -> str:
        value = self.require(key) if default is ... else self.data.get(key, default)
        if not isinstance(value, str) or len(value) > 4096:
            self.fail(self.name(key), value, "a string")
        return value

    def int_list(self, key: str, length: int, low: int, high: int) -> tuple[int, ...]:
        value = self.require(key)
        if not isinstance(value, (list, tuple)) or len(value) != length \
                or not all(type(v) is int and low <= v <= high for v in value):
            self.fail(self.name(key), value, f"a list of {length} integers from {low} to {high}")
        return tuple(value)

    def sub(self, key: str) -> "Fields":
        return Fields(self.require(key), self.file_name, self.name(key))


# --------------------------------------------------------------------------------------- configs


def generator_config_of(data: Any, file_name: str, where: str) -> GeneratorConfig:
    """GeneratorConfig from a manifest's JSON object (every field checked)."""
    f = Fields(data, file_name, where)
    f.only(set(GeneratorConfig.__dataclass_fields__))
    defaults = GeneratorConfig()
    return GeneratorConfig(
        size=f.integer("size", *GENERATOR_SIZES, power_of_two=True),
        style_dim=f.integer("style_dim", 1, MAX_STYLE_DIM),
        n_mlp=f.integer("n_mlp", 1, MAX_MAPPING_LAYERS),
        channel_multiplier=f.integer("channel_multiplier", 1, 4, defaults.channel_multiplier),
        lr_mlp=f.number("lr_mlp", 0, 1, defaults.lr_mlp),
        channel_max=f.integer("channel_max", 1, MAX_CHANNELS, defaults.channel_max),
        conv_clamp=f.number("conv_clamp", 0, 1e6, None, optional=True),
    )


def check_generator_config(config: GeneratorConfig, file_name: str) -> GeneratorConfig:
    """The same ranges for a config read off a state dict's shapes."""
    generator_config_of({k: getattr(config, k) for k in GeneratorConfig.__dataclass_fields__}, file_name,
                        "the generator")
    return config


def irse_config_of(data: Any, file_name: str, where: str) -> IRSEConfig:
    f = Fields(data, file_name, where)
    f.only({"units", "channels", "in_channels"})
    units = f.require("units")
    n = len(units) if isinstance(units, list) and 1 <= len(units) <= 8 else 4
    in_channels = f.integer("in_channels", 1, 6)
    if in_channels not in (3, 6):
        f.fail(f.name("in_channels"), in_channels, "3 or 6")
    return IRSEConfig(units=f.int_list("units", n, 1, MAX_UNITS_PER_STAGE),
                      channels=f.int_list("channels", n, 1, MAX_CHANNELS), in_channels=in_channels)


def check_irse_config(config: IRSEConfig, file_name: str) -> IRSEConfig:
    irse_config_of({"units": list(config.units), "channels": list(config.channels),
                    "in_channels": config.in_channels}, file_name, "the IR-SE encoder")
    return config


def integer_setting(value: Any, file_name: str, where: str, low: int, high: int, power_of_two: bool = False) -> int:
    """One integer setting of a checkpoint (e.g. NVIDIA's img_resolution), checked like a manifest field."""
    if not _valid_int(value, low, high, power_of_two):
        raise CheckpointError(f"{file_name}: {where} is {kind(value)}; expected "
                              f"{'a power of two' if power_of_two else 'an integer'} from {low} to {high}")
    return value


def _valid_int(value: Any, low: int, high: int, power_of_two: bool = False) -> bool:
    return type(value) is int and low <= value <= high and (not power_of_two or value & (value - 1) == 0)

# --------------------------------------------------------------------------------------- manifest


def check_manifest(manifest: Any, file_name: str, known_format: str, max_version: int,
                   components: tuple[str, ...]) -> dict[str, Any]:
    """A pack manifest with every field checked (configs parsed once, here); returns it unchanged."""
    f = Fields(manifest, file_name, "")
    if f.data.get("format") != known_format:
        f.fail("format", f.data.get("format"), repr(known_format))
    f.integer("format_version", 1, max_version)
    f.only(MANIFEST_KEYS)
    f.text("writer", "")
    held = f.require("components")
    allowed = (*components, "latent_avg")
    if not isinstance(held, list) or not all(isinstance(c, str) and c in allowed for c in held) \
            or len(set(held)) != len(held) or "G" not in held:
        f.fail("components", held, f"a list of distinct names from {', '.join(allowed)} including G")
    hashes = f.sub("hashes")
    for key in hashes.data:  # JSON keys are strings; the values must be too
        hashes.text(key)
    if not isinstance(f.data.get("sources", []), list):
        f.fail("sources", f.data["sources"], "a list")
    f.text("content_hash", "")
    configs = f.sub("configs")
    configs.only(CONFIG_KEYS)
    generator_config_of(configs.require("generator"), file_name, "configs.generator")
    if "restyle_generator" in configs.data:
        generator_config_of(configs.data["restyle_generator"], file_name, "configs.restyle_generator")
    if "encoder" in configs.data:
        irse_config_of(configs.data["encoder"], file_name, "configs.encoder")
    if "input_size" in configs.data:
        configs.integer("input_size", *INPUT_SIZES, power_of_two=True)
    if "restyle_iters" in configs.data:
        configs.integer("restyle_iters", 1, MAX_RESTYLE_ITERS)
    if "arcface" in configs.data:
        arcface = configs.sub("arcface")
        arcface.only({"irse", "embedding"})
        irse_config_of(arcface.require("irse"), file_name, "configs.arcface.irse")
        arcface.integer("embedding", 1, MAX_EMBEDDING)
    return manifest
