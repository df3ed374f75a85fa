"""The networks leave a CPU to the camera, face tracking and window when they run live (engine/runtime/threads.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.runtime.threads import live_thread_count, physical_cores

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("logical", "physical", "expected"), [
    (1, 1, 1),  # nothing to spare: the model still runs
    (2, 2, 1),  # this kind of machine: one CPU for the model, one for the live threads
    (4, 4, 3),
    (16, 8, 8),  # SMT: one thread per core, the spare logical CPUs are the siblings
    (8, 8, 7),
])
def test_live_thread_count_leaves_a_cpu(logical: int, physical: int, expected: int) -> None:
    assert live_thread_count(logical, physical) == expected


def test_physical_cores_counts_smt_siblings_once(tmp_path: Path) -> None:
    for cpu, core in enumerate([0, 1, 0, 1]):  # two cores, two threads each
        topology = tmp_path / f"cpu{cpu}" / "topology"
        topology.mkdir(parents=True)
        (topology / "physical_package_id").write_text("0\n")
        (topology / "core_id").write_text(f"{core}\n")
    assert physical_cores([0, 1, 2, 3], tmp_path) == 2
    assert physical_cores([0, 1, 2, 3, 4], tmp_path) == 5  # cpu4 unknown: every CPU counts


PROBE = """
import json, os, sys
import engine.runtime.threads as threads
seen = {}
real = threads.reserve_cpu_for_live
def reserve():
    seen["torch_loaded_before"] = "torch" in sys.modules
    seen["count"] = real()
    raise SystemExit(0)
threads.reserve_cpu_for_live = reserve
from app.cli import main
try:
    main(sys.argv[1:])
finally:
    import torch
    seen["torch_threads"] = torch.get_num_threads()
    print(json.dumps(seen))
"""


@pytest.mark.parametrize("command", [["gui", "--source", "clip.mp4"], ["serve", "--port", "0"]])
def test_live_commands_set_the_count_before_torch_loads(command: list[str], tmp_path: Path) -> None:
    """`python -m app gui` and `serve` set OpenMP's thread count while torch is not yet loaded, so every
    thread the model runs on (the live loop's, the scheduler's) uses it; a user's OMP_NUM_THREADS stands."""
    (tmp_path / "clip.mp4").write_bytes(b"")
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-c", PROBE, *command], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    cpus = len(os.sched_getaffinity(0))
    assert seen["torch_loaded_before"] is False
    assert seen["count"] == seen["torch_threads"] == live_thread_count(cpus, physical_cores(sorted(os.sched_getaffinity(0))))
    out = subprocess.run([sys.executable, "-c", PROBE, *command], cwd=tmp_path, capture_output=True, text=True,
                         env={**env, "OMP_NUM_THREADS": str(cpus)}, timeout=120)  # every CPU, as a user may ask
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["count"] is None and seen["torch_threads"] == cpus
