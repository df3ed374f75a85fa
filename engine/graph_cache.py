"""Persistent compiled graphs: built once per (weights, graph, shapes, device, precision, torch), reused on
every later start.

A key is a digest of everything the compiled code depends on: the network's architecture (its module
tree and the source of its classes), its weights (a digest of every parameter and buffer), the input
shapes, device, precision, runtime, torch version and the CPU instruction set torch compiles for. The
entry is one file under ``cache_dir()/compiled``; it is written to a temporary name and renamed, so a
crash never leaves half an entry. An entry that cannot be loaded (stale, truncated, from another build)
is logged, removed and rebuilt — never an error.
"""
from __future__ import annotations

import hashlib
import inspect
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence, TypeVar

import torch
from torch import nn

log = logging.getLogger(__name__)

T = TypeVar("T")


def weights_digest(module: nn.Module) -> str:
    """blake2b of every parameter and buffer (names, dtypes, shapes and bytes)."""
    h = hashlib.blake2b(digest_size=16)
    for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().data if t.numel() else b"")
    return h.hexdigest()


def architecture_digest(module: nn.Module) -> str:
    """The module tree and the source of every class in it: a code change gives a new key."""
    h = hashlib.blake2b(repr(module).encode(), digest_size=16)
    for cls in sorted({type(m) for m in module.modules()}, key=lambda c: f"{c.__module__}.{c.__qualname__}"):
        try:
            h.update(inspect.getsource(cls).encode())
        except (OSError, TypeError):  # no source (a frozen bundle): the repr still identifies it
            h.update(cls.__qualname__.encode())
    return h.hexdigest()


@dataclass(frozen=True)
class GraphKey:
    """What a compiled graph depends on; `digest` names its cache entry."""

    label: str  # human-readable: which weights and which graph ("<pack hash>:G")
    runtime: str
    device: str
    precision: str
    shapes: tuple[tuple[int, ...], ...]
    architecture: str
    weights: str

    @staticmethod
    def of(label: str, module: nn.Module, examples: Sequence[torch.Tensor], runtime: str, device: str,
           precision: str) -> "GraphKey":
        return GraphKey(label, runtime, device, precision, tuple(tuple(t.shape) for t in examples),
                        architecture_digest(module), weights_digest(module))

    @property
    def digest(self) -> str:
        platform = f"{torch.__version__}|{torch.backends.cpu.get_cpu_capability()}"
        if self.device == "cuda":
            platform += f"|{torch.version.cuda}|{torch.cuda.get_device_name(0)}"
        text = "|".join(map(str, (self.runtime, self.device, self.precision, self.shapes, self.architecture,
                                  self.weights, platform)))
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    @property
    def graph(self) -> str:
        """The graph's own name: the label's part after the last ':'."""
        return self.label.rsplit(":", 1)[-1]

    @property
    def title(self) -> str:
        """For the log: "G (weights 7a1299e292c8)"."""
        weights = self.label.rsplit(":", 1)[0] if ":" in self.label else ""
        return f"{self.graph} (weights {weights[:12]})" if weights else self.graph

    @property
    def name(self) -> str:
        """A readable, unique file stem: the graph's name, then the digest."""
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in self.graph)[:32]
        return f"{safe}-{self.runtime}-{self.precision}-{self.digest}"


def cached_artifact(path: Path, build: Callable[[Path], None], load: Callable[[Path], T], what: str) -> T:
    """Load the artifact at `path`; build it there first when missing, or when loading fails (logged).

    `build(tmp)` writes the artifact to `tmp`; it is renamed to `path` only once complete.
    """
    if path.exists():
        t = time.perf_counter()
        try:
            loaded = load(path)
            log.info("%s: loaded from the cache in %.1f s (%s)", what, time.perf_counter() - t, path.name)
            return loaded
        except Exception as exc:  # a stale or corrupt entry is rebuilt, never fatal
            log.warning("%s: cached entry %s is stale or corrupt (%s: %s); rebuilding it",
                        what, path.name, type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
            path.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial{path.suffix}")
    t = time.perf_counter()
    log.info("%s: building (first use with these weights and settings; cached for later starts)…", what)
    try:
        build(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("%s: built in %.1f s, cached as %s", what, time.perf_counter() - t, path.name)
    return load(path)
