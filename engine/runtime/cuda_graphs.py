"""CUDA graphs: a steady per-frame computation captured once and replayed.

At batch 1 a StyleGAN2 frame is ~100 small kernels, and the GPU waits for the CPU to launch each
one; a CUDA graph launches them all with one call. `CapturedGraph` wraps a callable of fixed-shape
tensors (a compiled E_m, the folded mapping → G, or the whole frame):

- the first `warmup` calls of an input signature (shapes, dtypes, devices) run the callable plainly
  (on CUDA on a side stream, as capture requires: lazy initialisation, autotuning and allocator
  growth happen there, not inside the capture);
- the next call copies its inputs into static buffers and captures one run into a graph, whose
  output tensor is static too;
- every later call copies its inputs into the static buffers, replays the graph and returns a copy
  of the static output (so a result handed out is never overwritten by the next frame);
- a call with another signature throws the graph away and starts again (warm-up, capture).

The graph type is the seam: `torch.cuda.CUDAGraph` by default; the logic only calls its
`capture_begin()`, `capture_end()` and `replay()`, so tests drive it on the CPU with a stand-in.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Callable, Iterator

import torch

log = logging.getLogger(__name__)

Signature = tuple[tuple[tuple[int, ...], torch.dtype, str], ...]


def default_graph_type() -> type:
    """The graph class CapturedGraph uses unless told otherwise (the seam tests replace)."""
    return torch.cuda.CUDAGraph


def wanted(runtime: str, device: str, requested: bool = True) -> bool:
    """CUDA graphs are the default for the `compile` runtime on CUDA; `requested=False`
    (--no-cuda-graphs) turns them off."""
    return requested and device == "cuda" and runtime == "compile"


class CapturedGraph:
    """`fn(*tensors) -> tensor` captured after `warmup` plain calls per input signature, then replayed."""

    def __init__(self, fn: Callable[..., torch.Tensor], warmup: int = 2, graph_type: type | None = None,
                 name: str = "graph") -> None:
        self.fn = fn
        self.warmup = warmup
        self.graph_type = graph_type  # None: torch.cuda.CUDAGraph (resolved at capture)
        self.name = name
        self.captures = 0  # how many times a graph was captured (a shape change captures again)
        self._signature: Signature | None = None
        self._calls = 0  # calls with the current signature
        self._graph = None
        self._static_inputs: list[torch.Tensor] = []
        self._static_output: torch.Tensor | None = None

    @property
    def captured(self) -> bool:
        return self._graph is not None

    def reset(self) -> None:
        """Drop the graph and its buffers (the next calls warm up and capture again)."""
        self._signature, self._calls, self._graph = None, 0, None
        self._static_inputs, self._static_output = [], None

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        signature = tuple((tuple(t.shape), t.dtype, str(t.device)) for t in inputs)
        if signature != self._signature:
            if self._signature is not None:
                log.info("%s: input shapes changed %s → %s; capturing a new CUDA graph", self.name,
                         [s[0] for s in self._signature], [s[0] for s in signature])
            self.reset()
            self._signature = signature
        self._calls += 1
        if self._graph is None and self._calls <= self.warmup:
            with self._side_stream(inputs):
                return self.fn(*inputs)
        if self._graph is None:
            self._capture(inputs)
        for static, t in zip(self._static_inputs, inputs):
            static.copy_(t)
        self._graph.replay()
        return self._static_output.clone()

    def _capture(self, inputs: tuple[torch.Tensor, ...]) -> None:
        graph_type = self.graph_type or default_graph_type()
        self._static_inputs = [t.detach().clone() for t in inputs]
        graph = graph_type()
        with self._side_stream(inputs):
            graph.capture_begin()
            try:
                out = self.fn(*self._static_inputs)
            finally:
                graph.capture_end()
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"{self.name}: a captured graph must return one tensor, got {type(out).__name__}")
        self._graph, self._static_output = graph, out
        self.captures += 1
        log.info("%s: captured a CUDA graph for inputs %s", self.name, [tuple(t.shape) for t in inputs])

    @staticmethod
    @contextlib.contextmanager
    def _side_stream(inputs: tuple[torch.Tensor, ...]) -> Iterator[None]:
        """CUDA: a side stream that waits for the current one first (capture cannot use the default
        stream), and that the current one waits for afterwards; elsewhere nothing."""
        if not any(t.is_cuda for t in inputs):
            yield
            return
        current = torch.cuda.current_stream()
        stream = torch.cuda.Stream()
        stream.wait_stream(current)
        try:
            with torch.cuda.stream(stream):
                yield
        finally:
            current.wait_stream(stream)
