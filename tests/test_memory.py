"""engine.runtime.memory: freed large buffers are reused (no page faults per frame), and a peak can be given back.

Each case runs in a fresh process, since the allocator settings are process-wide (this test process
has them already: conftest applies them, as the app's entry point does).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.runtime import memory

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(memory._glibc() is None, reason="the allocator settings apply to glibc (Linux) only")

# A frame's chain of element-wise ops on a 64 MiB activation (G's size at 1024²), each with a fresh
# output, on a worker thread (as the live loop runs G): the minor page faults of frames 4-8, per page
# of one 64 MiB buffer and frame.
FAULTS = """
import json, resource, sys, threading
import torch
from engine.runtime.memory import keep_freed_memory
if sys.argv[1] == "keep":
    keep_freed_memory()
result = {}
def frames():
    x = torch.ones(1, 32, 1024, 1024, dtype=torch.bfloat16)
    counts = []
    for _ in range(8):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        y = torch.relu(x * 1.5 + 0.5) * 2.0
        del y
        counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    result["faults_per_page"] = sum(counts[3:]) / 5 / ((64 << 20) // resource.getpagesize())
thread = threading.Thread(target=frames)
thread.start()
thread.join()
print(json.dumps(result))
"""

RSS = """
import json, os
import torch
from engine.runtime.memory import keep_freed_memory, release_freed_memory
keep_freed_memory()
def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
base = rss_mib()
x = torch.empty(256 << 20, dtype=torch.uint8)
x.fill_(1)
del x
kept = rss_mib() - base
release_freed_memory()
print(json.dumps({"kept_mib": kept, "after_release_mib": rss_mib() - base}))
"""

# A loop whose frames leave small allocations behind between their large blocks: the heap fragments and
# grows when freed memory is kept, unless the per-frame guard trims it.
FRAGMENTING = """
import json, sys, threading
import torch
from engine.runtime.memory import GrowthGuard, keep_freed_memory, resident_bytes
keep_freed_memory()
guard = GrowthGuard()
pinned = []
def frames():
    base = None
    for r in range(24):
        blocks = [torch.empty(s << 20, dtype=torch.uint8) for s in (64, 33, 64, 6, 128)]
        for b in blocks:
            b.fill_(1)
        pinned.append([torch.empty(10, dtype=torch.uint8) for _ in range(r % 7)])  # outlive the frame
        del blocks
        if sys.argv[1] == "guard":
            guard.check()
        if r == 4:
            base = resident_bytes()
    print(json.dumps({"growth_mib": (resident_bytes() - base) / 2**20, "trims": guard.trims}))
thread = threading.Thread(target=frames)
thread.start()
thread.join()
"""


def _run(script: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", script, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _thp_always() -> bool:
    try:
        return "[always]" in Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return False


def test_a_reused_large_buffer_is_not_faulted_in_again():
    kept = _run(FAULTS, "keep")["faults_per_page"]
    # Usually 0; where the heap's addresses leave a hole too small for the next block, a frame faults one
    # buffer in again (0.6 seen in 1 of 8 runs): still far from the 4 of the default policy.
    assert kept < 1.5, f"{kept:.2f} page faults per page and frame with the memory kept"
    if not _thp_always():  # with THP on for every mapping, glibc's fresh mappings fault per 2 MiB, not per page
        fresh = _run(FAULTS, "default")["faults_per_page"]
        assert fresh > 2, f"glibc's default policy maps each of the 4 outputs afresh every frame ({fresh:.2f})"


def test_release_gives_a_peak_back():
    rss = _run(RSS)
    assert rss["kept_mib"] > 200, rss  # freed, but kept for the next frame
    assert rss["after_release_mib"] < 50, rss


def test_the_guard_bounds_a_fragmenting_heap():
    # Unguarded, this loop grew the heap by 2.2 GB in 4 of 5 standalone runs (by 0.25-0.5 GB in the
    # others, and more often so under pytest: whether it fragments depends on where its blocks land), so
    # the unguarded case is not asserted; guarded, it must stay within the guard's 512 MiB every time.
    for _ in range(2):
        guarded = _run(FRAGMENTING, "guard")
        assert guarded["growth_mib"] < 600, guarded


def test_a_steady_loop_is_never_trimmed(monkeypatch):
    trims: list[int] = []
    monkeypatch.setattr(memory, "_kept", True)
    monkeypatch.setattr(memory, "release_freed_memory", lambda: trims.append(1))
    sizes = iter([900, 950, 1000, 1100, 1000, 1500, 1000, 1000])  # MiB: 1500 is over 512 MiB past the first
    monkeypatch.setattr(memory, "resident_bytes", lambda: next(sizes) << 20)
    guard = memory.GrowthGuard()
    for _ in range(5):
        guard.check()
    assert trims == []
    guard.check()
    assert trims == [1] and guard.settled == 1000 << 20
    guard.check()
    assert trims == [1]


def test_the_entry_point_applies_the_settings_first(monkeypatch):
    from app import cli

    calls: list[str] = []

    def parser():
        calls.append("parser")
        raise SystemExit(0)

    monkeypatch.setattr(cli, "keep_freed_memory", lambda: calls.append("kept"))
    monkeypatch.setattr(cli, "build_parser", parser)
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert calls == ["kept", "parser"]  # before the commands are imported (and any thread started)
