"""A compiled graph runs without holding Python's GIL: the camera's and the GUI's threads keep running beside
the model (issue 26: with `compile`, the app's camera preview fell to a few frames per second)."""
from __future__ import annotations

import threading
import time

import pytest
import torch
from torch import nn

from engine.runtime.runtimes import build_graph, runtime_status, select_runtime


class Convs(nn.Module):
    """A few milliseconds of 3x3 convolutions per call."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(*(nn.Conv2d(32, 32, 3, padding=1) for _ in range(4)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def wake_ups_beside(run, calls: int = 8) -> int:
    """How often another thread wakes (every ~0.5 ms it asks) while `run` is called `calls` times."""
    worker = threading.Thread(target=lambda: [run() for _ in range(calls)])
    woke = 0
    worker.start()
    while worker.is_alive():
        time.sleep(0.0005)
        woke += 1
    worker.join()
    return woke


def test_a_compiled_graph_lets_other_threads_run(tmp_path, monkeypatch) -> None:
    if runtime_status()["compile"] is not None:
        pytest.skip(runtime_status()["compile"])
    monkeypatch.setenv("MIMIC_CACHE_DIR", str(tmp_path))
    torch.manual_seed(0)
    x = torch.randn(1, 32, 96, 96)
    graph = build_graph(Convs(), (x,), select_runtime("compile", "cpu", "fp32"), cache_key="threads:convs")
    (package,) = (tmp_path / "compiled").glob("*.pt2")
    torch_runner = torch._inductor.aoti_load_package(str(package))  # holds the GIL while it runs
    assert torch.equal(graph(x), torch_runner(x.contiguous()))
    ours = wake_ups_beside(lambda: graph(x))
    held = wake_ups_beside(lambda: torch_runner(x))
    assert ours > 5 * max(held, 1), f"another thread woke {ours} times beside the graph, {held} beside torch's runner"
