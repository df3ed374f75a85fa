"""Mimic packs: import round-trips exactly, hashes catch modified weights, damaged packs are reported."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from engine.runtime.weights import import_generator, import_weights, load_arcface, load_generator, load_paper_pack
from models.checkpoints.errors import CheckpointError
from models.checkpoints.pack import file_sha256, open_pack, sidecar_path
from models.stylegan2 import Generator, GeneratorConfig, NoiseMode
from tests.checkpoint_writers import (
    one_thread, tiny_arcface, tiny_generator, tiny_inverter, tiny_paper, write_nvidia, write_paper, write_restyle,
    write_state_dict,
)

pytestmark = pytest.mark.usefixtures(one_thread.__name__)


@pytest.fixture(scope="module")
def originals(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("originals")
    model = tiny_paper()
    inverter = tiny_inverter(model.decoder)
    arcface = tiny_arcface()
    return {
        "model": model, "inverter": inverter, "arcface": arcface,
        "paper": write_paper(tmp / "best_model.pt", model),
        "restyle": write_restyle(tmp / "restyle_psp_ffhq_encode.pt", inverter),
        "arcface_file": write_state_dict(tmp / "model_ir_se50.pth", arcface),
    }


@pytest.fixture(scope="module")
def pack(originals: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pack") / "mimic.safetensors"
    steps: list[tuple[float, str]] = []
    report = import_weights(originals["paper"], originals["restyle"], arcface=originals["arcface_file"], out=out,
                            progress=lambda f, m: steps.append((f, m)))
    assert report.notes == []
    assert steps[0] == (0.0, "reading best_model.pt") and steps[-1] == (1.0, "wrote mimic.safetensors")
    assert [f for f, _ in steps] == sorted(f for f, _ in steps)
    return out


def test_pack_round_trips_exactly(pack: Path, originals: dict) -> None:
    model, inverter, manifest = load_paper_pack(pack, verify=True)
    ref_model, ref_inverter = originals["model"], originals["inverter"]
    gen = torch.Generator().manual_seed(0)
    driving = torch.rand(1, 3, 64, 64, generator=gen) * 2 - 1
    w_id = torch.randn(1, 10, 64, generator=gen)
    with torch.no_grad():
        assert torch.equal(model(driving, w_id), ref_model(driving, w_id))
        assert torch.equal(inverter.invert(driving), ref_inverter.invert(driving))
    assert inverter.decoder is model.decoder  # one G in memory when ReStyle's equals the paper's
    assert inverter.config.restyle_iters == 3 and inverter.config.input_size == 64
    assert not any(p.requires_grad for p in model.parameters()) and not model.training
    x = torch.rand(2, 3, 112, 112, generator=gen) * 2 - 1
    with torch.no_grad():
        assert torch.equal(load_arcface(pack)(x), originals["arcface"](x))
    with torch.no_grad():
        w = torch.randn(1, 10, 64, generator=gen)
        assert torch.equal(load_generator(pack).synthesize(w, NoiseMode.CONST), ref_model.decoder.synthesize(w))


def test_manifest_records_configs_provenance_and_hashes(pack: Path, originals: dict) -> None:
    manifest = open_pack(pack).manifest
    assert manifest["format"] == "mimic-pack" and manifest["format_version"] == 1
    assert manifest["components"] == ["E_i", "E_m", "G", "M", "arcface", "latent_avg"]
    assert manifest["configs"]["generator"] == {"size": 64, "style_dim": 64, "n_mlp": 2, "channel_multiplier": 2,
                                                "lr_mlp": 0.01, "channel_max": 32, "conv_clamp": None}
    assert manifest["configs"]["encoder"] == {"units": [1, 1, 1, 1], "channels": [16, 16, 32, 32], "in_channels": 3}
    assert (manifest["configs"]["input_size"], manifest["configs"]["restyle_iters"]) == (64, 3)
    sources = {s["role"]: s for s in manifest["sources"]}
    assert sources["paper"] == {"role": "paper", "file": "best_model.pt", "kind": "paper",
                                "sha256": file_sha256(originals["paper"])}
    assert sources["restyle"]["sha256"] == file_sha256(originals["restyle"])
    assert set(manifest["hashes"]) == set(manifest["components"]) and len(manifest["content_hash"]) == 64
    assert json.loads(sidecar_path(pack).read_text()) == manifest  # the human-readable copy


def test_modified_weights_fail_verification(pack: Path, tmp_path: Path) -> None:
    data = bytearray(pack.read_bytes())
    header = int.from_bytes(data[:8], "little")
    data[8 + header + 16] ^= 0x40  # one bit of the first tensor
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(bytes(data))
    load_paper_pack(damaged)  # not verified: loads (the flipped bit is just a different weight)
    with pytest.raises(CheckpointError, match=r"^damaged\.safetensors: the \w+ weights do not match the pack's "
                                              r"recorded hash \(the file was modified or damaged\)$"):
        load_paper_pack(damaged, verify=True)


def test_damaged_and_foreign_packs_are_reported(pack: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(pack.read_bytes()[:-1000])
    with pytest.raises(CheckpointError, match=r"^cut\.safetensors is not a readable \.safetensors file \("):
        load_paper_pack(cut)
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(CheckpointError, match=r"^plain\.safetensors is a \.safetensors file without a Mimic "
                                              r"manifest; make a pack with `python -m app import-weights`$"):
        load_paper_pack(plain)
    future = tmp_path / "future.safetensors"
    save_file({"G.w": torch.zeros(2)}, str(future), metadata={"mimic": json.dumps(
        {"format": "mimic-pack", "format_version": 9, "components": ["G"]})})
    with pytest.raises(CheckpointError, match=r"^future\.safetensors is pack format 9; this Mimic reads up to 1"):
        load_generator(future)
    with pytest.raises(CheckpointError, match=r"^model pack not found: "):
        open_pack(tmp_path / "nowhere.safetensors")


def test_generator_only_pack(tmp_path: Path) -> None:
    g = tiny_generator(seed=9, conv_clamp=256.0)
    src = write_nvidia(tmp_path / "stylegan2-ffhq-64x64.pkl", g)
    out = tmp_path / "g.safetensors"
    report = import_generator(src, out)
    assert report.manifest["components"] == ["G"] and report.manifest["sources"][0]["kind"] == "nvidia"
    loaded = load_generator(out, verify=True)
    assert loaded.config == g.config
    w = torch.randn(1, 10, 64, generator=torch.Generator().manual_seed(1)) * 30
    with torch.no_grad():
        assert torch.equal(loaded(w), g(w))
    with pytest.raises(CheckpointError, match=r"^g\.safetensors is a generator-only pack \(no E_m, M, E_i, "
                                              r"latent_avg\); expected a pack made from the paper's"):
        load_paper_pack(out)


def test_import_with_stylegan_and_different_restyle_generator(originals: dict, tmp_path: Path) -> None:
    other = tiny_generator(seed=11, conv_clamp=256.0)  # NVIDIA-trained: clamps at 256
    stylegan = write_nvidia(tmp_path / "stylegan2-ffhq-64x64.pkl", other)
    restyle = write_restyle(tmp_path / "restyle.pt", tiny_inverter(tiny_generator(seed=12)))
    report = import_weights(originals["paper"], restyle, stylegan, out=tmp_path / "p.safetensors")
    assert len(report.notes) == 2  # --stylegan differs from the paper's decoder; ReStyle's G kept apart
    assert "G_restyle" in report.manifest["components"]
    model, inverter, _ = load_paper_pack(tmp_path / "p.safetensors", verify=True)
    assert model.decoder.config.conv_clamp == 256.0 and inverter.decoder.config.conv_clamp is None
    w = torch.randn(1, 10, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(model.decoder(w), other(w))
        assert inverter.decoder is not model.decoder


def test_import_rejects_swapped_and_mismatched_files(originals: dict, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"^restyle_psp_ffhq_encode\.pt looks like a ReStyle encoder "
                                              r"checkpoint .*; expected the paper's checkpoint \(best_model\.pt\)$"):
        import_weights(originals["restyle"], originals["paper"], out=tmp_path / "x.safetensors")
    g128 = Generator(GeneratorConfig(size=128, style_dim=64, n_mlp=2, channel_max=32))
    wrong = write_state_dict(tmp_path / "g128.pt", g128)
    with pytest.raises(CheckpointError, match=r"^g128\.pt: generator 128px with 12x64 latents does not match the "
                                              r"paper's decoder in best_model\.pt \(64px, 10x64\)$"):
        import_weights(originals["paper"], originals["restyle"], wrong, out=tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()
