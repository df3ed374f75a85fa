"""Training objective and optimiser: LPIPS-Alex from the published weight layouts, the paper's terms, Ranger."""
from __future__ import annotations

import math
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F

from models.checkpoints.errors import CheckpointError
from models.encoders import ArcFace
from training.losses import IdentityLoss, LossWeights, TransferLoss, cosface_loss, inner_crop
from training.lpips import CHANNELS, load_lpips, random_lpips
from training.optim import Lookahead, Ranger
from training.sources import RANDOM_ARCFACE


def _images(n: int = 2, size: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.fixture(scope="module")
def lpips_files(tmp_path_factory):
    """Weight files in the layouts users download: torchvision's AlexNet (features + classifier) and LPIPS' heads."""
    d = tmp_path_factory.mktemp("lpips")
    ref = random_lpips(seed=5)
    alex = OrderedDict()
    for i, layer in enumerate(ref.net.features):
        if isinstance(layer, torch.nn.Conv2d):
            alex[f"features.{i}.weight"], alex[f"features.{i}.bias"] = layer.weight.clone(), layer.bias.clone()
    alex["classifier.1.weight"], alex["classifier.1.bias"] = torch.randn(8, 8), torch.randn(8)  # ignored
    torch.save(alex, d / "alexnet-owt-7be5be79.pth")
    torch.save(OrderedDict((f"lin{i}.model.1.weight", lin.weight.clone()) for i, lin in enumerate(ref.lin)),
               d / "alex.pth")
    return d / "alexnet-owt-7be5be79.pth", d / "alex.pth", ref


def test_lpips_loads_torchvision_alexnet_and_the_v01_heads(lpips_files):
    alexnet, linear, ref = lpips_files
    lpips = load_lpips(alexnet, linear)
    for (name, mine), theirs in zip(lpips.state_dict().items(), ref.state_dict().values()):
        assert torch.equal(mine, theirs), name
    assert [lin.weight.shape[1] for lin in lpips.lin] == list(CHANNELS)
    assert not any(p.requires_grad for p in lpips.parameters())


def test_lpips_is_a_distance_per_sample(lpips_files):
    lpips = load_lpips(*lpips_files[:2])
    x, y = _images(seed=1), _images(seed=2)
    d = lpips.distance(x, y)
    assert d.shape == (2,) and (d > 0).all()
    assert torch.allclose(lpips.distance(y, x), d)
    assert torch.allclose(lpips.distance(x, x), torch.zeros(2))
    assert torch.allclose(lpips(x, y), d.mean())
    # channel-normalised features: brightening the input's contrast changes less than swapping the image
    assert lpips.distance(x, x * 0.9).mean() < d.mean()


def test_lpips_matches_the_definition_written_out():
    lpips = random_lpips(seed=3)
    x, y = _images(1, seed=4), _images(1, seed=6)
    feats = []
    for img in (x, y):
        h = (img - torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)) / torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
        out = []
        for i, layer in enumerate(lpips.net.features):
            h = layer(h)
            if i in (1, 4, 7, 9, 11):
                out.append(h / (h.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))
        feats.append(out)
    expected = sum((lin.weight.view(1, -1, 1, 1) * (a - b) ** 2).sum(1).mean() for a, b, lin in zip(*feats, lpips.lin))
    assert torch.allclose(lpips(x, y), expected, rtol=1e-5)


def test_lpips_gradient_is_finite_where_features_vanish():
    lpips = random_lpips(seed=0)
    x = torch.full((1, 3, 64, 64), -1.0, requires_grad=True)  # a flat black image: many ReLU outputs are 0
    lpips(x, _images(1)).backward()
    assert torch.isfinite(x.grad).all()


