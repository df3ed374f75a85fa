"""The paper's pipeline in the engine: exact folding, identities, rendering, runtimes (tiny random model)."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from engine.reenactor import Reenactor, TargetSpec
from engine.runtime.runtimes import select_runtime
from engine.stylegan.folding import FoldedMapping
from engine.stylegan.images import to_image, to_tensor
from engine.stylegan.options import StyleGANOptions
from engine.stylegan.pipeline import StyleGANReenactor
from models.paper import PaperConfig, PaperModel, ReStyleInverter


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    config = PaperConfig.tiny()
    model = PaperModel(config).eval()
    inverter = ReStyleInverter(config).eval()
    inverter.decoder.load_state_dict(model.decoder.state_dict())
    # Random init leaves some parameters at exact constants; perturb everything so the test sees all paths.
    with torch.no_grad():
        for module in (model, inverter):
            for p in module.parameters():
                p.add_(torch.randn_like(p) * 0.05)
    return config, model, inverter


def test_folded_mapping_equals_unfolded(tiny):
    config, model, _ = tiny
    g = model.decoder.config
    x = torch.randn(3, 3, config.input_size, config.input_size)
    w_id = torch.randn(3, g.n_latent, g.style_dim)
    with torch.no_grad():
        unfolded = model.mapping_net(w_id, model.encoder(x))
        folded_map = FoldedMapping(model.encoder.linear, model.mapping_net.linear, g.n_latent, g.style_dim)
        folded = folded_map(model.encoder.features(x), folded_map.identity_constant(w_id))
    rel = (folded - unfolded).norm() / unfolded.norm()
    assert rel.item() <= 1e-5
    # and the per-frame part really is D → n·D
    assert tuple(folded_map.fold_weight.shape) == (g.n_latent * g.style_dim, g.style_dim)


def test_reenactor_output_equals_paper_forward(tiny):
    config, model, inverter = tiny
    g = model.decoder.config
    reenactor = StyleGANReenactor(copy.deepcopy(model), copy.deepcopy(inverter), "tiny", select_runtime("eager", "cpu", "fp32"),
                                  StyleGANOptions(aligned_input=True, paper_crop=False, paste_back=False,
                                                                  motion="absolute", smoothing=0.0))
    assert isinstance(reenactor, Reenactor)
    w_id = np.random.RandomState(1).randn(g.n_latent, g.style_dim).astype(np.float32)
    reenactor.set_identity(w_id)
    frame = np.random.RandomState(2).randint(0, 256, (config.input_size, config.input_size, 3), dtype=np.uint8)
    result = reenactor.drive(frame)
    with torch.no_grad():
        expected = model(to_tensor(frame, config.input_size), torch.from_numpy(w_id)[None])
    expected_img = ((expected[0] + 1) / 2).clamp(0, 1).mul(255).permute(1, 2, 0).numpy()
    assert result.face_found and result.image.shape == (g.size, g.size, 3)
    assert np.abs(result.image.astype(np.float32) - expected_img).max() <= 1.0  # rounded vs the official truncation
    assert set(result.timings_ms) >= {"align", "E_m", "map", "G"}


def test_paper_crop_and_output_size(tiny):
    config, model, inverter = tiny
    reenactor = StyleGANReenactor(copy.deepcopy(model), copy.deepcopy(inverter), "tiny", select_runtime("eager", "cpu", "fp32"),
                                  StyleGANOptions(aligned_input=True))
    size = model.decoder.config.size
    assert reenactor.output_size == (size, size - 240 * size // 1024)
    reenactor.set_identity(np.zeros((model.decoder.config.n_latent, model.decoder.config.style_dim), np.float32))
    out = reenactor.drive(np.zeros((config.input_size, config.input_size, 3), np.uint8))
    assert out.image.shape[:2][::-1] == reenactor.output_size


def test_identities_from_latent_file_image_and_random_seed(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("MIMIC_CACHE_DIR", str(tmp_path / "cache"))
    config, model, inverter = tiny
    g = model.decoder.config
    reenactor = StyleGANReenactor(copy.deepcopy(model), copy.deepcopy(inverter), "tiny", select_runtime("eager", "cpu", "fp32"),
                                  StyleGANOptions(aligned_input=True))
    latent = np.random.RandomState(3).randn(g.n_latent, g.style_dim).astype(np.float32)
    np.save(tmp_path / "me.npy", latent)
    reenactor.set_target(TargetSpec.from_latent(tmp_path / "me.npy"))
    np.testing.assert_array_equal(reenactor.identity_latent, latent)

    steps: list[float] = []
    face = np.random.RandomState(4).randint(0, 256, (64, 64, 3), dtype=np.uint8)
    reenactor.set_target(TargetSpec.from_image(face), progress=lambda f, m: steps.append(f))
    first = reenactor.identity_latent.copy()
    assert steps[-1] == 1.0 and len(steps) >= config.restyle_iters
    cached = list((tmp_path / "cache" / "identities").glob("*.npy"))
    assert len(cached) == 1
    steps.clear()
    reenactor.set_target(TargetSpec.from_image(face), progress=lambda f, m: steps.append(f))
    np.testing.assert_array_equal(reenactor.identity_latent, first)
    assert steps == [1.0]  # served from the cache

    reenactor.set_target(TargetSpec.random(7))
    a = reenactor.identity_latent.copy()
    reenactor.set_target(TargetSpec.random(7))
    np.testing.assert_array_equal(a, reenactor.identity_latent)
    reenactor.set_target(TargetSpec.random(8))
    assert not np.array_equal(a, reenactor.identity_latent)


def test_cancel_stops_inversion(tiny, tmp_path, monkeypatch):
    import threading

    from engine.errors import Cancelled

    monkeypatch.setenv("MIMIC_CACHE_DIR", str(tmp_path))
    config, model, inverter = tiny
    reenactor = StyleGANReenactor(copy.deepcopy(model), copy.deepcopy(inverter), "tiny", select_runtime("eager", "cpu", "fp32"),
                                  StyleGANOptions(aligned_input=True))
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        reenactor.set_target(TargetSpec.from_image(np.zeros((64, 64, 3), np.uint8)), cancel=cancel)


@pytest.mark.parametrize("runtime", ["onnx"])  # compile's match: tests/test_runtimes.py (one build for both)
def test_compiled_runtimes_match_eager(tiny, runtime, tmp_path, monkeypatch):
    monkeypatch.setenv("MIMIC_CACHE_DIR", str(tmp_path))
    config, model, inverter = tiny
    g = model.decoder.config
    opts = StyleGANOptions(aligned_input=True, paper_crop=False, motion="absolute", smoothing=0.0)
    eager = StyleGANReenactor(copy.deepcopy(model), copy.deepcopy(inverter), "tiny", select_runtime("eager", "cpu", "fp32"), opts)
    fast = StyleGANReenactor(copy.deepcopy(model), copy.deepcopy(inverter), "tiny", select_runtime(runtime, "cpu", "fp32"), opts)
    w_id = np.random.RandomState(5).randn(g.n_latent, g.style_dim).astype(np.float32)
    eager.set_identity(w_id)
    fast.set_identity(w_id)
    x = to_tensor(np.random.RandomState(6).randint(0, 256, (64, 64, 3), dtype=np.uint8), config.input_size)
    a, b = eager.render(x), fast.render(x)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_image_conversions_round_trip_and_round_to_nearest():
    """engine/stylegan/images.py, the one conversion each way: uint8 → [-1, 1] → uint8 is exact, and values
    between two levels go to the nearer one (the official tensor2im truncates)."""
    image = np.random.RandomState(0).randint(0, 256, (8, 8, 3), dtype=np.uint8)
    np.testing.assert_array_equal(to_image(to_tensor(image, 8)), image)
    assert (to_image(torch.full((1, 3, 2, 2), 100.6 / 127.5 - 1)) == 101).all()  # truncation would give 100
    assert (to_image(torch.full((1, 3, 2, 2), 100.4 / 127.5 - 1)) == 100).all()
    assert to_image(torch.full((1, 3, 1, 1), 2.0)).min() == 255 and to_image(torch.full((1, 3, 1, 1), -2.0)).max() == 0
