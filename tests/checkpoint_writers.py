"""Write checkpoint files in the real formats users bring (docs/weights.md), from tiny random models.

Used by tests/test_checkpoints*.py. The NVIDIA writer pickles objects the way NVIDIA's
`torch_utils.persistence` does (a `_reconstruct_persistent_obj(meta)` call per network object,
module source included) with stand-in modules that exist only while the file is written.
"""
from __future__ import annotations

import argparse
import contextlib
import pickle
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from models.encoders import ArcFace
from models.irse import IRSEConfig
from models.paper import PaperConfig, PaperModel, ReStyleInverter
from models.stylegan2 import Generator, GeneratorConfig

TINY = PaperConfig.tiny()
TINY_ARCFACE = IRSEConfig(units=(1, 1, 1, 1), channels=(16, 16, 32, 32))


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread, without fighting other processes for the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def randomize(module: nn.Module, seed: int) -> nn.Module:
    """Every parameter and buffer random (biases and noise strengths included), reproducibly."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in [*module.named_parameters(), *module.named_buffers()]:
            if t.is_floating_point() and not name.endswith(("kernel", "running_var")):
                t.copy_(torch.randn(t.shape, generator=gen) * 0.3)
            elif name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
    return module.eval()


def tiny_generator(seed: int = 0, conv_clamp: float | None = None) -> Generator:
    config = GeneratorConfig(**{**TINY.generator.__dict__, "conv_clamp": conv_clamp})
    return randomize(Generator(config), seed)


def tiny_paper(seed: int = 1) -> PaperModel:
    return randomize(PaperModel(TINY), seed)


def tiny_inverter(decoder: Generator, seed: int = 2) -> ReStyleInverter:
    inverter = randomize(ReStyleInverter(TINY), seed)
    inverter.decoder.load_state_dict(decoder.state_dict())
    return inverter


def tiny_arcface(seed: int = 3) -> ArcFace:
    return randomize(ArcFace(TINY_ARCFACE, embedding=32), seed)


# ------------------------------------------------------------------------------------------ torch formats


def write_rosinality(path: Path, g: Generator, legacy: bool = False) -> Path:
    """rosinality's train.py checkpoint: g, d, g_ema, optimisers, args (argparse.Namespace), latent_avg."""
    state = g.state_dict()
    args = argparse.Namespace(size=g.config.size, channel_multiplier=g.config.channel_multiplier, latent=512,
                              n_mlp=g.config.n_mlp, lr=0.002, r1=10.0, path="ffhq.lmdb", augment=False)
    ckpt = {
        "g": state, "d": {"convs.0.0.weight": torch.randn(4, 3, 1, 1)}, "g_ema": state,
        "g_optim": {"state": {0: {"step": 3, "exp_avg": torch.zeros(2)}},
                    "param_groups": [{"lr": 0.002, "params": [0]}]},
        "d_optim": {"state": {}, "param_groups": []},
        "args": args,
        "latent_avg": g.mean_latent(64)[0],
    }
    torch.save(ckpt, path, _use_new_zipfile_serialization=not legacy)
    return path


def write_paper(path: Path, model: PaperModel) -> Path:
    opts = {"exp_dir": "experiment", "batch_size": 4, "learning_rate": 1e-4, "optim_name": "ranger",
            "lpips_lambda": 0.05, "id_lambda": 0.3, "stylegan_weights": "stylegan2-ffhq-config-f.pt"}
    torch.save({"state_dict": model.state_dict(), "opts": opts}, path)
    return path


def write_restyle(path: Path, inverter: ReStyleInverter) -> Path:
    state = {k: v for k, v in inverter.state_dict().items() if k.startswith(("encoder.", "decoder."))}
    opts = {"encoder_type": "BackboneEncoder", "input_nc": 6, "n_iters_per_batch": TINY.restyle_iters,
            "output_size": inverter.config.generator.size, "start_from_latent_avg": True}
    torch.save({"state_dict": state, "opts": opts, "latent_avg": inverter.latent_avg.clone()}, path)
    return path


def write_state_dict(path: Path, module: nn.Module) -> Path:
    torch.save(module.state_dict(), path)
    return path


# ------------------------------------------------------------------------------------------ NVIDIA pickles

