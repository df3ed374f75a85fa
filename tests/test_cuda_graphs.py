"""CUDA graphs' capture/replay logic (issue 23, item 4), on the CPU: only torch.cuda.CUDAGraph is replaced,
by a stand-in with its semantics — capture records every operation on the tensors it touches, replay
reruns them writing into the very tensors of the capture (static addresses) — so a logic that forgot to
refresh its static inputs, handed out the static output, or kept a graph across a shape change fails."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

import engine.runtime.cuda_graphs as cuda_graphs
from engine.runtime.cuda_graphs import CapturedGraph
from tests.checkpoint_writers import one_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("one_thread")


class _Recorder(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: list = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        self.ops.append((func, args, kwargs, out))
        return out


class StandInCUDAGraph:
    """torch.cuda.CUDAGraph's contract on the CPU: capture_begin/capture_end around one run, replay()."""

    instances: list["StandInCUDAGraph"] = []

    def __init__(self) -> None:
        self.replays = 0
        self._recorder: _Recorder | None = None
        StandInCUDAGraph.instances.append(self)

    def capture_begin(self) -> None:
        self._recorder = _Recorder()
        self._recorder.__enter__()

    def capture_end(self) -> None:
        self._recorder.__exit__(None, None, None)

    def replay(self) -> None:
        self.replays += 1
        with torch.inference_mode():
            for func, args, kwargs, out in self._recorder.ops:
                fresh = func(*args, **kwargs)
                for old, new in zip(_tensors(out), _tensors(fresh)):
                    if old is not new:
                        old.copy_(new)


def _tensors(value) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    return []


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.leaky_relu(self.conv(x), 0.2) * scale[:, :, None, None]


def test_warm_up_then_one_capture_then_replays_with_fresh_inputs():
    net = Net().eval()
    graph = CapturedGraph(net, warmup=2, graph_type=StandInCUDAGraph, name="net")
    gen = torch.Generator().manual_seed(1)
    outputs, expected = [], []
    with torch.inference_mode():
        for i in range(6):
            x, s = torch.randn(1, 3, 8, 8, generator=gen), torch.randn(1, 4, generator=gen)
            outputs.append(graph(x, s))
            expected.append(net(x, s))
            assert graph.captured == (i >= 2)  # two plain warm-up calls, captured on the third
    assert graph.captures == 1
    assert graph._graph.replays == 4  # the capture call replays too
    for out, ref in zip(outputs, expected):  # every result its own input's, none overwritten later
        assert torch.allclose(out, ref, atol=1e-6)
    assert len({o.data_ptr() for o in outputs}) == len(outputs)


def test_a_shape_change_captures_again():
    net = Net().eval()
    graph = CapturedGraph(net, warmup=1, graph_type=StandInCUDAGraph)
    gen = torch.Generator().manual_seed(2)
    with torch.inference_mode():
        for batch in (1, 1, 1, 2, 2, 2, 1, 1):
            x, s = torch.randn(batch, 3, 8, 8, generator=gen), torch.randn(batch, 4, generator=gen)
            out = graph(x, s)
            assert out.shape[0] == batch and torch.allclose(out, net(x, s), atol=1e-6)
    assert graph.captures == 3  # batch 1, batch 2, batch 1 again


def test_the_default_graph_type_is_cuda_s_and_the_default_is_compile_on_cuda():
    assert cuda_graphs.default_graph_type() is torch.cuda.CUDAGraph
    assert cuda_graphs.wanted("compile", "cuda")
    assert not cuda_graphs.wanted("compile", "cuda", requested=False)  # --no-cuda-graphs
    assert not cuda_graphs.wanted("eager", "cuda") and not cuda_graphs.wanted("compile", "cpu")


@pytest.fixture
def tiny_reenactor_parts():
    from models.paper import PaperConfig, PaperModel

    torch.manual_seed(0)
    model = PaperModel(PaperConfig.tiny()).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def test_reenactor_frames_are_the_same_with_graphs_captured(tiny_reenactor_parts, monkeypatch, tmp_path):
    """The reenactor's steady frame through CapturedGraph (E_m; folded map → G), graphs forced on with the
    stand-in: the frames equal those without graphs, and the runtime line says so."""
    import copy

    from engine.runtime.runtimes import select_runtime
    from engine.stylegan import wrapper as module
    from engine.stylegan.reenactor import StyleGANOptions, StyleGANReenactor

    monkeypatch.setenv("MIMIC_CACHE_DIR", str(tmp_path))
    model = tiny_reenactor_parts
    g = model.config.generator
    w_id = np.random.RandomState(1).randn(g.n_latent, g.style_dim).astype(np.float32)
    frames = [np.random.RandomState(i).randint(0, 256, (64, 64, 3), dtype=np.uint8) for i in range(5)]
    choice = select_runtime("eager", "cpu", "fp32")

    plain = StyleGANReenactor(copy.deepcopy(model), nn.Module(), "tiny", choice, StyleGANOptions.paper())
    assert not plain.cuda_graphs and "CUDA graphs" not in plain.describe()
    plain.set_identity(w_id)
    expected = [plain.drive(f).image for f in frames]

    monkeypatch.setattr(module, "cuda_graphs_wanted", lambda runtime, device, requested=True: requested)
    monkeypatch.setattr(cuda_graphs, "default_graph_type", lambda: StandInCUDAGraph)
    StandInCUDAGraph.instances.clear()
    captured = StyleGANReenactor(copy.deepcopy(model), nn.Module(), "tiny", choice, StyleGANOptions.paper())
    assert captured.cuda_graphs and captured.describe().endswith("· CUDA graphs")
    captured.set_identity(w_id)
    got = [captured.drive(f).image for f in frames]
    assert len(StandInCUDAGraph.instances) == 2  # E_m, and map → G
    assert all(g.replays >= 2 for g in StandInCUDAGraph.instances)
    for a, b in zip(got, expected):
        assert np.array_equal(a, b)

    off = StyleGANReenactor(copy.deepcopy(model), nn.Module(), "tiny", choice, StyleGANOptions.paper(),
                            cuda_graphs=False)  # --no-cuda-graphs
    assert not off.cuda_graphs


def test_no_cuda_graphs_flag_on_the_commands_that_build_reenactors():
    from app.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["gui", "--no-cuda-graphs"]).no_cuda_graphs
    assert not parser.parse_args(["gui"]).no_cuda_graphs
    args = parser.parse_args(["render", "--driving", "clip.mp4", "--target", "random", "-o", "out.mp4", "--no-cuda-graphs"])
    assert args.no_cuda_graphs
