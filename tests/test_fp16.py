"""fp16 numerics on the CPU (issue 23, item 1): the networks in half precision against float32.

Small configs only; the paper's 1024 config is measured by benchmarks/fp16_headroom.py (docs/gpu.md).
"""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from benchmarks.fp16_headroom import check_network, generator_inputs
from engine.runtime.half_numerics import FP16_MAX, CpuHalfConvolutions, image_difference
from models.precision import fp32_islands, to_precision
from tests.checkpoint_writers import one_thread, tiny_generator, tiny_paper  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("one_thread")


def _half(module: torch.nn.Module) -> torch.nn.Module:
    return to_precision(copy.deepcopy(module), torch.float16)


def test_to_precision_keeps_the_fp32_islands():
    model = tiny_paper()
    half = _half(model)
    islands = fp32_islands(half)
    assert "encoder.output_layer_2.3" in islands  # E_m's last linear: f feeds the folded mapping
    assert "decoder.conv1.conv.modulation" in islands and "decoder.to_rgbs.0.conv.modulation" in islands
    for name, p in half.named_parameters():
        inside = any(name.startswith(i + ".") for i in islands)
        assert p.dtype == (torch.float32 if inside else torch.float16), name
    assert half.decoder(torch.randn(1, model.config.generator.n_latent, 64).half()).dtype == torch.float32


def test_fp16_generator_matches_fp32_on_stressed_latents():
    """Truncation 2 and 3, W+ mixed far from the average, W+ at the range's edges: PSNR ≥ 40 dB, finite
    (PyTorch's own fp16 CPU kernels)."""
    g = tiny_generator(seed=3)
    inputs = generator_inputs(g)
    check = check_network("G", g, inputs, ["conv1", "convs", "to_rgbs"], native=True)
    for label, result in check.inputs.items():
        assert result["nonfinite"] == 0, label
        assert result["psnr_db"] is None or result["psnr_db"] >= 40, (label, result)
    assert min(row["headroom"] for row in check.layers) > 100
    assert set(check.inputs) == {"W, psi=1", "W, psi=2", "W, psi=3", "W+ mixed, psi=3", "W+ at range edges"}


def test_peak_normalised_styles_keep_huge_styles_finite():
    """Styles of ~3000 in the demodulated convolutions (their style affines' bias set to 3000): Σ W²·s²
    ≈ 10⁷ overflows fp16, so a naive fp16 demodulation gives inf → 0 and a black image; with the fp32
    islands and s/max|s| fp16 matches fp32. (The ToRGB styles stay: they scale the image itself.)"""
    g = tiny_generator(seed=4)
    with torch.no_grad():
        for name, p in g.named_parameters():
            if name.endswith("conv.modulation.bias") and not name.startswith("to_rgb"):
                p.mul_(0).add_(3000.0)
    w = g.map(torch.randn(2, 64, generator=torch.Generator().manual_seed(0)))
    w_plus = w[:, None].expand(-1, g.config.n_latent, -1)
    with torch.no_grad():
        ref = g(w_plus)
        naive = (g.conv1.conv.modulation(w_plus[:, 0]) ** 2).half() @ (g.conv1.conv.weight[0] * g.conv1.conv.scale
                                                                         ).square().sum((2, 3)).T.half()
        assert not torch.isfinite(naive).all()  # what the naive formulation would meet
        out = _half(g)(w_plus.half())
    diff = image_difference(out, ref)
    assert diff.nonfinite == 0 and diff.psnr_db >= 40, diff


def test_fp32_result_is_unchanged_by_the_normalisation():
    """s/max|s| with the peak restored through demodulation is exact: the image equals the reference
    formulation's (benchmarks.plain_stylegan2, the rosinality equations)."""
    from benchmarks.plain_stylegan2 import PlainSynthesis

    g = tiny_generator(seed=5)
    w_plus = torch.randn(1, g.config.n_latent, 64)
    with torch.no_grad():
        assert torch.allclose(g(w_plus), PlainSynthesis(g.state_dict())(w_plus), atol=1e-4)


def test_conv_clamp_holds_in_fp16():
    """NVIDIA-trained weights carry conv_clamp=256: activations are clamped in fp16 as in fp32 (a bias
    of 10⁴ would otherwise reach ~10⁴·√2 per layer and beyond)."""
    g = tiny_generator(seed=6, conv_clamp=256.0)
    with torch.no_grad():
        g.convs[0].activate.bias.add_(1e4)
    half = _half(g)
    peaks: list[float] = []
    hooks = [m.register_forward_hook(lambda mod, a, out: peaks.append(float(out.float().abs().max())))
             for m in half.modules() if type(m).__name__ == "FusedBiasActivation"]
    w_plus = torch.randn(1, g.config.n_latent, 64)
    with torch.no_grad():
        out = half(w_plus.half())
        ref = g(w_plus)
    for h in hooks:
        h.remove()
    assert max(peaks) <= 256.0 and max(peaks) >= 255.0
    assert image_difference(out, ref).nonfinite == 0


def test_cpu_half_convolutions_round_like_fp16_storage():
    """The emulation (fp16 operands, fp32 accumulation, fp16 result) agrees with PyTorch's own fp16
    kernels to fp16 rounding, and overflows to inf exactly where fp16 storage does."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 16, 12, 12, generator=gen).half()
    w = torch.randn(8, 16, 3, 3, generator=gen).half()
    native = F.conv2d(x, w, padding=1)
    with CpuHalfConvolutions():
        emulated = F.conv2d(x, w, padding=1)
        up = F.conv_transpose2d(x, w.transpose(0, 1), stride=2)
        big = F.conv2d(x * 1000, w * 100, padding=1)
    assert emulated.dtype == up.dtype == torch.float16
    exact = F.conv2d(x.float(), w.float(), padding=1)
    assert (emulated.float() - exact).abs().max() <= exact.abs().max() * 2**-10
    assert (native.float() - exact).abs().max() <= exact.abs().max() * 2**-8
    assert torch.isinf(big).any() and float(F.conv2d(x.float() * 1000, w.float() * 100, padding=1).abs().max()) > FP16_MAX
