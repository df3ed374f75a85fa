"""Runtimes: how a network graph is executed (eager, torch.compile, ONNX Runtime, Torch-TensorRT).

Each runtime turns an ``nn.Module`` plus example inputs of fixed shape into a callable
``graph(*tensors) -> tensor`` on a chosen device and precision. Selection is explicit
and reported: a GPU that was asked for but is missing is an error, never a silent
fallback to the CPU; ``auto`` says why it picked what it picked.
"""
from __future__ import annotations

import copy
import dataclasses
import importlib.util
import logging
import os
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from engine.runtime.aoti_nogil import gil_free_runner
from engine.runtime.cpu_precision import auto_cpu_precision, native_bf16
from engine.errors import RuntimeUnavailableError
from engine.runtime.graph_cache import GraphKey, cached_artifact, remembered_build_seconds
from engine.runtime.memory import keep_freed_memory, release_freed_memory
from engine.reenactor import ProgressFn
from models.precision import to_precision

log = logging.getLogger(__name__)

RUNTIMES = ("eager", "compile", "onnx", "tensorrt")
Graph = Callable[..., torch.Tensor]
Announce = Callable[[bool], None]  # told before a cached graph is loaded (False) or built (True)
# A first build's estimate where none of its kind was built here before: seconds per module of the graph.
# Rough (from `compile` builds on 2 busy cores of an AMD EPYC Zen 5: the paper's E_m and G come out within
# ~3x); once a graph of the same kind (architecture, shapes, runtime, precision) was built here, its
# measured time is used instead.
BUILD_SECONDS_PER_MODULE = 0.25
CACHE_FOLDERS = {"compile": "compiled", "onnx": "onnx", "tensorrt": "tensorrt"}


@dataclass(frozen=True)
class RuntimeChoice:
    """What executes the networks, and why."""

    name: str  # one of RUNTIMES
    device: str  # "cpu" or "cuda"
    precision: str  # "fp32", "bf16" (CPU) or "fp16" (CUDA)
    reason: str  # one line: why this was chosen
    precision_note: str = ""  # how bf16 runs on the CPU: "native AMX", "native AVX512-BF16" or "emulated"
    # `auto`'s timing of a pack's own graphs (engine.runtime.auto_choice):
    timed: bool = False  # the runtime was asked for as `auto`: the pack's graphs decide between candidates
    precision_auto: bool = False  # the precision was asked for as `auto` (else every candidate keeps it;
    #                               the fp16 gate may still change an `auto` fp16)
    measured: str = ""  # what the timing found: "3.1x eager fp32 on this pack"

    def describe(self) -> str:
        where = torch.cuda.get_device_name(0) if self.device == "cuda" else "CPU"
        note = f" ({self.precision_note})" if self.precision_note else ""
        measured = f" — {self.measured}" if self.measured else ""
        return f"{self.name} · {where} · {self.precision}{note}{measured}"

    @property
    def dtype(self) -> torch.dtype:
        return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[self.precision]


def runtime_status() -> dict[str, str | None]:
    """For each runtime: None when usable here, else the reason it is not."""
    status: dict[str, str | None] = {"eager": None, "compile": _compile_toolchain_problem()}
    status["onnx"] = None if _has("onnxruntime") and _has("onnx") else "onnxruntime/onnx not installed (pip install onnx onnxruntime)"
    if not torch.cuda.is_available():
        status["tensorrt"] = "no CUDA GPU visible to torch (install requirements-gpu.txt on a machine with an NVIDIA GPU)"
    elif not _has("torch_tensorrt"):
        status["tensorrt"] = "torch-tensorrt is not installed (pip install -r requirements-gpu.txt)"
    else:
        status["tensorrt"] = None
    return status


