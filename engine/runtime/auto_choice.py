"""`--runtime auto`: the runtime and precision for one pack, chosen by timing that pack's own graphs.

`select_runtime("auto")` can only guess: it prefers a compiled runtime and asks a generic convolution
probe (engine.runtime.cpu_precision) whether bf16 pays. Whether they pay depends on the pack — a small
pack's graphs are dominated by per-call overheads that compilation and bf16 can make worse (measured:
compile bf16 ran a small random pack's E_m 40x slower than eager fp32). So at the first build with a
pack, `build_timed` builds every candidate:

    eager fp32 (the baseline) · eager in the probe's precision · the preferred runtime in the probe's precision

runs each on real-shaped inputs (each candidate in a block of its own after a short pause, the fastest of a
few passes counts: interleaved, an eager pass fought the compiled graph's still-spinning OpenMP threads and
lost by 25x), keeps the fastest and drops the others. The verdict — which candidate, and every candidate's time — is kept beside the
compiled graphs (``cache_dir()/compiled/auto_choices.json``), keyed by the pack's graphs, their shapes,
the device, torch, the CPU and the thread count: later starts build (load) only the winner. The
choice's `measured` says what the timing found, and the runtime line shows it:
``compile · CPU · bf16 — 3.1x eager fp32 on this pack``.

A runtime the user names (`--runtime eager|compile|…`) is obeyed and never timed.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from engine.reenactor import ProgressFn
from engine.runtime.cpu_precision import cpu_model, native_bf16
from engine.runtime.graph_cache import architecture_digest
from engine.runtime.memory import release_freed_memory
from engine.runtime.runtimes import Graph, RuntimeChoice, build_graph, cache_dir

log = logging.getLogger(__name__)

VERDICTS = "auto_choices.json"  # in cache_dir()/compiled: {key: {"runtime", "precision", "ms": {label: ms}}}
ROUNDS = 5  # timing rounds per candidate (the fastest counts)
ROUND_BUDGET_S = 20.0  # stop after this many seconds of timing once every candidate ran MIN_ROUNDS
MIN_ROUNDS = 2
SETTLE_S = 0.5  # pause before each candidate's block: other thread pools' spinning workers go idle


@dataclass(frozen=True)
class GraphSpec:
    """One of a pack's graphs, as `build_graph` takes it."""

    module: nn.Module
    examples: tuple[torch.Tensor, ...]  # real-shaped inputs (their values are replaced by random ones for timing)
    cache_key: str  # "<weights id>:G"
    progress: ProgressFn | None = None


def label(choice: RuntimeChoice) -> str:
    """"compile bf16"."""
    return f"{choice.name} {choice.precision}"


def candidates(preferred: RuntimeChoice) -> list[RuntimeChoice]:
    """What `auto` times: eager fp32 first (the baseline), eager in `preferred`'s precision, then `preferred`.

    With an explicit precision (`preferred.precision_auto` false) every candidate keeps it."""
    precision = "fp32" if preferred.precision_auto else preferred.precision
    baseline = replace(preferred, name="eager", precision=precision, precision_note="")
    out = [baseline]
    same_precision_eager = replace(preferred, name="eager")
    if same_precision_eager.precision != baseline.precision:
        out.append(same_precision_eager)
    if preferred.name != "eager":
        out.append(preferred)
    return out


def build_timed(graphs: Sequence[GraphSpec], preferred: RuntimeChoice,
                report: ProgressFn | None = None) -> tuple[RuntimeChoice, list[Graph]]:
    """The graphs built on the runtime `auto` settles on for them, and that runtime (with `measured`).

    `preferred`: what select_runtime chose; only when it was asked for `auto` (`preferred.timed`) is
    anything timed, else its graphs are built as asked."""
    if not preferred.timed:
        return preferred, [_build(spec, preferred) for spec in graphs]
    options = candidates(preferred)
    if len(options) == 1:
        return preferred, [_build(spec, preferred) for spec in graphs]
    key = verdict_key(graphs, options)
    verdict = _read_verdict(key)
    if verdict is not None:
        chosen = next((c for c in options if label(c) == verdict["choice"]), None)
        if chosen is not None:
            chosen = replace(chosen, measured=describe_measurement(label(chosen), verdict["ms"], label(options[0])),
                             reason=f"{chosen.reason}; timed on this pack earlier: {_figures(verdict['ms'])}")
            log.info("runtime auto: %s (timed on this pack earlier: %s)", label(chosen), _figures(verdict["ms"]))
            return chosen, [_build(spec, chosen) for spec in graphs]
    built: dict[str, list[Graph]] = {}
    for candidate in options:
        try:
            built[label(candidate)] = [_build(spec, candidate) for spec in graphs]
        except Exception as exc:  # a candidate that cannot be built here is left out, never fatal
            if candidate is options[0]:
                raise
            log.warning("runtime auto: %s left out (%s: %s)", label(candidate), type(exc).__name__,
                        str(exc).splitlines()[0] if str(exc) else "")
    if report is not None:
        report(0.9, f"timing {', '.join(built)} on this pack")
    ms = time_candidates(built, graphs)
    best = min(ms, key=ms.get)
    chosen = next(c for c in options if label(c) == best)
    log.info("runtime auto: timed this pack's graphs (%s): %s is fastest", _figures(ms), best)
    _write_verdict(key, best, ms)
    kept = built.pop(best)
    built.clear()
    release_freed_memory()  # the losers' graphs and converted weights
    chosen = replace(chosen, measured=describe_measurement(best, ms, label(options[0])),
                     reason=f"{chosen.reason}; timed on this pack: {_figures(ms)}")
    return chosen, kept


