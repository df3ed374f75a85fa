"""NVIDIA StyleGAN2-ADA (PyTorch) generator → rosinality state dict.

Facts of NVIDIA's `training/networks.py` (config-f "skip" generator) used here:
- mapping: `fc{i}` FullyConnectedLayer (weight [out, in] stored ÷lr_mul, gains lr_mul/√in and
  lr_mul, lrelu·√2) = rosinality `style.{i+1}` EqualLinear, same tensors; `w_avg` [D] is the
  truncation centre (rosinality's `latent_avg`).
- `synthesis.b{res}`: `const` [C, 4, 4] (b4 only), `conv0` (upsampling, res ≥ 8), `conv1`, `torgb`.
  SynthesisLayer: `affine` (bias init 1) = `conv.modulation`; `weight` [O, I, k, k] = `conv.weight[0]`
  (unscaled: demodulation cancels the 1/√fan_in that rosinality applies); `noise_strength` [] =
  `noise.weight` [1]; `noise_const` [r, r] = `noises.noise_n` [1, 1, r, r]; `bias` = `activate.bias`.
  The up-convolution weight is used as stored by both (transposed conv, no flip between them).
  ToRGBLayer: `affine`, `weight` [3, C, 1, 1], `bias` [3] = `to_rgb*.bias` [1, 3, 1, 1].
- Order: b4.conv1 → conv1 / noise_0; b4.torgb → to_rgb1; b{2^(l+3)}.conv0/conv1 → convs.{2l}/{2l+1},
  noises {2l+1}/{2l+2}; torgb → to_rgbs.{l}.
- `resample_filter` is [1,3,3,1]⊗[1,3,3,1] normalised to sum 1; rosinality's FIR kernels are it ×4.
- Released models clamp every conv/torgb output at ±`conv_clamp` (256).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from models.checkpoints.errors import CheckpointError
from models.checkpoints.inert import InertModule
from models.checkpoints.safe_pickle import describe, kind
from models.checkpoints.schema import GENERATOR_SIZES, MAX_STYLE_DIM, Fields, integer_setting
from models.layers import fir_kernel

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class NvidiaGenerator:
    state: StateDict  # rosinality keys
    conv_clamp: float | None
    lr_mlp: float
    w_avg: torch.Tensor | None  # [D]


def convert_generator(g: InertModule, file_name: str) -> NvidiaGenerator:
    """Read NVIDIA's `G_ema` (kept inert) into a rosinality-keyed state dict."""
    if not isinstance(g, InertModule) or g.class_name != "Generator":
        raise CheckpointError(f"{file_name}: G_ema is not an NVIDIA Generator")
    synthesis, mapping = g.children.get("synthesis"), g.children.get("mapping")
    if not isinstance(synthesis, InertModule) or not isinstance(mapping, InertModule):
        raise CheckpointError(f"{file_name}: NVIDIA Generator without synthesis/mapping networks")
    if "input" in synthesis.children:
        raise CheckpointError(f"{file_name} is a StyleGAN3 generator; expected a StyleGAN2 generator")
    c_dim = integer_setting(g.get("c_dim", 0), file_name, "G_ema.c_dim", 0, 1 << 20)
    if c_dim:
        raise CheckpointError(f"{file_name} is a class-conditional generator (c_dim={c_dim}); "
                              "expected an unconditional StyleGAN2 generator")
    channels = integer_setting(g.get("img_channels", 3), file_name, "G_ema.img_channels", 1, 16)
    z_dim = integer_setting(g.get("z_dim"), file_name, "G_ema.z_dim", 1, MAX_STYLE_DIM)
    w_dim = integer_setting(g.get("w_dim"), file_name, "G_ema.w_dim", 1, MAX_STYLE_DIM)
    if channels != 3 or z_dim != w_dim:
        raise CheckpointError(f"{file_name}: expected an RGB generator with z_dim = w_dim, got "
                              f"img_channels={channels}, z_dim={z_dim}, w_dim={w_dim}")
    size = integer_setting(g.get("img_resolution"), file_name, "G_ema.img_resolution", *GENERATOR_SIZES,
                           power_of_two=True)
    log_size = size.bit_length() - 1
    blocks = [synthesis.children.get(f"b{2**i}") for i in range(2, log_size + 1)]
    if not all(isinstance(b, InertModule) for b in blocks):
        raise CheckpointError(f"{file_name}: NVIDIA synthesis network lacks blocks b4…b{size}")
    architectures = {b.get("architecture", "skip") for b in blocks if isinstance(b.get("architecture", "skip"), str)}
    if architectures != {"skip"}:
        raise CheckpointError(f"{file_name}: NVIDIA generator architecture {kind(blocks[-1].get('architecture'))}; "
                              "only the 'skip' generator (config-f) is supported")
    nv = dict(g.tensors())
    w_avg = nv.pop("mapping.w_avg", None)
    try:
        state = _convert_tensors(nv, log_size, file_name)
    except RuntimeError as exc:  # a tensor of the wrong number of elements for its reshape
        raise CheckpointError(f"{file_name}: NVIDIA generator tensors of unexpected shapes ({describe(exc)})") from None
    fc0 = mapping.children.get("fc0")
    settings = Fields({"lr_mlp": fc0.get("bias_gain", 0.01) if isinstance(fc0, InertModule) else 0.01,
                       "conv_clamp": blocks[0].children["conv1"].get("conv_clamp")
                       if "conv1" in blocks[0].children else None}, file_name, "G_ema")
    return NvidiaGenerator(state, settings.number("conv_clamp", 0, 1e6, optional=True),
                           settings.number("lr_mlp", 0, 1), w_avg)


