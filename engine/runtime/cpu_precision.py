"""bf16 or fp32 on the CPU: native bf16 support, and a one-time measurement of whether it is faster here.

bf16 only pays where the CPU multiplies bf16 natively (Intel AMX, AVX512-BF16); elsewhere PyTorch
emulates it and fp32 is faster. Even with native support the gain depends on the chip, so
`--precision auto` picks bf16 only when the CPU has it *and* a short probe — G-like 3x3 convolutions
in channels-last layout, fp32 against bf16 — shows it faster. The probe runs once per CPU, torch
version and thread count; its figures are kept in ``cache_dir()/bf16_probe.json``.
"""
from __future__ import annotations

import json
import logging
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

MIN_SPEEDUP = 1.1  # bf16 must beat fp32 by this factor to be chosen (it costs some accuracy)
PROBE_CONVS = ((512, 32), (128, 256))  # (channels, resolution) of 3x3 convolutions like G's low and high levels


def native_bf16() -> str | None:
    """"AMX", "AVX512-BF16" when the CPU computes bf16 natively, else None."""
    flags = _cpuinfo_flags()
    if flags is None:  # not Linux: ask torch's own CPU feature checks
        amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
        avx512_bf16 = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
    else:
        amx, avx512_bf16 = "amx_bf16" in flags, "avx512_bf16" in flags
    return "AMX" if amx else "AVX512-BF16" if avx512_bf16 else None


def _cpuinfo_flags() -> set[str] | None:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return None


@dataclass(frozen=True)
class ProbeResult:
    fp32_ms: float  # median time of the probe convolutions in fp32
    bf16_ms: float  # the same in bf16

    @property
    def speedup(self) -> float:
        return self.fp32_ms / self.bf16_ms


def decide(native: str | None, probe: ProbeResult | None) -> tuple[str, str]:
    """(precision, reason): bf16 only on a native-bf16 CPU where the probe shows it clearly faster."""
    if native is None:
        return "fp32", "this CPU has no native bf16 (no AMX / AVX512-BF16): fp32"
    if probe is None or probe.speedup < MIN_SPEEDUP:
        measured = f" (probe: bf16 {probe.speedup:.2f}x fp32's speed)" if probe else ""
        return "fp32", f"native bf16 ({native}) is not faster here{measured}: fp32"
    return "bf16", f"native bf16 ({native}), {probe.speedup:.2f}x fp32's speed in the probe: bf16"


def measure(repeats: int = 5) -> ProbeResult:
    """Time the probe convolutions (channels-last, as oneDNN's fast path wants) in both precisions.

    The two precisions alternate and the fastest of `repeats` rounds counts, so that other work on a
    shared machine disturbs the comparison as little as possible.
    """
    cases = {dtype: [_conv_case(c, s, dtype) for c, s in PROBE_CONVS] for dtype in (torch.float32, torch.bfloat16)}
    best = {dtype: float("inf") for dtype in cases}
    with torch.inference_mode():
        for _ in range(repeats + 1):  # the first round is a warm-up that also counts if fastest
            for dtype, convs in cases.items():
                t = time.perf_counter()
                for x, w in convs:
                    F.conv2d(x, w, padding=1)
                best[dtype] = min(best[dtype], (time.perf_counter() - t) * 1000)
    return ProbeResult(best[torch.float32], best[torch.bfloat16])


def _conv_case(channels: int, size: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(1, channels, size, size).to(dtype).contiguous(memory_format=torch.channels_last)
    w = torch.randn(channels, channels, 3, 3).to(dtype).contiguous(memory_format=torch.channels_last)
    return x, w


def cached_probe(cache: Path) -> ProbeResult:
    """The probe's figures for this CPU, torch version and thread count; measured once, then read."""
    key = f"{platform.processor() or platform.machine()}|{cpu_model()}|{torch.__version__}|{torch.get_num_threads()}"
    path = cache / "bf16_probe.json"
    try:
        stored = json.loads(path.read_text())
        if stored.get("key") == key:
            return ProbeResult(float(stored["fp32_ms"]), float(stored["bf16_ms"]))
    except (OSError, ValueError, KeyError, TypeError):
        pass  # none yet, or unreadable: measure again
    log.info("measuring bf16 against fp32 on this CPU once (a few seconds)…")
    result = measure()
    try:
        cache.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"key": key, **asdict(result)}))
    except OSError as exc:
        log.warning("could not keep the bf16 probe's result in %s: %s", path, exc)
    return result


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), for cache keys and benchmark reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def auto_cpu_precision(cache: Path) -> tuple[str, str, str | None]:
    """(precision, reason, native kind) for `--precision auto` on the CPU."""
    native = native_bf16()
    precision, reason = decide(native, cached_probe(cache) if native else None)
    return precision, reason, native