def test_lpips_files_of_the_wrong_kind_are_refused_with_their_name(tmp_path, lpips_files):
    alexnet, linear, _ = lpips_files
    torch.save({"features.0.weight": torch.zeros(64, 3, 5, 5)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match=r"other\.pth: features\.0\.weight has shape \[64, 3, 5, 5\]"):
        load_lpips(tmp_path / "other.pth", linear)
    with pytest.raises(CheckpointError, match=r"alexnet-owt-7be5be79\.pth: no tensor lin0\.model\.1\.weight"):
        load_lpips(alexnet, alexnet)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pth"):
        load_lpips(tmp_path / "junk.pth", linear)


def test_inner_crop_is_the_papers_face_region():
    x = torch.arange(256 * 256).float().view(1, 1, 256, 256)
    assert torch.equal(inner_crop(x), x[:, :, 55:243, 32:220])
    assert inner_crop(torch.zeros(1, 3, 64, 64)).shape[-2:] == (47, 47)


def test_identity_loss_compares_arcface_embeddings_at_112():
    arcface = ArcFace(RANDOM_ARCFACE).eval()
    loss = IdentityLoss(arcface)
    x = _images(2, 64, seed=1).requires_grad_(True)
    y = _images(2, 64, seed=2).requires_grad_(True)
    assert float(loss(x, x).detach()) == pytest.approx(0.0, abs=1e-6)
    value = loss(x, y)
    f = lambda img: arcface(F.adaptive_avg_pool2d(img, (112, 112)))  # noqa: E731
    assert float(value) == pytest.approx(float((1 - (f(x) * f(y)).sum(1)).mean()), rel=1e-5)
    value.backward()
    assert x.grad.abs().sum() > 0 and y.grad is None  # the target's embedding is held fixed
    loss.train()
    assert not loss.arcface.training


def test_cosface_prefers_outputs_whose_motion_matches_the_driver():
    g = torch.Generator().manual_seed(0)
    driver, other = torch.randn(4, 10, 8, generator=g), torch.randn(4, 10, 8, generator=g)
    good = cosface_loss(driver, driver, driver, other)
    bad = cosface_loss(other, other, driver, other)
    assert good < bad
    # the formula: -log(p/(p+n1+n2)) per output, logits s·(cos − m); identical codes: cos = 1
    cos = F.cosine_similarity(driver.flatten(1), other.flatten(1))
    p, n = math.e ** (5 * (1 - 2)), torch.exp(5 * (cos - 2))
    expected = (-2 * torch.log(p / (p + 2 * n) + 1e-8)).mean()
    assert float(good) == pytest.approx(float(expected), rel=1e-5)


def test_transfer_loss_weights_the_terms():
    x, y_hat, y_hat1 = _images(2, seed=1), _images(2, seed=2), _images(2, seed=3)
    out = {"x": x, "y_hat": y_hat, "y_hat1": y_hat1, "target1": x}
    only_l2 = TransferLoss(LossWeights(lpips=0, lpips_crop=0, l2=0.5, l2_crop=2.0, identity=0), None, None)
    loss, terms = only_l2(out)
    expected = 0.5 * F.mse_loss(y_hat, x) + 2.0 * F.mse_loss(y_hat[..., 14:61, 8:55], x[..., 14:61, 8:55])
    assert float(loss) == pytest.approx(float(expected), rel=1e-6)
    assert set(terms) == {"l2", "l2_crop", "loss"}
    lpips, arcface = random_lpips(0), ArcFace(RANDOM_ARCFACE).eval()
    full = TransferLoss(LossWeights(), lpips, arcface)
    loss, terms = full(out)
    assert set(terms) == {"lpips", "lpips_crop", "l2_crop", "identity", "loss"}
    assert float(loss) == pytest.approx(0.05 * float(terms["lpips"]) + 0.3 * float(terms["lpips_crop"])
                                        + 2.0 * float(terms["l2_crop"]) + 0.3 * float(terms["identity"]), rel=1e-5)
    with pytest.raises(ValueError, match="LPIPS"):
        TransferLoss(LossWeights(), None, arcface)


def _ranger_by_the_formulas(params, grads_per_step, lr=1e-3, betas=(0.95, 0.999), eps=1e-5, alpha=0.5, k=6):
    """Ranger as published (gradient centralisation, RAdam with N_sma threshold 5, Lookahead), written out."""
    b1, b2 = betas
    params = [p.clone() for p in params]
    slow = [p.clone() for p in params]
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    n_max = 2 / (1 - b2) - 1
    for t, grads in enumerate(grads_per_step, start=1):
        for i, g in enumerate(grads):
            g = g - g.mean(dim=tuple(range(1, g.ndim)), keepdim=True) if g.ndim > 1 else g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            m[i] = b1 * m[i] + (1 - b1) * g
            b2t = b2**t
            n_sma = n_max - 2 * t * b2t / (1 - b2t)
            if n_sma > 5:
                step = math.sqrt((1 - b2t) * (n_sma - 4) / (n_max - 4) * (n_sma - 2) / n_sma * n_max / (n_max - 2)) / (1 - b1**t)
                params[i] = params[i] - step * lr * m[i] / (v[i].sqrt() + eps)
            else:
                params[i] = params[i] - lr / (1 - b1**t) * m[i]
            if t % k == 0:
                slow[i] = slow[i] + alpha * (params[i] - slow[i])
                params[i] = slow[i].clone()
    return params


def test_ranger_follows_the_published_update_rule():
    g = torch.Generator().manual_seed(0)
    params = [torch.randn(4, 3, 2, 2, generator=g), torch.randn(5, generator=g), torch.randn(3, 6, generator=g)]
    grads = [[torch.randn(p.shape, generator=g) for p in params] for _ in range(14)]  # both RAdam phases, 2 syncs
    mine = [p.clone().requires_grad_(True) for p in params]
    opt = Ranger(mine, lr=1e-3)
    for step in grads:
        for p, grad in zip(mine, step):
            p.grad = grad.clone()
        opt.step()
    for got, want in zip(mine, _ranger_by_the_formulas(params, grads)):
        assert torch.allclose(got.detach(), want, atol=1e-6, rtol=1e-5)


def test_lookahead_state_round_trips_mid_cycle():
    def fresh(start: torch.Tensor) -> tuple[torch.nn.Parameter, Lookahead]:
        w = torch.nn.Parameter(start.clone())
        return w, Lookahead(torch.optim.Adam([w], lr=0.1), alpha=0.5, k=3)

    def steps(w: torch.nn.Parameter, opt: Lookahead, which: range) -> None:
        for i in which:
            opt.zero_grad()
            (w * torch.arange(9.0).view(3, 3) * (i + 1)).square().sum().backward()
            opt.step()

    start = torch.randn(3, 3, generator=torch.Generator().manual_seed(0))
    straight, opt = fresh(start)
    steps(straight, opt, range(7))
    first, opt = fresh(start)
    steps(first, opt, range(4))  # stops between two Lookahead syncs (k = 3)
    saved = (first.detach().clone(), opt.state_dict())
    resumed, opt = fresh(saved[0])
    opt.load_state_dict(saved[1])
    steps(resumed, opt, range(4, 7))
    assert torch.equal(straight, resumed)
