"""Runtime selection and execution: explicit choices, no silent GPU→CPU fallback, same numbers everywhere."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from engine.errors import RuntimeUnavailableError
from engine.runtimes import build_graph, runtime_status, select_runtime


class SmallNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.up = nn.ConvTranspose2d(8, 4, 3, stride=2)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.leaky_relu(self.up(self.conv(x)), 0.2) * y.mean()


@pytest.fixture(scope="module")
def net_and_inputs():
    torch.manual_seed(0)
    return SmallNet().eval(), (torch.randn(1, 3, 16, 16), torch.randn(1, 5))


def test_auto_on_a_machine_without_gpu_says_why():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    choice = select_runtime("auto")
    assert choice.device == "cpu" and choice.precision == "fp32"
    assert "no CUDA GPU" in choice.reason
    assert "CPU" in choice.describe()


def test_asking_for_a_missing_gpu_is_an_error_not_a_fallback():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(RuntimeUnavailableError, match="CUDA GPU was requested"):
        select_runtime("eager", device="cuda")
    with pytest.raises(RuntimeUnavailableError, match="tensorrt is unavailable"):
        select_runtime("tensorrt")
    assert runtime_status()["tensorrt"] is not None


def test_without_a_cpp_compiler_auto_skips_compile(monkeypatch):
    """A standalone bundle or a Windows box without MSVC: `auto` must not pick torch.compile there."""
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    import engine.runtimes as runtimes

    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(runtimes.shutil, "which", lambda name: None)
    assert "no C++ compiler" in runtime_status()["compile"]
    with pytest.raises(RuntimeUnavailableError, match="runtime compile is unavailable: no C\\+\\+ compiler"):
        select_runtime("compile")
    expected = "onnx" if runtime_status()["onnx"] is None else "eager"
    assert select_runtime("auto").name == expected


@pytest.mark.parametrize("bad", [("warp-drive", "auto", "auto"), ("eager", "tpu", "auto"), ("eager", "cpu", "fp16")])
def test_bad_requests_are_one_line_errors(bad):
    with pytest.raises(RuntimeUnavailableError) as err:
        select_runtime(*bad)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("runtime,precision,tol", [("eager", "fp32", 0), ("onnx", "fp32", 1e-5),
                                                   ("compile", "fp32", 1e-5), ("eager", "bf16", 5e-2)])
def test_every_cpu_runtime_matches_eager(net_and_inputs, runtime, precision, tol, tmp_path, monkeypatch):
    monkeypatch.setenv("MIMIC_CACHE_DIR", str(tmp_path))
    net, inputs = net_and_inputs
    with torch.no_grad():
        expected = net(*inputs)
    graph = build_graph(copy.deepcopy(net), inputs, select_runtime(runtime, "cpu", precision), cache_key="small")
    out = graph(*inputs)
    assert out.dtype == torch.float32 and out.shape == expected.shape
    assert (out - expected).abs().max().item() <= tol * max(1.0, expected.abs().max().item())