def _compile_toolchain_problem() -> str | None:
    """torch.compile (inductor) compiles C++ at run time: None when a compiler and torch's headers exist."""
    if not (Path(torch.__file__).parent / "include" / "torch" / "csrc" / "inductor" / "cpp_prefix.h").is_file():
        where = "this standalone build" if getattr(sys, "frozen", False) else "this torch installation"
        return f"{where} lacks torch's C++ headers that torch.compile needs; use --runtime onnx or eager"
    compilers = [os.environ.get("CXX", "")] + (["cl"] if sys.platform == "win32" else ["g++", "c++", "clang++"])
    if not any(c and shutil.which(c) for c in compilers):
        return "no C++ compiler found (torch.compile needs one: g++/clang++, or MSVC's cl on Windows); use --runtime onnx or eager"
    return None


def select_runtime(name: str = "auto", device: str = "auto", precision: str = "auto") -> RuntimeChoice:
    """Resolve the user's request into a concrete runtime; raises RuntimeUnavailableError if it cannot run here."""
    cuda = torch.cuda.is_available()
    if device == "auto":
        device = "cuda" if cuda else "cpu"
        device_reason = f"CUDA GPU found: {torch.cuda.get_device_name(0)}" if cuda else "no CUDA GPU visible to torch"
    elif device == "cuda" and not cuda:
        raise RuntimeUnavailableError(
            "a CUDA GPU was requested but torch sees none (CPU-only torch build, or no NVIDIA driver); "
            "install requirements-gpu.txt or choose --device cpu"
        )
    elif device not in ("cpu", "cuda"):
        raise RuntimeUnavailableError(f"unknown device {device!r}; expected auto, cpu or cuda")
    else:
        device_reason = f"device {device} requested"

    status = runtime_status()
    timed, precision_auto = name == "auto", precision == "auto"  # engine.runtime.auto_choice times the candidates
    if name == "auto":
        preference = ("tensorrt", "compile", "eager") if device == "cuda" else ("compile", "onnx", "eager")
        name = next(n for n in preference if status[n] is None)
    elif name not in RUNTIMES:
        raise RuntimeUnavailableError(f"unknown runtime {name!r}; expected one of auto, {', '.join(RUNTIMES)}")
    if status[name] is not None:
        raise RuntimeUnavailableError(f"runtime {name} is unavailable: {status[name]}")
    if name == "tensorrt" and device != "cuda":
        raise RuntimeUnavailableError("runtime tensorrt needs a CUDA GPU; choose another runtime for the CPU")

    precision, precision_reason = _resolve_precision(precision, device, name)
    note = ""
    if device == "cpu" and precision == "bf16":
        native = native_bf16()
        note = f"native {native}" if native else "emulated"
    return RuntimeChoice(name, device, precision, reason=f"{device_reason}; runtime {name}{precision_reason}",
                         precision_note=note, timed=timed, precision_auto=precision_auto)


def _resolve_precision(precision: str, device: str, runtime: str) -> tuple[str, str]:
    """(precision, "; why" for auto or ""); `auto` on the CPU is bf16 only where engine.runtime.cpu_precision says so."""
    if precision == "auto":
        if device == "cuda":
            return "fp16", "; fp16 where the pack passes its fp16 probe (gate_fp16)"
        if runtime == "onnx":
            return "fp32", "; fp32 (the ONNX runtime runs fp32 on the CPU)"
        chosen, why, _ = auto_cpu_precision(cache_dir())
        return chosen, f"; {why}"
    if precision not in ("fp32", "bf16", "fp16"):
        raise RuntimeUnavailableError(f"unknown precision {precision!r}; expected fp32, bf16 or fp16")
    if device == "cpu" and precision == "fp16":
        raise RuntimeUnavailableError("fp16 is for CUDA; on the CPU use fp32 or bf16")
    return precision, ""


