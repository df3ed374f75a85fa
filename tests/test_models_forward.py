"""Forward semantics of the networks on tiny configs: noise modes, truncation, ReStyle loop, identity-first M."""
from __future__ import annotations

import numpy as np
import torch

from benchmarks.plain_stylegan2 import map_z, synthesize, upfirdn2d
from models.layers import fir_filter, upsample2x
from models.mapping import MappingNet
from models.paper import PaperConfig, PaperModel, ReStyleInverter
from models.stylegan2 import Generator, GeneratorConfig, NoiseMode


def randomized(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.1)
    return module.eval()


def test_generator_matches_the_plain_reference_formulation():
    """Our fast formulation (activation-side modulation, transposed-convolution upsampling) == the reference's ops."""
    for size, mult in ((32, 1), (64, 2)):
        torch.manual_seed(size)
        g = randomized(Generator(GeneratorConfig(size=size, channel_multiplier=mult, channel_max=64, style_dim=32)), size)
        w = torch.randn(2, g.config.n_latent, 32)
        z = torch.randn(2, 32)
        with torch.no_grad():
            ours, ref = g(w), synthesize(w, g.state_dict())
            assert (ours - ref).abs().max() <= 1e-4 * ref.abs().max()
            assert torch.equal(g.map(z), map_z(z, g.state_dict(), n_mlp=g.config.n_mlp))


def test_fir_layers_equal_the_reference_upfirdn2d():
    """The depthwise (transposed) convolutions are upfirdn2d exactly, also for a kernel with no symmetry
    (which would catch a flipped kernel or a pad on the wrong side)."""
    torch.manual_seed(0)
    x, kernel = torch.randn(2, 3, 9, 7), torch.rand(4, 4)
    assert torch.allclose(upsample2x(x, kernel), upfirdn2d(x, kernel, up=2, pad=(2, 1)), atol=1e-6)
    for pad in ((1, 1), (2, 1), (0, 0)):
        assert torch.allclose(fir_filter(x, kernel, pad), upfirdn2d(x, kernel, pad=pad), atol=1e-6)


def test_noise_modes():
    g = randomized(Generator(GeneratorConfig(size=32, channel_max=32, style_dim=32)), 0)
    with torch.no_grad():
        for conv in g.convs:  # make the noise strengths clearly non-zero
            conv.noise.weight.fill_(0.5)
        w = torch.randn(1, g.config.n_latent, 32)
        const1, const2 = g.synthesize(w, NoiseMode.CONST), g.synthesize(w, NoiseMode.CONST)
        none = g.synthesize(w, NoiseMode.NONE)
        r1, r2, r3 = (g.synthesize(w, NoiseMode.RANDOM, seed=s) for s in (1, 1, 2))
    assert torch.equal(const1, const2) and torch.equal(r1, r2)
    assert not torch.allclose(const1, none) and not torch.allclose(r1, r3)
    assert torch.equal(g(w), const1)


def test_truncation_zero_gives_the_mean_face():
    g = randomized(Generator(GeneratorConfig(size=32, channel_max=32, style_dim=32)), 1)
    with torch.no_grad():
        mean = g.mean_latent(512)
        img, w_plus = g.sample(torch.randn(3, 32), truncation=0.0, truncation_latent=mean)
    assert torch.allclose(w_plus, mean.expand(3, g.config.n_latent, 32), atol=1e-6)
    assert torch.allclose(img[0], img[2], atol=1e-5)


def test_mapping_takes_the_identity_first():
    m = MappingNet(n_latent=4, style_dim=8)
    with torch.no_grad():
        m.linear.weight.zero_()
        m.linear.weight[:, :32] = torch.eye(32)  # only the first half (the identity) reaches the output
        m.linear.bias.zero_()
    w_id, motion = torch.randn(2, 4, 8), torch.randn(2, 4, 8)
    assert torch.equal(m(w_id, motion), w_id)


def test_restyle_loop_starts_at_latent_avg_and_refines():
    config = PaperConfig.tiny()
    inv = randomized(ReStyleInverter(config), 3)
    with torch.no_grad():
        inv.latent_avg.copy_(torch.randn_like(inv.latent_avg))
        x = torch.rand(1, 3, config.input_size, config.input_size) * 2 - 1
        steps = []
        w1 = inv.invert(x, n_iters=1, progress=lambda i, n: steps.append((i, n)))
        w3 = inv.invert(x, n_iters=3)
        first = inv.latent_avg[None] + inv.encoder(torch.cat([x, inv.render_pooled(inv.latent_avg[None])], 1))
    assert steps == [(1, 1)]
    assert torch.allclose(w1, first, atol=1e-6)
    assert not torch.allclose(w1, w3)
    assert w3.shape == (1, config.generator.n_latent, config.generator.style_dim)


def test_paper_forward_is_g_of_m_of_identity_and_motion():
    config = PaperConfig.tiny()
    model = randomized(PaperModel(config), 4)
    x = torch.rand(2, 3, config.input_size, config.input_size) * 2 - 1
    w_id = torch.randn(2, config.generator.n_latent, config.generator.style_dim)
    with torch.no_grad():
        expected = model.decoder(model.mapping_net(w_id, model.encoder(x)))
        assert torch.equal(model(x, w_id), expected)
        assert np.isfinite(expected.numpy()).all()
