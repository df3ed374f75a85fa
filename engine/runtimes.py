"""Runtimes: how a network graph is executed (eager, torch.compile, ONNX Runtime, Torch-TensorRT).

Each runtime turns an ``nn.Module`` plus example inputs of fixed shape into a callable
``graph(*tensors) -> tensor`` on a chosen device and precision. Selection is explicit
and reported: a GPU that was asked for but is missing is an error, never a silent
fallback to the CPU; ``auto`` says why it picked what it picked.
"""
from __future__ import annotations

import hashlib
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

from engine.errors import RuntimeUnavailableError

log = logging.getLogger(__name__)

RUNTIMES = ("eager", "compile", "onnx", "tensorrt")
Graph = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class RuntimeChoice:
    """What executes the networks, and why."""

    name: str  # one of RUNTIMES
    device: str  # "cpu" or "cuda"
    precision: str  # "fp32", "bf16" (CPU) or "fp16" (CUDA)
    reason: str  # one line: why this was chosen

    def describe(self) -> str:
        where = torch.cuda.get_device_name(0) if self.device == "cuda" else "CPU"
        return f"{self.name} · {where} · {self.precision}"

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
    if name == "auto":
        preference = ("tensorrt", "compile", "eager") if device == "cuda" else ("compile", "onnx", "eager")
        name = next(n for n in preference if status[n] is None)
    elif name not in RUNTIMES:
        raise RuntimeUnavailableError(f"unknown runtime {name!r}; expected one of auto, {', '.join(RUNTIMES)}")
    if status[name] is not None:
        raise RuntimeUnavailableError(f"runtime {name} is unavailable: {status[name]}")
    if name == "tensorrt" and device != "cuda":
        raise RuntimeUnavailableError("runtime tensorrt needs a CUDA GPU; choose another runtime for the CPU")

    if precision == "auto":
        precision = "fp16" if device == "cuda" else "fp32"
    if precision not in ("fp32", "bf16", "fp16"):
        raise RuntimeUnavailableError(f"unknown precision {precision!r}; expected fp32, bf16 or fp16")
    if device == "cpu" and precision == "fp16":
        raise RuntimeUnavailableError("fp16 is for CUDA; on the CPU use fp32 or bf16")
    return RuntimeChoice(name, device, precision, reason=f"{device_reason}; runtime {name}")


def build_graph(module: nn.Module, example_inputs: Sequence[torch.Tensor], choice: RuntimeChoice, cache_key: str = "") -> Graph:
    """A callable running ``module`` on inputs shaped like ``example_inputs`` (float32, any device).

    Outputs are float32 on the chosen device. Shapes are static: other input shapes are not supported.
    """
    module = module.eval().requires_grad_(False)
    if choice.name == "onnx":
        return _onnx_graph(module, tuple(t.float().cpu() for t in example_inputs), choice, cache_key)
    module = module.to(choice.device, choice.dtype)
    examples = tuple(t.to(choice.device, choice.dtype) for t in example_inputs)
    if choice.name == "eager":
        run = module
    elif choice.name == "compile":
        run = _compile(module, choice)
    else:
        run = _tensorrt(module, examples, choice)

    dtype, device = choice.dtype, choice.device

    @torch.inference_mode()
    def graph(*inputs: torch.Tensor) -> torch.Tensor:
        out = run(*(t.to(device, dtype) for t in inputs))
        return out.float()

    graph(*examples)  # warm-up: compile / autotune now, not on the first live frame
    return graph


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _compile(module: nn.Module, choice: RuntimeChoice) -> Callable:
    import torch._inductor.config as inductor_config

    if choice.device == "cpu":
        # Weights are constants: let inductor fold them and pre-pack convolution weights for oneDNN.
        inductor_config.freezing = True
    return torch.compile(module, fullgraph=True, dynamic=False)


def _tensorrt(module: nn.Module, examples: tuple[torch.Tensor, ...], choice: RuntimeChoice) -> Callable:
    import torch_tensorrt  # optional: requirements-gpu.txt

    return torch_tensorrt.compile(
        module,
        ir="dynamo",
        inputs=list(examples),
        enabled_precisions={choice.dtype},
        truncate_double=True,
    )


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


def _onnx_graph(module: nn.Module, examples: tuple[torch.Tensor, ...], choice: RuntimeChoice, cache_key: str) -> Graph:
    import numpy as np
    import onnxruntime as ort

    if choice.precision == "bf16":
        raise RuntimeUnavailableError("the ONNX runtime runs fp32 on the CPU; use --precision fp32")
    shapes = "x".join("-".join(map(str, t.shape)) for t in examples)
    key = hashlib.sha256(f"{cache_key}|{shapes}|{choice.precision}".encode()).hexdigest()[:20]
    path = cache_dir() / "onnx" / f"{key}.onnx"
    if not cache_key or not path.exists():
        with torch.inference_mode():
            export_onnx(module.float().cpu(), examples, path)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=onnx_providers(choice.device))
    names = [i.name for i in session.get_inputs()]

    def graph(*inputs: torch.Tensor) -> torch.Tensor:
        feeds = {n: t.detach().float().cpu().numpy() for n, t in zip(names, inputs)}
        (out,) = session.run(None, feeds)
        return torch.from_numpy(np.asarray(out)).to(choice.device)

    return graph


def cache_dir() -> Path:
    """Where Mimic keeps derived files (ONNX exports, inverted identities): $MIMIC_CACHE_DIR or ~/.cache/mimic."""
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
