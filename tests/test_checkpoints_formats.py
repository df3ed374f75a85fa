"""Every checkpoint format round-trips to identical outputs; wrong, damaged and mismatched files give
one-line errors naming the file; inferred configs match the published checkpoints' manifests."""
from __future__ import annotations

import argparse
import io
import json
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from engine.runtime.weights import load_arcface, load_generator, load_latent, load_paper_pack
from models.checkpoints.configs import generator_config, irse_config, restyle_input_size
from models.checkpoints.errors import CheckpointError
from models.checkpoints.formats import Kind, paper_weights, read_checkpoint, restyle_weights
from models.checkpoints.nvidia import _convert_tensors
from models.irse import IRSEConfig
from models.stylegan2 import Generator, GeneratorConfig, NoiseMode
from tests.checkpoint_writers import (
    TINY, one_thread, tiny_arcface, tiny_generator, tiny_inverter, tiny_paper, write_latent_npy, write_latent_pkl,
    write_nvidia, write_paper, write_restyle, write_rosinality, write_state_dict,
)

pytestmark = pytest.mark.usefixtures(one_thread.__name__)


@pytest.fixture(scope="module")
def g() -> Generator:
    return tiny_generator(seed=0)


@pytest.fixture(scope="module")
def w_plus(g: Generator) -> torch.Tensor:
    return torch.randn(2, g.config.n_latent, g.config.style_dim, generator=torch.Generator().manual_seed(5))


def same_images(a: Generator, b: Generator, w_plus: torch.Tensor) -> bool:
    with torch.no_grad():
        return all(torch.equal(a.synthesize(w_plus, mode), b.synthesize(w_plus, mode))
                   for mode in (NoiseMode.CONST, NoiseMode.NONE))


@pytest.mark.parametrize("writer", ["rosinality-zip", "rosinality-legacy", "state-dict"])
def test_generator_files_round_trip(tmp_path: Path, g: Generator, w_plus: torch.Tensor, writer: str) -> None:
    path = tmp_path / "stylegan2-ffhq-config-f.pt"
    if writer == "state-dict":
        write_state_dict(path, g)
    else:
        write_rosinality(path, g, legacy=writer.endswith("legacy"))
    loaded = load_generator(path)
    assert loaded.config == g.config
    assert same_images(loaded, g, w_plus)


def test_nvidia_pickle_round_trips(tmp_path: Path, w_plus: torch.Tensor) -> None:
    g = tiny_generator(seed=4, conv_clamp=256.0)
    loaded = load_generator(write_nvidia(tmp_path / "stylegan2-ffhq-64x64.pkl", g))
    assert loaded.config == g.config  # conv_clamp=256 read from the pickle
    assert same_images(loaded, g, w_plus * 40)  # large W: the clamp is active


def test_paper_and_restyle_decoders_round_trip(tmp_path: Path, w_plus: torch.Tensor) -> None:
    model = tiny_paper()
    inverter = tiny_inverter(tiny_generator(seed=7))
    paper = write_paper(tmp_path / "best_model.pt", model)
    restyle = write_restyle(tmp_path / "restyle_psp_ffhq_encode.pt", inverter)
    assert same_images(load_generator(paper), model.decoder, w_plus)
    assert same_images(load_generator(restyle), inverter.decoder, w_plus)
    pw = paper_weights(read_checkpoint(paper))
    assert pw.encoder_config == TINY.encoder and pw.opts["optim_name"] == "ranger"
    rw = restyle_weights(read_checkpoint(restyle))
    assert (rw.encoder_config, rw.input_size, rw.n_iters) == \
        (TINY.identity_encoder, TINY.input_size, TINY.restyle_iters)
    assert torch.equal(rw.latent_avg, inverter.latent_avg)