def build_graph(module: nn.Module, example_inputs: Sequence[torch.Tensor], choice: RuntimeChoice, cache_key: str = "",
                progress: ProgressFn | None = None) -> Graph:
    """A callable running ``module`` on inputs shaped like ``example_inputs`` (any dtype, layout or device).

    Outputs are float32 on the chosen device. Shapes are static: other input shapes are not supported.
    Every input is first copied into one canonical tensor (contiguous, the runtime's dtype and device,
    made under inference mode), so nothing is compiled after the build for real frames however they
    were made. ``compile``, ``onnx`` and ``tensorrt`` keep what they build under ``cache_dir()``
    (engine.runtime.graph_cache), keyed by the weights, the graph, the shapes, device, precision and torch
    version: only the first start with given weights pays for it. ``cache_key`` names the graph
    in the log and the cache ("<weights id>:G"). ``progress`` (fraction 0, message) hears whether the
    graph is loaded from the cache or built, with the build's estimated time. ``module`` itself is never
    converted in place. The process's allocator is set to keep freed large buffers (engine.runtime.memory;
    the entry points do it first, before any thread starts).
    """
    keep_freed_memory()
    module = module.eval().requires_grad_(False)
    examples = tuple(t.detach().float().cpu().contiguous() for t in example_inputs)
    label = cache_key or type(module).__name__
    if choice.name == "eager":
        run: Callable = _converted(module, choice)
    else:
        key = GraphKey.of(label, module, examples, choice.name, choice.device, choice.precision)
        builder = {"compile": _compiled_package, "onnx": _onnx_session, "tensorrt": _tensorrt_program}[choice.name]
        run = builder(module, examples, choice, key, _announcer(progress, module, key))
    release_freed_memory()  # what the export, build or load freed: not kept for the frames
    return _canonical_inputs(run, choice)  # the cached runtimes' load already ran it once (the warm-up)


def _announcer(progress: ProgressFn | None, module: nn.Module, key: GraphKey) -> Announce | None:
    """The progress messages of a cached graph: "loading compiled G from cache" or "building G (compile,
    first use of this pack: ~N s)", N the last build of its kind here, else a per-module estimate."""
    if progress is None:
        return None

    def announce(building: bool) -> None:
        if not building:
            progress(0.0, f"loading compiled {key.graph} from cache")
            return
        seconds = remembered_build_seconds(cache_dir() / CACHE_FOLDERS[key.runtime], key.kind)
        if seconds is None:
            seconds = BUILD_SECONDS_PER_MODULE * sum(1 for _ in module.modules())
        progress(0.0, f"building {key.graph} ({key.runtime}, first use of this pack: ~{seconds:.0f} s)")

    return announce


def _canonical_inputs(run: Callable, choice: RuntimeChoice) -> Graph:
    """Wrap `run` so it always sees fresh contiguous inference tensors of one dtype and device."""
    dtype = torch.float32 if choice.name == "onnx" else choice.dtype
    device = "cpu" if choice.name == "onnx" else choice.device

    @torch.inference_mode()
    def graph(*inputs: torch.Tensor) -> torch.Tensor:
        canonical = [torch.empty(t.shape, dtype=dtype, device=device).copy_(t) for t in inputs]
        return run(*canonical).to(choice.device, torch.float32)

    return graph


def _converted(module: nn.Module, choice: RuntimeChoice) -> nn.Module:
    """`module` on the chosen device and dtype: itself when it already is, else a converted copy (the
    caller's module may be shared, e.g. G with the identity inverter, and must stay float32)."""
    tensors = list(module.parameters()) + list(module.buffers())
    if all(t.dtype == choice.dtype and t.device.type == choice.device for t in tensors if t.is_floating_point()):
        return module
    return to_precision(copy.deepcopy(module).to(choice.device), choice.dtype)  # fp32 islands kept (models.precision)


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _on_device(examples: tuple[torch.Tensor, ...], choice: RuntimeChoice) -> tuple[torch.Tensor, ...]:
    return tuple(t.to(choice.device, choice.dtype).contiguous() for t in examples)


