"""Relative motion and feature smoothing of the paper's reenactor (tiny random model, aligned inputs)."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from engine.reenactor import TargetSpec
from engine.runtime.runtimes import select_runtime
from engine.stylegan.motion import NEUTRAL_FRAMES, FeatureMotion, MotionConfig
from engine.stylegan.options import StyleGANOptions
from engine.stylegan.pipeline import StyleGANReenactor
from tests.checkpoint_writers import one_thread, tiny_inverter, tiny_paper  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def nets():
    model = tiny_paper()
    return model, tiny_inverter(model.decoder)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MIMIC_CACHE_DIR", str(tmp_path / "cache"))


def reenactor(nets, **options) -> StyleGANReenactor:
    model, inverter = nets
    return StyleGANReenactor(copy.deepcopy(model), copy.deepcopy(inverter), "tiny", select_runtime("eager", "cpu", "fp32"),
                             StyleGANOptions(aligned_input=True, paper_crop=False, **options))


def image(seed: int, size: int = 64) -> np.ndarray:
    return np.random.RandomState(seed).randint(0, 256, (size, size, 3), dtype=np.uint8)


def drive(r: StyleGANReenactor, frame: np.ndarray, n: int) -> np.ndarray:
    for _ in range(n):
        out = r.drive(frame).image
    return out.astype(int)


def test_two_still_drivers_give_the_same_output(nets, one_thread):
    target = TargetSpec.from_image(image(10))
    outs = []
    for seed in (1, 2):
        r = reenactor(nets)
        r.set_target(target)
        outs.append(drive(r, image(seed), NEUTRAL_FRAMES + 2))
    assert np.abs(outs[0] - outs[1]).max() <= 1
    absolute = []
    for seed in (1, 2):  # the paper's absolute motion does show the drivers' difference
        r = reenactor(nets, motion="absolute")
        r.set_target(target)
        absolute.append(drive(r, image(seed), 1))
    assert np.abs(absolute[0] - absolute[1]).max() > 10


def test_rest_equals_absolute_output_for_the_targets_own_crop(nets, one_thread):
    crop = image(10)
    relative = reenactor(nets)
    relative.set_target(TargetSpec.from_image(crop))
    rest = drive(relative, image(3), NEUTRAL_FRAMES + 1)
    absolute = reenactor(nets, motion="absolute", smoothing=0.0)
    absolute.set_target(TargetSpec.from_image(crop))
    assert np.abs(rest - drive(absolute, crop, 1)).max() <= 1


def test_latent_target_rests_at_its_generated_face(nets, one_thread):
    model, _ = nets
    g = model.decoder.config
    w_id = np.random.RandomState(5).randn(g.n_latent, g.style_dim).astype(np.float32)
    outs = []
    for seed in (1, 2):
        r = reenactor(nets)
        r.set_identity(w_id)
        outs.append(drive(r, image(seed), NEUTRAL_FRAMES))
    assert np.abs(outs[0] - outs[1]).max() <= 1


def test_neutral_retake_mid_stream(nets, one_thread):
    r = reenactor(nets, smoothing=0.0)
    r.set_target(TargetSpec.from_image(image(10)))
    rest = drive(r, image(1), NEUTRAL_FRAMES)
    moved = drive(r, image(2), 1)  # another face than the neutral: the target moves
    assert np.abs(moved - rest).max() > 10
    r.reset_neutral()
    again = drive(r, image(2), NEUTRAL_FRAMES)  # that face is the neutral now: the target rests
    assert np.abs(again - rest).max() <= 1


def test_expression_gain_scales_the_motion(nets, one_thread):
    outs = {}
    for gain in (0.0, 1.0):
        r = reenactor(nets, smoothing=0.0, expression=gain)
        r.set_target(TargetSpec.from_image(image(10)))
        rest = drive(r, image(1), NEUTRAL_FRAMES)
        outs[gain] = np.abs(drive(r, image(2), 1) - rest).max()
    assert outs[0.0] <= 1 < outs[1.0]


def test_smoothing_keeps_a_still_noisy_driver_still():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=64) * 5
    scale = rng.uniform(0.1, 10.0, 64)  # each dimension's noise response: the filter's units
    raw, smooth = FeatureMotion(MotionConfig(smoothing=0.0)), FeatureMotion(MotionConfig())
    for m in (raw, smooth):
        m.set_target(truth, scale)
    frames = [truth + rng.normal(size=64) * scale for _ in range(300)]
    out_raw = np.array([raw(f) for f in frames])[30:]
    out_smooth = np.array([smooth(f) for f in frames])[30:]
    ratio = out_smooth.std(0) / out_raw.std(0)
    assert ratio.max() < 0.5  # every dimension calmed, whatever its scale: one strength fits all
    unscaled = FeatureMotion(MotionConfig())
    unscaled.set_target(truth, np.ones(64))
    plain = np.array([unscaled(f) for f in frames])[30:].std(0) / out_raw.std(0)
    assert plain[scale > 5].mean() > 1.5 * ratio[scale > 5].mean()  # without the units the noisiest pass more
