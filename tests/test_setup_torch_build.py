"""scripts/setup.sh picks the torch build (issue 23, item 5): the CUDA build where `nvidia-smi` reports a
GPU, the CPU build otherwise, MIMIC_TORCH=cpu|cuda overriding; checked with a stand-in `nvidia-smi` on
PATH and MIMIC_SETUP_DRY_RUN=1 (the pip commands printed, nothing downloaded)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _setup(tmp_path: Path, mode: str = "app", smi: str | None = None, torch: str | None = None,
           ) -> subprocess.CompletedProcess:
    """Dry-run setup.sh with PATH = [a folder holding only the stand-in nvidia-smi, if any] + the usual tools."""
    fake = tmp_path / "bin"
    fake.mkdir(parents=True, exist_ok=True)
    if smi is not None:
        (fake / "nvidia-smi").write_text(f"#!/bin/sh\n{smi}\n")
        (fake / "nvidia-smi").chmod(0o755)
    system = [p for p in os.environ["PATH"].split(os.pathsep) if not (Path(p) / "nvidia-smi").exists()]
    env = {"PATH": os.pathsep.join([str(fake), *system]), "HOME": str(tmp_path), "MIMIC_SETUP_DRY_RUN": "1"}
    if torch is not None:
        env["MIMIC_TORCH"] = torch
    return subprocess.run(["bash", str(ROOT / "scripts" / "setup.sh"), mode], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


GPU = 'echo "GPU 0: NVIDIA H200 (UUID: GPU-5c1d7a2e-0000-0000-0000-000000000000)"'
NO_DRIVER = ('echo "NVIDIA-SMI has failed because it couldn\'t communicate with the NVIDIA driver. Make sure that '
             'the latest NVIDIA driver is installed and running."; exit 9')


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_a_gpu_reported_by_nvidia_smi_gets_the_cuda_build(tmp_path):
    done = _setup(tmp_path, "app", GPU)
    assert done.returncode == 0, done.stderr
    assert "torch: CUDA build (requirements-gpu.txt) — nvidia-smi reports GPU 0: NVIDIA H200;" in done.stdout
    assert "pip install -r requirements-gpu.txt" in done.stdout and "-r requirements.txt" not in done.stdout


def test_tests_on_a_gpu_add_only_the_test_extras(tmp_path):
    done = _setup(tmp_path, "test", GPU)
    assert "pip install -r requirements-gpu.txt" in done.stdout
    extras = done.stdout.split("less -r requirements.txt:")[1]
    assert "pytest>=8" in extras and "onnxruntime" not in extras and "torch" not in extras


def test_without_a_gpu_the_cpu_build_and_why(tmp_path):
    done = _setup(tmp_path, "app", NO_DRIVER)
    assert done.returncode == 0, done.stderr
    assert "torch: CPU build (requirements.txt) — nvidia-smi reports no GPU: NVIDIA-SMI has failed" in done.stdout
    assert "pip install -r requirements.txt" in done.stdout
    none = _setup(tmp_path / "none", "app")
    assert "torch: CPU build (requirements.txt) — no nvidia-smi on PATH" in none.stdout


def test_mimic_torch_overrides_both_ways(tmp_path):
    forced_cpu = _setup(tmp_path, "app", GPU, torch="cpu")
    assert "torch: CPU build (requirements.txt) — MIMIC_TORCH=cpu" in forced_cpu.stdout
    forced_cuda = _setup(tmp_path / "x", "app", None, torch="cuda")
    assert "torch: CUDA build (requirements-gpu.txt) — MIMIC_TORCH=cuda" in forced_cuda.stdout
    bad = _setup(tmp_path / "y", "app", None, torch="rocm")
    assert bad.returncode == 2 and bad.stderr.strip() == "error: MIMIC_TORCH must be cpu or cuda, not 'rocm'"


def test_the_gpu_requirements_are_the_app_requirements_with_cuda_builds():
    """requirements-gpu.txt stands in for requirements.txt: every package of it, onnxruntime as -gpu."""
    def names(path: Path) -> set[str]:
        lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
        return {line.split(">")[0].split("=")[0].split("<")[0].strip().lower() for line in lines
                if line and not line.startswith("-")}

    cpu, gpu = names(ROOT / "requirements.txt"), names(ROOT / "requirements-gpu.txt")
    assert cpu - {"onnxruntime"} <= gpu and "onnxruntime-gpu" in gpu