def _compiled_package(module: nn.Module, examples: tuple[torch.Tensor, ...], choice: RuntimeChoice,
                      key: GraphKey, announce: Announce | None) -> Callable:
    """torch.compile's ahead-of-time path (AOTInductor): the graph exported and compiled into a `.pt2`
    package (a shared library plus its frozen weights), loaded on later starts in about a second.

    Inductor's own on-disk caches do not serve here: with weight freezing (which lets oneDNN pre-pack the
    convolution weights on the CPU) both its FX-graph and AOT-autograd caches are bypassed, so a plain
    torch.compile recompiles on every start (measured; see docs/runtimes.md, "Start-up and bf16").
    """
    def build(path: Path) -> None:
        configs = {"freezing": True} if choice.device == "cpu" else {}
        with torch.no_grad():
            exported = torch.export.export(_converted(module, choice), _on_device(examples, choice), strict=True)
            torch._inductor.aoti_compile_and_package(exported, package_path=str(path), inductor_configs=configs)

    def load(path: Path) -> Callable:
        # On the CPU through the package's C interface, which releases the GIL while it runs: torch's runner
        # holds it, and the camera's and the GUI's threads would stop for every frame (engine.runtime.aoti_nogil)
        runner = (gil_free_runner(path) if choice.device == "cpu" else None) or \
            torch._inductor.aoti_load_package(str(path))
        _check_runs(runner, _on_device(examples, choice))
        return runner

    import torch._inductor  # noqa: F401  (aoti_* live there)

    return cached_artifact(cache_dir() / "compiled" / f"{key.name}.pt2", build, load, f"compiled graph {key.title}",
                           announce, key.kind)


def _check_runs(runner: Callable, examples: tuple[torch.Tensor, ...]) -> None:
    """One trial run of a loaded entry, which is also the warm-up (first-call allocations): a package
    from another build fails here, not on a live frame."""
    with torch.inference_mode():
        out = runner(*examples)
    if not isinstance(out, torch.Tensor) or out.ndim == 0:
        raise ValueError(f"unexpected output {type(out).__name__}")


def _tensorrt_program(module: nn.Module, examples: tuple[torch.Tensor, ...], choice: RuntimeChoice,
                      key: GraphKey, announce: Announce | None) -> Callable:
    """Torch-TensorRT (dynamo path); the compiled program is saved as an ExportedProgram with its
    serialized TensorRT engines and loaded on later starts. Not verified here (no CUDA machine)."""
    import torch_tensorrt  # optional: requirements-gpu.txt

    def build(path: Path) -> None:
        inputs = list(_on_device(examples, choice))
        program = torch_tensorrt.compile(_converted(module, choice), ir="dynamo", inputs=inputs,
                                         enabled_precisions={choice.dtype}, truncate_double=True)
        torch_tensorrt.save(program, str(path), output_format="exported_program", inputs=inputs)

    def load(path: Path) -> Callable:
        runner = torch.export.load(str(path)).module()
        _check_runs(runner, _on_device(examples, choice))
        return runner

    return cached_artifact(cache_dir() / "tensorrt" / f"{key.name}.ep", build, load, f"TensorRT program {key.title}",
                           announce, key.kind)


def onnx_providers(device: str) -> list[str]:
    """ONNX Runtime execution providers for a device, best first; raises if the GPU ones are missing."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    gpu = [p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider") if p in available]
    if not gpu:
        raise RuntimeUnavailableError(
            "ONNX Runtime has no CUDA/TensorRT execution provider (install onnxruntime-gpu from requirements-gpu.txt)"
        )
    return gpu


def export_onnx(module: nn.Module, examples: tuple[torch.Tensor, ...], path: Path) -> Path:
    """Export with static shapes (TensorRT-ready: no dynamic axes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    names = [f"input_{i}" for i in range(len(examples))]
    with warnings.catch_warnings():
        # The TorchScript-based exporter is deprecated but needs no onnxscript and handles these graphs.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(module, examples, str(tmp), input_names=names, output_names=["output"],
                          opset_version=17, dynamo=False)
    os.replace(tmp, path)
    return path