def test_arcface_round_trips(tmp_path: Path) -> None:
    arcface = tiny_arcface()
    loaded = load_arcface(write_state_dict(tmp_path / "model_ir_se50.pth", arcface))
    x = torch.randn(2, 3, 112, 112, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(loaded(x), arcface(x))


# ------------------------------------------------------------------------------------------ wrong kind


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, g: Generator) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("files")
    model = tiny_paper()
    return {
        "paper": write_paper(tmp / "best_model.pt", model),
        "restyle": write_restyle(tmp / "restyle_psp_ffhq_encode.pt", tiny_inverter(model.decoder)),
        "arcface": write_state_dict(tmp / "model_ir_se50.pth", tiny_arcface()),
        "rosinality": write_rosinality(tmp / "stylegan2-ffhq-config-f.pt", g),
        "latent": write_latent_npy(tmp / "latent.npy", np.zeros((8, 64), np.float32)),
    }


def test_wrong_kind_errors_name_file_and_expectation(files: dict[str, Path]) -> None:
    cases = [
        (lambda: load_generator(files["arcface"]),
         "model_ir_se50.pth looks like an ArcFace IR-SE50 state dict (model_ir_se50.pth); "
         "expected a StyleGAN2 generator"),
        (lambda: paper_weights(read_checkpoint(files["restyle"])),
         "restyle_psp_ffhq_encode.pt looks like a ReStyle encoder checkpoint (restyle_psp_ffhq_encode.pt); "
         "expected the paper's checkpoint (best_model.pt)"),
        (lambda: restyle_weights(read_checkpoint(files["paper"])),
         "best_model.pt looks like the paper's checkpoint (best_model.pt); expected a ReStyle-pSp checkpoint "
         "(restyle_psp_ffhq_encode.pt)"),
        (lambda: load_arcface(files["rosinality"]),
         "stylegan2-ffhq-config-f.pt looks like a StyleGAN2 checkpoint (rosinality); expected an ArcFace IR-SE50 "
         "state dict (model_ir_se50.pth)"),
        (lambda: load_paper_pack(files["paper"]),
         "best_model.pt looks like the paper's checkpoint (best_model.pt); expected a Mimic model pack "
         "(make one with `python -m app import-weights`)"),
        (lambda: load_generator(files["latent"]),
         "latent.npy looks like a NumPy array file; expected a StyleGAN2 generator"),
    ]
    for call, message in cases:
        with pytest.raises(CheckpointError) as info:
            call()
        assert str(info.value) == message


def test_kinds_are_detected(files: dict[str, Path]) -> None:
    kinds = {name: read_checkpoint(path).kind for name, path in files.items()}
    assert kinds == {"paper": Kind.PAPER, "restyle": Kind.RESTYLE, "arcface": Kind.ARCFACE,
                     "rosinality": Kind.ROSINALITY, "latent": Kind.NUMPY}
    args = read_checkpoint(files["rosinality"]).content["args"]  # argparse.Namespace, rebuilt as plain data
    assert isinstance(args, SimpleNamespace) and not isinstance(args, argparse.Namespace)
    assert (args.size, args.channel_multiplier, args.path) == (64, 2, "ffhq.lmdb")


def test_unknown_content_is_named(tmp_path: Path) -> None:
    path = tmp_path / "optimizer.pt"
    torch.save({"step": 3, "lr": 0.1}, path)
    with pytest.raises(CheckpointError, match=r"^optimizer\.pt is a pickle/PyTorch file but no checkpoint format "
                                              r"Mimic knows \(a dict with keys step, lr\)$"):
        load_generator(path)


# ------------------------------------------------------------------------------------------ damaged


@pytest.mark.parametrize("name", ["rosinality", "rosinality-legacy", "nvidia", "paper"])
@pytest.mark.parametrize("cut", [0.5, 0.97])
def test_truncated_files_are_reported(tmp_path: Path, g: Generator, name: str, cut: float) -> None:
    path = tmp_path / f"{name}.pt"
    if name == "nvidia":
        write_nvidia(path, g)
    elif name == "paper":
        write_paper(path, tiny_paper())
    else:
        write_rosinality(path, g, legacy=name.endswith("legacy"))
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(CheckpointError) as info:
        load_generator(path)
    message = str(info.value)
    assert message.startswith(f"{path.name} is truncated") and "\n" not in message


