"""Architecture configs read off state-dict shapes (original checkpoints carry no usable config)."""
from __future__ import annotations

import itertools
import math
import re

import torch

from models.checkpoints.errors import CheckpointError
from models.checkpoints.schema import MAX_UNITS_PER_STAGE, check_generator_config, check_irse_config, integer_setting
from models.irse import IRSEConfig
from models.stylegan2 import GeneratorConfig

StateDict = dict[str, torch.Tensor]


def generator_config(state: StateDict, file_name: str, conv_clamp: float | None = None,
                     lr_mlp: float = 0.01) -> GeneratorConfig:
    """GeneratorConfig of a rosinality-keyed generator state dict (size, style_dim, n_mlp, widths)."""
    try:
        style_dim = state["conv1.conv.modulation.weight"].shape[1]
        n_mlp = len([k for k in state if re.fullmatch(r"style\.\d+\.weight", k)])
        n_convs = len([k for k in state if re.fullmatch(r"convs\.\d+\.conv\.weight", k)])
        widths = [state["conv1.conv.weight"].shape[1]]
        widths += [state[f"convs.{2 * i}.conv.weight"].shape[1] for i in range(n_convs // 2)]
    except (KeyError, IndexError):
        raise CheckpointError(f"{file_name}: not a StyleGAN2 generator (no conv1/convs weights)") from None
    if n_convs % 2 or n_convs > 16:
        raise CheckpointError(f"{file_name}: unexpected StyleGAN2 layout ({n_convs} convs)")
    size = 2 ** (n_convs // 2 + 2)
    channel_max = widths[0]
    for value, where in ((style_dim, "the style width"), (channel_max, "the widest layer")):
        integer_setting(value, file_name, where, 1, 2048)
    for multiplier in (2, 1, 4):
        config = GeneratorConfig(size=size, style_dim=style_dim, n_mlp=n_mlp, channel_multiplier=multiplier,
                                 lr_mlp=lr_mlp, channel_max=channel_max, conv_clamp=conv_clamp)
        if [config.channels(2**i) for i in range(2, config.log_size + 1)] == widths:
            return check_generator_config(config, file_name)
    raise CheckpointError(f"{file_name}: StyleGAN2 channel widths {widths} match no channel multiplier")


def irse_config(state: StateDict, file_name: str, prefix: str = "", n_stages: int = 4) -> IRSEConfig:
    """IRSEConfig of an IR-SE body (`input_layer.*`, `body.N.*` under `prefix`).

    Each stage starts with a stride-2 unit, which the weights do not show; stages are told apart by
    their widths. Widths repeated across stages are resolved when only one split fits `n_stages`.
    """
    try:
        first = state[f"{prefix}input_layer.0.weight"]  # [c0, in, 3, 3]
    except KeyError:
        raise CheckpointError(f"{file_name}: no IR-SE input layer ({prefix}input_layer.0.weight)") from None
    depths = []
    for i in itertools.count():
        weight = state.get(f"{prefix}body.{i}.res_layer.1.weight")
        if weight is None:
            break
        if weight.ndim != 4 or first.ndim != 4 or len(depths) >= n_stages * MAX_UNITS_PER_STAGE:
            raise CheckpointError(f"{file_name}: unexpected IR-SE layout at {prefix}body.{i}")
        depths.append(weight.shape[0])
    if len(depths) < n_stages:
        raise CheckpointError(f"{file_name}: IR-SE body with {len(depths)} units; expected at least {n_stages}")
    # Stage boundaries: every change of width, plus enough of the remaining positions to make n_stages.
    changes = {i for i in range(1, len(depths)) if depths[i] != depths[i - 1]}
    free = [i for i in range(1, len(depths)) if i not in changes]
    extra = n_stages - 1 - len(changes)  # boundaries the widths do not show: unique only if all or none are free
    if extra < 0 or math.comb(len(free), extra) != 1:
        raise CheckpointError(f"{file_name}: cannot tell the {n_stages} stages of an IR-SE body of widths {depths}")
    bounds = [0, *sorted(changes | set(free[:extra])), len(depths)]
    units = tuple(b - a for a, b in zip(bounds, bounds[1:]))
    channels = tuple(depths[a] for a in bounds[:-1])
    if channels[0] != first.shape[0]:
        raise CheckpointError(f"{file_name}: IR-SE input layer width {first.shape[0]} ≠ first stage {channels[0]}")
    return check_irse_config(IRSEConfig(units=units, channels=channels, in_channels=first.shape[1]), file_name)


def restyle_input_size(state: StateDict, file_name: str, prefix: str = "styles.0.convs.") -> int:
    """ReStyle's input resolution: each GradualStyleBlock halves the body's S/16 map down to 1x1."""
    n = len([k for k in state if re.fullmatch(re.escape(prefix) + r"\d+\.weight", k)])
    if n == 0:
        raise CheckpointError(f"{file_name}: no ReStyle style heads ({prefix}*)")
    return integer_setting(16 * 2 ** min(n, 16), file_name, "the encoder's input size", 32, 1024)

