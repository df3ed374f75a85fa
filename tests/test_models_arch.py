"""The full-size networks match the published checkpoints key for key and shape for shape (built on meta)."""
from __future__ import annotations

import json

import pytest
import torch

from models.encoders import ArcFace
from models.paper import PaperConfig, PaperModel, ReStyleInverter
from models.stylegan2 import Generator, GeneratorConfig


def shapes(module: torch.nn.Module, drop: tuple[str, ...] = ()) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in module.state_dict().items() if k not in drop}


def reference(reference_dir, name: str) -> dict[str, list[int]]:
    return json.loads((reference_dir / f"{name}.json").read_text())["tensors"]


@pytest.mark.parametrize("name,config", [
    ("rosinality_G1024_mult2", GeneratorConfig(size=1024, channel_multiplier=2)),
    ("rosinality_G256_mult1", GeneratorConfig(size=256, channel_multiplier=1)),
    ("rosinality_G256_mult2", GeneratorConfig(size=256, channel_multiplier=2)),
])
def test_generator_state_dict_equals_rosinality(reference_dir, name, config):
    with torch.device("meta"):
        g = Generator(config)
    assert shapes(g) == reference(reference_dir, name)
    assert g.config.n_latent == 2 * int(torch.log2(torch.tensor(float(config.size)))) - 2


def test_paper_model_equals_best_model_pt(reference_dir):
    with torch.device("meta"):
        model = PaperModel(PaperConfig.paper())
    ref = reference(reference_dir, "paper_best_model")
    assert shapes(model) == ref
    # M is one 18432 → 9216 linear layer (≈170 M parameters); identity first is checked in test_models_forward
    assert ref["mapping_net.linear_relu.0.weight"] == [9216, 18432]


def test_restyle_inverter_equals_restyle_checkpoint(reference_dir):
    with torch.device("meta"):
        inverter = ReStyleInverter(PaperConfig.paper())
    assert shapes(inverter, drop=("latent_avg",)) == reference(reference_dir, "restyle_psp_ffhq_encode")
    assert tuple(inverter.latent_avg.shape) == (18, 512)


def test_arcface_equals_model_ir_se50(reference_dir):
    with torch.device("meta"):
        arcface = ArcFace()
    assert shapes(arcface) == reference(reference_dir, "arcface_ir_se50")
