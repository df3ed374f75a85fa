"""How many CPU threads the networks get when they run live, beside the camera, face tracking and a window.

Offline (`render`, benchmarks) a network takes every core: nothing else has to keep time. Live, the
capture thread, MediaPipe, the GUI (or the server's codecs) need a few milliseconds of CPU every frame,
on time. When the model's OpenMP team holds every CPU, its workers spin between parallel regions, the
real-time threads preempt one of them, and the others wait at the next barrier for a scheduler slice.
Measured on a 2-CPU AMD EPYC (Zen 5), a tiny pack in the window on a 30 frames/s clip: E_m 1.6 ms
median but 77 ms at p90 and 113 ms at worst, and 23.9 output frames/s; with one CPU left free, no frame
over 26 ms and 30.0 frames/s (app/gui_live_bench.py, docs/app-states.md).

`reserve_cpu_for_live()` runs first in the live commands (the window and `serve`), before torch is
imported: OpenMP reads its thread count once, when it loads, and a thread that did not set its own
count (the live loop's, the server's scheduler) uses that default. Torch-free, like the entry point.
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

log = logging.getLogger(__name__)

SPARE_CPUS = 1  # logical CPUs left to the capture, face-tracking and GUI threads while the model runs live


def available_cpus() -> list[int]:
    """The logical CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def physical_cores(cpus: list[int], sysfs: Path = Path("/sys/devices/system/cpu")) -> int:
    """How many distinct cores `cpus` lie on (SMT siblings count once); len(cpus) where unknown."""
    cores = set()
    for cpu in cpus:
        topology = sysfs / f"cpu{cpu}" / "topology"
        try:
            cores.add(((topology / "physical_package_id").read_text().strip(),
                       (topology / "core_id").read_text().strip()))
        except OSError:
            return len(cpus)
    return len(cores) or len(cpus)


def live_thread_count(logical: int, physical: int) -> int:
    """Threads for a network running live: one per core, but at least SPARE_CPUS logical CPUs left over."""
    return max(1, min(physical, logical - SPARE_CPUS))


def reserve_cpu_for_live() -> int | None:
    """Make the networks of this process leave a CPU to the live threads; the thread count set, or None
    where the user's OMP_NUM_THREADS stands. Call before torch is imported (see the module docstring)."""
    if os.environ.get("OMP_NUM_THREADS"):
        log.debug("OMP_NUM_THREADS=%s set by the user: kept", os.environ["OMP_NUM_THREADS"])
        return None
    if "torch" in sys.modules:  # an embedding process (tests, a notebook): OpenMP has read its count already
        log.debug("torch already loaded: its thread count is left as it is")
        return None
    cpus = available_cpus()
    count = live_thread_count(len(cpus), physical_cores(cpus))
    os.environ["OMP_NUM_THREADS"] = str(count)
    log.debug("networks run live on %d thread(s) of %d CPU(s)", count, len(cpus))
    return count