# Stands in for the module source NVIDIA pickles next to every network object (their real
# training/networks.py in released files). It is only ever parsed by the loader, never run.
NETWORK_SOURCE = '''"""Network architectures (stand-in)."""
import numpy as np
import pytest
import torch
from torch_utils import misc
from torch_utils import persistence


@misc.profiled_function
def normalize_2nd_moment(x, dim=1, eps=1e-8):
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


@persistence.persistent_class
class FullyConnectedLayer(torch.nn.Module):
    def __init__(self, in_features, out_features, bias=True, activation='linear', lr_multiplier=1, bias_init=0):
        super().__init__()


@persistence.persistent_class
class Generator(torch.nn.Module):
    def __init__(self, z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs={}, synthesis_kwargs={}):
        super().__init__()
'''


@contextlib.contextmanager
def nvidia_modules() -> Iterator[types.ModuleType]:
    """`torch_utils.persistence` and `dnnlib.util` stand-ins, importable only inside the block (pickle
    needs to find `_reconstruct_persistent_obj` and `EasyDict` by name when it writes them)."""
    names = ("torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util")
    saved = {n: sys.modules.get(n) for n in names}
    torch_utils, persistence = types.ModuleType("torch_utils"), types.ModuleType("torch_utils.persistence")
    dnnlib, util = types.ModuleType("dnnlib"), types.ModuleType("dnnlib.util")

    def _reconstruct_persistent_obj(meta: dict) -> None:
        raise AssertionError("the loader must never call NVIDIA's reconstruct function")

    class EasyDict(dict):
        pass

    _reconstruct_persistent_obj.__module__, _reconstruct_persistent_obj.__qualname__ = (
        "torch_utils.persistence", "_reconstruct_persistent_obj")
    EasyDict.__module__, EasyDict.__qualname__ = "dnnlib.util", "EasyDict"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    util.EasyDict = EasyDict
    torch_utils.persistence, dnnlib.util = persistence, util
    sys.modules.update(dict(zip(names, (torch_utils, persistence, dnnlib, util))))
    try:
        yield util
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


class Persistent(nn.Module):
    """An nn.Module that pickles itself as NVIDIA's persistent classes do."""

    source = NETWORK_SOURCE

    def __init__(self, class_name: str, **attrs: object) -> None:
        super().__init__()
        self.__dict__["_class_name"] = class_name
        for k, v in attrs.items():
            setattr(self, k, v)

    def __reduce__(self):
        state = {k: v for k, v in self.__dict__.items() if k != "_class_name"}
        meta = dict(type="class", version=6, module_src=self.source, class_name=self._class_name, state=state)
        return (sys.modules["torch_utils.persistence"]._reconstruct_persistent_obj, (meta,))


def _fc(weight: torch.Tensor, bias: torch.Tensor, activation: str, lr: float) -> Persistent:
    layer = Persistent("FullyConnectedLayer", activation=activation, weight_gain=lr / np.sqrt(weight.shape[1]),
                       bias_gain=lr, _init_args=(), _init_kwargs={})
    layer.weight, layer.bias = nn.Parameter(weight.clone()), nn.Parameter(bias.clone())
    return layer