def _onnx_session(module: nn.Module, examples: tuple[torch.Tensor, ...], choice: RuntimeChoice,
                  key: GraphKey, announce: Announce | None) -> Callable:
    """ONNX Runtime: the export, optimised once by ORT (all levels, this machine) and saved as the
    optimised model, which later starts load with no optimisation pass."""
    import numpy as np
    import onnxruntime as ort

    if choice.precision == "bf16":
        raise RuntimeUnavailableError("the ONNX runtime runs fp32 on the CPU; use --precision fp32")
    providers = onnx_providers(choice.device)

    def build(path: Path) -> None:
        with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
            exported = export_onnx(module, examples, Path(tmp) / "graph.onnx")
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.optimized_model_filepath = str(path)
            ort.InferenceSession(str(exported), options, providers=providers)

    def load(path: Path) -> Callable:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        session = ort.InferenceSession(str(path), options, providers=providers)
        names = [i.name for i in session.get_inputs()]

        def run(*inputs: torch.Tensor) -> torch.Tensor:
            (out,) = session.run(None, {n: t.numpy() for n, t in zip(names, inputs)})
            return torch.from_numpy(np.asarray(out))

        _check_runs(run, examples)
        return run

    return cached_artifact(cache_dir() / "onnx" / f"{key.name}.onnx", build, load, f"ONNX graph {key.title}",
                           announce, key.kind)


def cache_dir() -> Path:
    """Where Mimic keeps derived files (compiled graphs, ONNX models, inverted identities): $MIMIC_CACHE_DIR or ~/.cache/mimic."""
    root = os.environ.get("MIMIC_CACHE_DIR")
    if root:
        return Path(root)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    path = Path(base) / "mimic"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        path = Path(tempfile.gettempdir()) / "mimic-cache"
    return path


# -- The fp16 gate (issue 23) ------------------------------------------------------------------------------
# Separate from the choice above: fp16 is only known safe once the loaded weights were probed
# (engine.runtime.fp16_probe); the reenactor calls this with its networks before building any graph.

def gate_fp16(choice: RuntimeChoice, generator: nn.Module, encoder: nn.Module | None = None,
              encoder_size: int = 256) -> RuntimeChoice:
    """`choice` itself unless it is fp16; then the pack's fp16 probe (cached) decides. An `auto` fp16 that
    fails falls back to bf16 where the device has it, else fp32; an fp16 the user asked for is kept with
    a warning. The runtime line (describe) says which and why."""
    if choice.precision != "fp16":
        return choice
    from engine.runtime.fp16_probe import cached_verdict

    verdict = cached_verdict(generator, encoder, choice.device, cache_dir() / CACHE_FOLDERS["compile"], encoder_size)
    return fp16_decision(choice, verdict.passed, verdict.reason)


def fp16_decision(choice: RuntimeChoice, passed: bool, why: str) -> RuntimeChoice:
    """The gate's rule, apart from running the probe (see gate_fp16)."""
    if passed:
        return dataclasses.replace(choice, precision_note=why, reason=f"{choice.reason}; fp16 {why}")
    if not choice.precision_auto:
        log.warning("fp16 was requested, but this pack's fp16 probe failed (%s): expect wrong frames", why)
        return dataclasses.replace(choice, precision_note=f"probe failed: {why}",
                                   reason=f"{choice.reason}; fp16 as requested, although {why}")
    bf16 = choice.device == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    fallback = "bf16" if bf16 else "fp32"
    note = f"fp16 refused: {why}"
    log.warning("this pack fails its fp16 probe (%s): running %s instead", why, fallback)
    return dataclasses.replace(choice, precision=fallback, precision_note=note,
                               reason=f"{choice.reason}; {fallback}, since {note}")