def test_garbage_and_missing_files_are_reported(tmp_path: Path) -> None:
    cases = {"empty.pt": b"", "text.pt": b"hello, this is not a checkpoint\n", "noise.pkl": bytes(range(7, 250)) * 9}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    expected = {
        "empty.pt": "empty.pt is empty",
        "text.pt": "text.pt is not a PyTorch checkpoint or pickle",
        "noise.pkl": "noise.pkl is not a PyTorch checkpoint or pickle",
    }
    for name, message in expected.items():
        with pytest.raises(CheckpointError) as info:
            load_generator(tmp_path / name)
        assert str(info.value) == message
    with pytest.raises(CheckpointError, match=r"^file not found: .*nowhere\.pt$"):
        load_generator(tmp_path / "nowhere.pt")
    with pytest.raises(CheckpointError, match=r"is a folder; expected a checkpoint file$"):
        load_generator(tmp_path)


def test_corrupt_zip_storage_is_reported(tmp_path: Path, g: Generator) -> None:
    path = write_rosinality(tmp_path / "g.pt", g)
    data = bytearray(path.read_bytes())
    start = data.index(b"data/0") + 200  # inside the first storage: the zip's CRC no longer matches
    data[start: start + 64] = bytes(64)
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"^g\.pt is truncated or corrupt \(BadZipFile: Bad CRC-32"):
        load_generator(path)


# ------------------------------------------------------------------------------------------ strict keys


def test_strict_keys(tmp_path: Path, g: Generator) -> None:
    state = g.state_dict()
    missing = {k: v for k, v in state.items() if k != "to_rgbs.0.bias"}
    extra = {**state, "convs.99.conv.weight_orig": torch.zeros(1)}
    wrong = {**state, "to_rgb1.bias": torch.zeros(1, 4, 1, 1)}
    expected = {
        "missing.pt": (missing, "missing.pt: the StyleGAN2 generator does not match: 1 missing tensor(s) "
                                "(e.g. to_rgbs.0.bias)"),
        "extra.pt": (extra, "extra.pt: the StyleGAN2 generator does not match: 1 unexpected tensor(s) "
                            "(e.g. convs.99.conv.weight_orig)"),
        "wrong.pt": (wrong, "wrong.pt: the StyleGAN2 generator does not match: 1 of the wrong shape "
                            "(e.g. to_rgb1.bias [1, 4, 1, 1] (expected [1, 3, 1, 1]))"),
    }
    for name, (sd, message) in expected.items():
        torch.save(sd, tmp_path / name)
        with pytest.raises(CheckpointError) as info:
            load_generator(tmp_path / name)
        assert str(info.value) == message


def test_paper_state_dict_must_be_complete(tmp_path: Path) -> None:
    model = tiny_paper()
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("encoder.linear.")}
    torch.save({"state_dict": {**state, "discriminator.w": torch.zeros(1)}, "opts": {}}, tmp_path / "best_model.pt")
    with pytest.raises(CheckpointError, match=r"^best_model\.pt: unexpected tensor discriminator\.w"):
        paper_weights(read_checkpoint(tmp_path / "best_model.pt"))


# ------------------------------------------------------------------------------------------ latents


def test_latents(tmp_path: Path) -> None:
    latent = np.random.RandomState(0).randn(18, 512).astype(np.float64)
    files = (write_latent_npy(tmp_path / "a.npy", latent), write_latent_pkl(tmp_path / "a.pkl", latent),
             write_latent_npy(tmp_path / "b.npy", latent[None]), write_latent_pkl(tmp_path / "b.pkl", latent[None]))
    for path in files:
        loaded = load_latent(path, 18, 512)
        assert loaded.dtype == np.float32 and np.array_equal(loaded, latent.astype(np.float32))
    w = write_latent_npy(tmp_path / "w.npy", latent[0])
    assert np.array_equal(load_latent(w, 18, 512), np.repeat(latent[:1], 18, 0).astype(np.float32))
    with pytest.raises(CheckpointError, match=r"^a\.npy holds a latent of shape \[18, 512\]; expected \[8, 64\]$"):
        load_latent(tmp_path / "a.npy", 8, 64)
    with pytest.raises(CheckpointError, match=r"^i\.npy holds a int64 array; expected a float latent$"):
        load_latent(write_latent_npy(tmp_path / "i.npy", np.zeros((18, 512), np.int64)))
    with pytest.raises(CheckpointError, match=r"^latent not found: "):
        load_latent(tmp_path / "none.npy")
    (tmp_path / "cut.npy").write_bytes((tmp_path / "a.npy").read_bytes()[:500])
    with pytest.raises(CheckpointError, match=r"^cut\.npy is truncated or corrupt"):
        load_latent(tmp_path / "cut.npy")