def nvidia_generator(g: Generator, easy_dict: type) -> Persistent:
    """NVIDIA's G_ema object tree (attribute names and tensor layouts of their networks.py) holding
    the weights of our generator `g`."""
    sd = {k: v.detach().clone() for k, v in g.state_dict().items()}
    cfg = g.config
    clamp = cfg.conv_clamp
    filt = torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1])) / 64

    def synthesis_layer(src: str, noise: str, resolution: int, up: int) -> Persistent:
        w = sd[f"{src}.conv.weight"][0]
        layer = Persistent("SynthesisLayer", resolution=resolution, up=up, use_noise=True, activation="lrelu",
                           conv_clamp=clamp, padding=1, act_gain=np.sqrt(2))
        layer.register_buffer("resample_filter", filt.clone())
        layer.affine = _fc(sd[f"{src}.conv.modulation.weight"], sd[f"{src}.conv.modulation.bias"], "linear", 1)
        layer.weight = nn.Parameter(w)
        layer.register_buffer("noise_const", sd[f"noises.{noise}"][0, 0])
        layer.noise_strength = nn.Parameter(sd[f"{src}.noise.weight"].reshape(()))
        layer.bias = nn.Parameter(sd[f"{src}.activate.bias"])
        return layer

    def torgb(src: str) -> Persistent:
        layer = Persistent("ToRGBLayer", conv_clamp=clamp, weight_gain=1 / np.sqrt(sd[f"{src}.conv.weight"].shape[2]))
        layer.affine = _fc(sd[f"{src}.conv.modulation.weight"], sd[f"{src}.conv.modulation.bias"], "linear", 1)
        layer.weight = nn.Parameter(sd[f"{src}.conv.weight"][0])
        layer.bias = nn.Parameter(sd[f"{src}.bias"].reshape(-1))
        return layer

    synthesis = Persistent("SynthesisNetwork", w_dim=cfg.style_dim, img_resolution=cfg.size, img_channels=3,
                           block_resolutions=[2**i for i in range(2, cfg.log_size + 1)], num_ws=cfg.n_latent)
    for i in range(2, cfg.log_size + 1):
        res = 2**i
        block = Persistent("SynthesisBlock", in_channels=0 if res == 4 else cfg.channels(res // 2), w_dim=cfg.style_dim,
                           resolution=res, img_channels=3, is_last=res == cfg.size, architecture="skip",
                           use_fp16=False, channels_last=False, num_conv=1 if res == 4 else 2, num_torgb=1)
        block.register_buffer("resample_filter", filt.clone())
        if res == 4:
            block.const = nn.Parameter(sd["input.input"][0])
            block.conv1 = synthesis_layer("conv1", "noise_0", 4, 1)
            block.torgb = torgb("to_rgb1")
        else:
            level = i - 3
            block.conv0 = synthesis_layer(f"convs.{2 * level}", f"noise_{2 * level + 1}", res, 2)
            block.conv1 = synthesis_layer(f"convs.{2 * level + 1}", f"noise_{2 * level + 2}", res, 1)
            block.torgb = torgb(f"to_rgbs.{level}")
        setattr(synthesis, f"b{res}", block)
    mapping = Persistent("MappingNetwork", z_dim=cfg.style_dim, c_dim=0, w_dim=cfg.style_dim, num_ws=cfg.n_latent,
                         num_layers=cfg.n_mlp, w_avg_beta=0.995)
    for i in range(cfg.n_mlp):
        setattr(mapping, f"fc{i}", _fc(sd[f"style.{i + 1}.weight"], sd[f"style.{i + 1}.bias"], "lrelu", cfg.lr_mlp))
    mapping.register_buffer("w_avg", g.mean_latent(64)[0].detach().clone())
    kwargs = {"z_dim": cfg.style_dim, "c_dim": 0, "w_dim": cfg.style_dim, "img_resolution": cfg.size, "img_channels": 3,
              "mapping_kwargs": easy_dict(num_layers=cfg.n_mlp),
              "synthesis_kwargs": easy_dict(channel_base=32768, channel_max=cfg.channel_max, num_fp16_res=0,
                                            conv_clamp=clamp)}
    root = Persistent("Generator", z_dim=cfg.style_dim, c_dim=0, w_dim=cfg.style_dim, img_resolution=cfg.size,
                      img_channels=3, num_ws=cfg.n_latent, _init_args=(), _init_kwargs=kwargs)
    root.synthesis, root.mapping = synthesis, mapping
    return root


def write_nvidia(path: Path, g: Generator) -> Path:
    """A stylegan2-ada-pytorch network pickle: {G, D, G_ema, augment_pipe, training_set_kwargs}."""
    with nvidia_modules() as util:
        g_ema = nvidia_generator(g, util.EasyDict)
        d = Persistent("Discriminator", c_dim=0, img_resolution=g.config.size, img_channels=3)
        d.b4 = Persistent("DiscriminatorBlock", in_channels=0)
        d.b4.fromrgb_weight = nn.Parameter(torch.randn(8, 3, 1, 1))
        data = {"G": nvidia_generator(g, util.EasyDict), "D": d, "G_ema": g_ema, "augment_pipe": None,
                "training_set_kwargs": util.EasyDict(class_name="training.dataset.ImageFolderDataset",
                                                     path="ffhq.zip", resolution=g.config.size)}
        with path.open("wb") as f:
            pickle.dump(data, f)
    return path


# ------------------------------------------------------------------------------------------ latents


def write_latent_npy(path: Path, latent: np.ndarray) -> Path:
    np.save(path, latent)
    return path


def write_latent_pkl(path: Path, latent: np.ndarray) -> Path:
    with path.open("wb") as f:
        pickle.dump(latent, f)
    return path