def _convert_tensors(nv: StateDict, log_size: int, file_name: str) -> StateDict:
    out: StateDict = {}
    used: set[str] = set()

    def take(key: str) -> torch.Tensor:
        if key not in nv:
            raise CheckpointError(f"{file_name}: NVIDIA generator lacks {key}")
        used.add(key)
        return nv[key]

    def filter_x4(key: str) -> torch.Tensor:
        f = take(key)
        if f.shape != (4, 4) or not torch.allclose(f.float() * 4, fir_kernel(gain=4.0), atol=1e-6):
            raise CheckpointError(f"{file_name}: {key} is not the [1,3,3,1] filter every StyleGAN2 uses")
        return fir_kernel(gain=4.0)

    def layer(src: str, dst: str, noise_index: int, up: bool) -> None:
        out[f"{dst}.conv.weight"] = take(f"{src}.weight").unsqueeze(0)
        out[f"{dst}.conv.modulation.weight"] = take(f"{src}.affine.weight")
        out[f"{dst}.conv.modulation.bias"] = take(f"{src}.affine.bias")
        out[f"{dst}.noise.weight"] = take(f"{src}.noise_strength").reshape(1)
        out[f"{dst}.activate.bias"] = take(f"{src}.bias")
        out[f"noises.noise_{noise_index}"] = take(f"{src}.noise_const")[None, None]
        filt = filter_x4(f"{src}.resample_filter")
        if up:
            out[f"{dst}.conv.blur.kernel"] = filt

    def torgb(src: str, dst: str, upsample_from: str | None) -> None:
        out[f"{dst}.conv.weight"] = take(f"{src}.weight").unsqueeze(0)
        out[f"{dst}.conv.modulation.weight"] = take(f"{src}.affine.weight")
        out[f"{dst}.conv.modulation.bias"] = take(f"{src}.affine.bias")
        out[f"{dst}.bias"] = take(f"{src}.bias").reshape(1, -1, 1, 1)
        if upsample_from is not None:
            out[f"{dst}.upsample.kernel"] = filter_x4(upsample_from)

    i = 0
    while f"mapping.fc{i}.weight" in nv:
        out[f"style.{i + 1}.weight"] = take(f"mapping.fc{i}.weight")
        out[f"style.{i + 1}.bias"] = take(f"mapping.fc{i}.bias")
        i += 1
    out["input.input"] = take("synthesis.b4.const").unsqueeze(0)
    filter_x4("synthesis.b4.resample_filter")
    layer("synthesis.b4.conv1", "conv1", 0, up=False)
    torgb("synthesis.b4.torgb", "to_rgb1", None)
    for level in range(log_size - 2):
        block = f"synthesis.b{2 ** (level + 3)}"
        layer(f"{block}.conv0", f"convs.{2 * level}", 2 * level + 1, up=True)
        layer(f"{block}.conv1", f"convs.{2 * level + 1}", 2 * level + 2, up=False)
        torgb(f"{block}.torgb", f"to_rgbs.{level}", f"{block}.resample_filter")
    left = sorted(set(nv) - used)
    if left:
        raise CheckpointError(f"{file_name}: NVIDIA generator has {len(left)} unexpected tensor(s) (e.g. {left[0]})")
    return {k: v.float().contiguous() for k, v in out.items()}