def _build(spec: GraphSpec, choice: RuntimeChoice) -> Graph:
    return build_graph(spec.module, spec.examples, choice, cache_key=spec.cache_key, progress=spec.progress)


def time_candidates(built: dict[str, list[Graph]], graphs: Sequence[GraphSpec]) -> dict[str, float]:
    """Milliseconds per pass over all graphs, for each candidate: the fastest of up to ROUNDS passes.

    Each candidate is timed in a block of its own after a settle pause, never interleaved with another:
    a compiled graph brings its own OpenMP thread pool, whose threads keep spinning for a while after each
    call, and an eager pass run right after one fought those spinning threads for the cores (measured on a
    small pack: eager fp32 timed at 330 ms interleaved, 13 ms when rendering alone)."""
    gen = torch.Generator().manual_seed(0)
    inputs = [tuple((torch.randn(t.shape, generator=gen) * 0.5).clamp(-1, 1) for t in spec.examples)
              for spec in graphs]
    best = {name: float("inf") for name in built}
    budget = ROUND_BUDGET_S / max(len(built), 1)
    for name, runs in built.items():
        time.sleep(SETTLE_S)  # the previous candidate's worker threads go idle
        start = time.perf_counter()
        for round_ in range(ROUNDS + 1):  # round 0 is a warm-up that also counts if fastest
            t = time.perf_counter()
            for run, args in zip(runs, inputs):
                out = run(*args)
                if out.device.type == "cuda":
                    torch.cuda.synchronize()
            best[name] = min(best[name], (time.perf_counter() - t) * 1000.0)
            if round_ + 1 >= MIN_ROUNDS and time.perf_counter() - start > budget:
                break
    return best


def describe_measurement(chosen: str, ms: dict[str, float], baseline: str) -> str:
    """What the runtime line adds: "3.1x eager fp32 on this pack", or for the baseline itself
    "fastest on this pack (compile bf16: 0.05x)"."""
    if chosen != baseline:
        return f"{ms[baseline] / ms[chosen]:.1f}x {baseline} on this pack"
    others = ", ".join(f"{name}: {ms[baseline] / value:.2f}x" for name, value in ms.items() if name != baseline)
    return f"fastest on this pack ({others})"


def _figures(ms: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.1f} ms" for name, value in ms.items())


def verdict_key(graphs: Sequence[GraphSpec], options: Sequence[RuntimeChoice]) -> str:
    """Everything the verdict depends on: the graphs (weights id, code, shapes), the candidates, the
    device, torch, the CPU (model, instruction set, native bf16) and the thread count."""
    parts = [spec.cache_key + "|" + architecture_digest(spec.module) + "|" +
             str([tuple(t.shape) for t in spec.examples]) for spec in graphs]
    parts += [f"{c.name}/{c.device}/{c.precision}" for c in options]
    parts += [torch.__version__, torch.backends.cpu.get_cpu_capability(), cpu_model(), str(native_bf16()),
              str(torch.get_num_threads())]
    if any(c.device == "cuda" for c in options):
        parts += [str(torch.version.cuda), torch.cuda.get_device_name(0)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


def _verdicts_path() -> Path:
    return cache_dir() / "compiled" / VERDICTS


def _read_verdict(key: str) -> dict | None:
    try:
        verdict = json.loads(_verdicts_path().read_text()).get(key)
        if isinstance(verdict, dict) and isinstance(verdict.get("choice"), str) and isinstance(verdict.get("ms"), dict):
            return {"choice": verdict["choice"], "ms": {str(k): float(v) for k, v in verdict["ms"].items()}}
    except (OSError, ValueError, AttributeError, TypeError):
        pass  # none yet, or unreadable: time again
    return None


def _write_verdict(key: str, choice: str, ms: dict[str, float]) -> None:
    path = _verdicts_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            verdicts = json.loads(path.read_text())
            verdicts = verdicts if isinstance(verdicts, dict) else {}
        except (OSError, ValueError):
            verdicts = {}
        verdicts[key] = {"choice": choice, "ms": {k: round(v, 3) for k, v in ms.items()}}
        tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
        tmp.write_text(json.dumps(verdicts, indent=1))
        os.replace(tmp, path)
    except OSError as exc:  # only saves timing the next start: never fatal
        log.warning("could not keep the runtime verdict in %s: %s", path, exc)
