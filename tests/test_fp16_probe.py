"""The fp16 safety probe (issue 23, item 2), on the CPU in fp16: a sound pack passes and keeps fp16, a pack
doctored so that fp16 overflows is refused by `auto` (fp32 instead, and the runtime line says why), the
verdict is cached beside the compiled graphs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import engine.runtime.fp16_probe as fp16_probe
from engine.runtime.runtimes import RuntimeChoice, fp16_decision
from engine.runtime.weights import import_weights
from engine.stylegan.reenactor import StyleGANOptions, StyleGANReenactor
from tests.checkpoint_writers import one_thread, tiny_inverter, tiny_paper, write_paper, write_restyle  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")

AUTO_FP16 = RuntimeChoice("eager", "cpu", "fp16", reason="test: auto on a GPU would pick fp16", precision_auto=True)


def _pack(folder: Path, doctor: float | None = None) -> Path:
    """A pack imported from paper + ReStyle files; `doctor`: G's constant input scaled by this (activations
    past fp16's range before the first demodulation; harmless in fp32, where demodulation rescales)."""
    model = tiny_paper(seed=1)
    if doctor is not None:
        with torch.no_grad():
            model.decoder.input.input.mul_(doctor)
    folder.mkdir(parents=True, exist_ok=True)
    paper = write_paper(folder / "best_model.pt", model)
    restyle = write_restyle(folder / "restyle.pt", tiny_inverter(model.decoder))
    out = folder / "pack.safetensors"
    import_weights(paper, restyle, out=out)
    return out


@pytest.fixture(scope="module")
def packs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("packs")
    return {"sound": _pack(root / "sound"), "doctored": _pack(root / "doctored", doctor=1e6)}


def test_sound_pack_passes_and_auto_keeps_fp16(packs, tmp_path, monkeypatch):
    monkeypatch.setenv("MIMIC_CACHE_DIR", str(tmp_path))
    from engine.runtime.weights import load_paper_pack

    model, inverter, _ = load_paper_pack(packs["sound"])
    verdict = fp16_probe.probe(model.decoder, model.encoder, "cpu", model.config.input_size)
    assert verdict.passed, verdict
    assert verdict.nonfinite == 0 and (verdict.psnr_db is None or verdict.psnr_db >= 40) and verdict.headroom > 2
    reenactor = StyleGANReenactor(model, inverter, "sound", AUTO_FP16, StyleGANOptions.paper())
    assert reenactor.runtime.precision == "fp16"
    assert "probe passed" in reenactor.describe()
    assert list((tmp_path / "compiled").glob("fp16-probe-*.json"))  # beside the compiled graphs
    # a frame in fp16 through the runtime's graphs (inputs cast to fp16, fp32 islands) against fp32's
    w_id = model.decoder.mean_latent(64).expand(model.decoder.config.n_latent, -1).numpy()
    fp32 = StyleGANReenactor(model, inverter, "sound", RuntimeChoice("eager", "cpu", "fp32", reason="test"),
                             StyleGANOptions.paper())
    driving = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3)) * 2 - 1
    frames = []
    for r in (reenactor, fp32):
        r.set_identity(w_id)
        frames.append(r.render(driving).astype(float))
    mse = ((frames[0] - frames[1]) ** 2).mean()
    assert mse == 0 or 10 * np.log10(255**2 / mse) >= 40


def test_doctored_pack_makes_auto_refuse_fp16(packs, tmp_path, monkeypatch):
    monkeypatch.setenv("MIMIC_CACHE_DIR", str(tmp_path))
    from engine.runtime.weights import load_paper_pack

    model, inverter, _ = load_paper_pack(packs["doctored"])
    verdict = fp16_probe.probe(model.decoder, model.encoder, "cpu", model.config.input_size)
    assert not verdict.passed and verdict.nonfinite > 0, verdict
    assert "inf/NaN" in verdict.reason
    reenactor = StyleGANReenactor(model, inverter, "doctored", AUTO_FP16, StyleGANOptions.paper())
    assert reenactor.runtime.precision == "fp32"  # no bf16 on a CPU device: fp32
    line = reenactor.describe()
    assert "fp32" in line and "fp16 refused" in line and "inf/NaN" in line, line
    # fp32 renders the doctored pack correctly: the refusal is what keeps the frames right
    reenactor.set_identity(model.decoder.mean_latent(64).expand(model.decoder.config.n_latent, -1).numpy())
    frame = reenactor.render(torch.zeros(1, 3, 64, 64))
    assert frame.std() > 0

    # the verdict is cached: a second start reads it instead of probing again
    def no_probe(*args, **kwargs):
        raise AssertionError("probed again although a verdict was cached")

    monkeypatch.setattr(fp16_probe, "probe", no_probe)
    again = StyleGANReenactor(model, inverter, "doctored", AUTO_FP16, StyleGANOptions.paper())
    assert again.runtime.precision == "fp32" and "fp16 refused" in again.describe()


def test_fp16_asked_for_is_kept_with_a_warning(caplog):
    asked = RuntimeChoice("eager", "cuda", "fp16", reason="device cuda requested", precision_auto=False)
    kept = fp16_decision(asked, False, "12 inf/NaN values in fp16")
    assert kept.precision == "fp16" and "probe failed" in kept.precision_note
    assert any("fp16 probe failed" in r.getMessage() for r in caplog.records)
    passed = fp16_decision(AUTO_FP16, True, "probe passed: 52.0 dB vs fp32, headroom 900x")
    assert passed.precision == "fp16" and "probe passed" in passed.reason
    assert fp16_decision(AUTO_FP16, False, "x").precision == "fp32"
