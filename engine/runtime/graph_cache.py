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
import json
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
    def kind(self) -> str:
        """The key without the weights: graphs of one kind take about as long to build."""
        return "|".join(map(str, (self.graph, self.runtime, self.device, self.precision, self.shapes, self.architecture,
                                  torch.__version__)))

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


BUILD_TIMES = "build_times.json"  # per folder: {kind: seconds the last build of that kind took}


def remembered_build_seconds(folder: Path, kind: str) -> float | None:
    """How long the last build of this kind (GraphKey.kind) took here, or None."""
    try:
        value = json.loads((folder / BUILD_TIMES).read_text()).get(kind)
    except (OSError, ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, (int, float)) else None


def _remember_build_seconds(folder: Path, kind: str, seconds: float) -> None:
    path = folder / BUILD_TIMES
    try:
        times = json.loads(path.read_text()) if path.exists() else {}
        times = times if isinstance(times, dict) else {}
        times[kind] = round(seconds, 1)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
        tmp.write_text(json.dumps(times, indent=1))
        os.replace(tmp, path)
    except (OSError, ValueError) as exc:  # only an estimate for the next progress message: never fatal
        log.debug("could not record the build time in %s: %s", path, exc)


def cached_artifact(path: Path, build: Callable[[Path], None], load: Callable[[Path], T], what: str,
                    announce: Callable[[bool], None] | None = None, kind: str = "") -> T:
    """Load the artifact at `path`; build it there first when missing, or when loading fails (logged).

    `build(tmp)` writes the artifact to `tmp`; it is renamed to `path` only once complete.
    `announce(building)` is told before a load (False) or a build (True), for progress messages; with
    a `kind`, the build's duration is remembered (remembered_build_seconds) for the next estimate.
    """
    if path.exists():
        if announce is not None:
            announce(False)
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
    if announce is not None:
        announce(True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial{path.suffix}")
    t = time.perf_counter()
    log.info("%s: building (first use with these weights and settings; cached for later starts)…", what)
    try:
        build(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    seconds = time.perf_counter() - t
    log.info("%s: built in %.1f s, cached as %s", what, seconds, path.name)
    if kind:
        _remember_build_seconds(path.parent, kind, seconds)
    return load(path)