# ------------------------------------------------------------------------------------------ reference manifests


def meta_state(reference: Path, prefix: str = "") -> dict[str, torch.Tensor]:
    """The manifest's tensors as shape-only (meta) tensors; FIR filters real, as they are checked."""
    tensors = json.loads(reference.read_text())["tensors"]
    filt = torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1])) / 64
    return {k[len(prefix):]: filt.clone() if k.endswith("resample_filter") else torch.empty(shape, device="meta")
            for k, shape in tensors.items() if k.startswith(prefix)}


def test_nvidia_1024_maps_onto_rosinality_1024_key_for_key(reference_dir: Path) -> None:
    nv = meta_state(reference_dir / "nvidia_G1024.json")
    nv.pop("mapping.w_avg")
    converted = _convert_tensors(nv, 10, "stylegan2-ffhq-1024x1024.pkl")
    ros = json.loads((reference_dir / "rosinality_G1024_mult2.json").read_text())["tensors"]
    assert {k: list(v.shape) for k, v in converted.items()} == ros
    assert generator_config(converted, "x", conv_clamp=256.0) == GeneratorConfig(conv_clamp=256.0)


def test_configs_inferred_from_published_shapes(reference_dir: Path) -> None:
    paper = meta_state(reference_dir / "paper_best_model.json")
    assert irse_config({k[8:]: v for k, v in paper.items() if k.startswith("encoder.")}, "x") == IRSEConfig()
    assert generator_config({k[8:]: v for k, v in paper.items() if k.startswith("decoder.")}, "x") == GeneratorConfig()
    restyle = meta_state(reference_dir / "restyle_psp_ffhq_encode.json", "encoder.")
    assert irse_config(restyle, "x") == IRSEConfig(in_channels=6)
    assert restyle_input_size(restyle, "x") == 256
    assert irse_config(meta_state(reference_dir / "arcface_ir_se50.json"), "x") == IRSEConfig()
    for name, multiplier in (("rosinality_G256_mult1.json", 1), ("rosinality_G256_mult2.json", 2)):
        config = generator_config(meta_state(reference_dir / name), name)
        assert (config.size, config.channel_multiplier, config.n_latent) == (256, multiplier, 14)


def test_bogus_storage_sizes_are_refused_before_allocating(tmp_path: Path) -> None:
    zipped, legacy = tmp_path / "zipped.pt", tmp_path / "legacy.pt"
    torch.save({"w": torch.ones(3)}, zipped)
    torch.save({"w": torch.ones(3)}, legacy, _use_new_zipfile_serialization=False)
    huge = 10**12  # 4 TB of float32, declared in the pickle
    for path, old, new in ((zipped, b"K\x03tq", b"\x8a\x05" + huge.to_bytes(5, "little") + b"tq"),
                           (legacy, b"K\x03Ntq", b"\x8a\x05" + huge.to_bytes(5, "little") + b"Ntq")):
        data = path.read_bytes()
        assert data.count(old) == 1
        if path is zipped:  # rewrite data.pkl inside the zip
            buffer = io.BytesIO()
            with zipfile.ZipFile(path) as src, zipfile.ZipFile(buffer, "w") as dst:
                for info in src.infolist():
                    body = src.read(info)
                    dst.writestr(info, body.replace(old, new) if info.filename.endswith("data.pkl") else body)
            path.write_bytes(buffer.getvalue())
        else:
            path.write_bytes(data.replace(old, new))
        with pytest.raises(CheckpointError, match=rf"^{path.name} is truncated or corrupt \(UnpicklingError: storage"):
            read_checkpoint(path)
