"""The folded mapping's cache (engine/stylegan/folding.py) and the build progress a reenactor reports."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from engine.runtime.runtimes import select_runtime
from engine.stylegan.folding import FoldedMapping
from engine.stylegan.options import StyleGANOptions
from engine.stylegan.pipeline import StyleGANReenactor
from models.paper import PaperConfig, PaperModel


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = PaperModel(PaperConfig.tiny()).eval()
    with torch.no_grad():  # random init leaves some parameters constant: perturb all of them
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def folded(model, cache, announce=None) -> FoldedMapping:
    g = model.decoder.config
    return FoldedMapping(model.encoder.linear, model.mapping_net.linear, g.n_latent, g.style_dim, cache, announce)


def mapped(mapping: FoldedMapping, model) -> torch.Tensor:
    g = model.decoder.config
    gen = torch.Generator().manual_seed(3)
    features = torch.randn(2, g.style_dim, generator=gen)
    w_id = torch.randn(2, g.n_latent, g.style_dim, generator=gen)
    with torch.no_grad():
        return mapping(features, mapping.identity_constant(w_id))


def test_second_construction_loads_the_fold_from_the_cache_with_identical_results(tiny, tmp_path):
    heard = []
    first = folded(tiny, tmp_path, heard.append)
    (entry,) = tmp_path.glob("fold-*.safetensors")
    second = folded(tiny, tmp_path, heard.append)
    assert heard == [True, False]  # folded once, then loaded
    uncached = folded(tiny, None)
    for name in ("fold_weight", "motion_bias", "identity_weight"):
        assert torch.equal(getattr(first, name), getattr(second, name))
        assert torch.equal(getattr(first, name), getattr(uncached, name))
    assert torch.equal(mapped(first, tiny), mapped(second, tiny))
    with safe_open(str(entry), "pt") as f:  # a plain tensor file (no pickle), just the fold's two tensors
        assert sorted(f.keys()) == ["fold_weight", "motion_bias"]
    # A_m changed: another entry; A_id changed: the fold (which never reads it) is reused, A_id follows
    changed = copy.deepcopy(tiny)
    with torch.no_grad():
        changed.mapping_net.linear.weight[0, -1] += 1.0
    assert torch.equal(mapped(folded(changed, tmp_path), changed), mapped(folded(changed, None), changed))
    assert len(list(tmp_path.glob("fold-*.safetensors"))) == 2
    with torch.no_grad():
        changed.mapping_net.linear.weight[0, 0] += 1.0
    assert torch.equal(mapped(folded(changed, tmp_path), changed), mapped(folded(changed, None), changed))
    assert len(list(tmp_path.glob("fold-*.safetensors"))) == 2


@pytest.mark.parametrize("damage", ["truncated", "garbage", "wrong shape", "not finite"])
def test_a_corrupt_fold_entry_is_rebuilt_with_a_log_line(tiny, tmp_path, damage, caplog):
    expected = folded(tiny, tmp_path)
    (entry,) = tmp_path.glob("fold-*.safetensors")
    nd, d = expected.fold_weight.shape
    if damage == "truncated":
        entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])
    elif damage == "garbage":
        entry.write_bytes(b"not a tensor file")
    elif damage == "wrong shape":
        save_file({"fold_weight": torch.zeros(nd, d + 1), "motion_bias": torch.zeros(nd)}, str(entry))
    else:
        save_file({"fold_weight": torch.full((nd, d), float("nan")), "motion_bias": torch.zeros(nd)}, str(entry))
    caplog.clear()
    with caplog.at_level("WARNING", logger="engine.runtime.graph_cache"):
        rebuilt = folded(tiny, tmp_path)
    assert any("stale or corrupt" in r.getMessage() and "rebuilding" in r.getMessage() for r in caplog.records)
    assert torch.equal(rebuilt.fold_weight, expected.fold_weight)
    assert torch.equal(folded(tiny, tmp_path).motion_bias, expected.motion_bias)  # the rebuilt entry is good


def test_an_unwritable_cache_costs_the_fold_not_the_start(tiny, tmp_path, caplog):
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache folder should be")
    with caplog.at_level("WARNING", logger="engine.stylegan.folding"):
        mapping = folded(tiny, blocked / "folded")
    assert any("cannot use the cache" in r.getMessage() for r in caplog.records)
    assert torch.equal(mapped(mapping, tiny), mapped(folded(tiny, None), tiny))


def test_the_reenactor_reports_each_build_stage_then_the_cache_loads(tiny, tmp_path, monkeypatch):
    """Cold: the fold and both graphs are built, each announced with its runtime and an estimate;
    warm: each is loaded from the cache (ONNX Runtime here: it builds in seconds on the CPU)."""
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("MIMIC_CACHE_DIR", str(tmp_path))
    runs = {}
    for start in ("cold", "warm"):
        heard: list[tuple[float, str]] = []
        reenactor = StyleGANReenactor(copy.deepcopy(tiny), torch.nn.Module(), "tiny", select_runtime("onnx", "cpu", "fp32"),
                                      StyleGANOptions(aligned_input=True), progress=lambda f, m: heard.append((f, m)))
        runs[start] = heard
        assert all(0.0 <= f <= 1.0 for f, _ in heard)
        assert [f for f, _ in heard] == sorted(f for f, _ in heard)  # never goes back
        g = tiny.decoder.config
        reenactor.set_identity(np.zeros((g.n_latent, g.style_dim), np.float32))
    cold = [m for _, m in runs["cold"]]
    assert cold[0] == "folding the mapping (first use of this pack)"
    assert cold[1].startswith("building E_m (onnx, first use of this pack: ~") and cold[1].endswith(" s)")
    assert cold[2].startswith("building G (onnx, first use of this pack: ~") and cold[2].endswith(" s)")
    assert [m for _, m in runs["warm"]] == ["loading the folded mapping from cache", "loading compiled E_m from cache",
                                            "loading compiled G from cache"]


def test_the_apps_loading_task_reports_the_build_stages(tmp_path, monkeypatch):
    """Session.load_model hands its task's progress to the factory: the Loading dialog's messages
    (TaskProgress events) name each stage of building a pack's reenactor."""
    pytest.importorskip("onnxruntime")
    from engine.factory import StyleGANSetup, create_reenactor
    from engine.session import Session, TaskProgress
    from engine.tasks import EventQueue
    from tests.support import tiny_pack

    monkeypatch.setenv("MIMIC_CACHE_DIR", str(tmp_path / "cache"))
    pack, _ = tiny_pack(tmp_path)
    queue, heard = EventQueue(), []
    session = Session(lambda path, progress: create_reenactor(StyleGANSetup(path, "onnx", "cpu", "fp32"),
                                                              progress=progress), queue.post)
    session.subscribe(lambda e: heard.append(e.message) if isinstance(e, TaskProgress) else None)
    try:
        session.load_model(pack)
        assert queue.pump(lambda: session.state.model_pack == pack, 120.0)
    finally:
        session.close()
    assert heard[:3] == ["loading tiny.safetensors…", "reading tiny.safetensors", "folding the mapping (first use of this pack)"]
    assert any(m.startswith("building E_m (onnx, first use of this pack: ~") for m in heard)
    assert any(m.startswith("building G (onnx, first use of this pack: ~") for m in heard)
