"""benchmarks/judge_reliability.py without dlib: reads with independent errors agree better once averaged, and
frames a read missed do not count."""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks.judge_reliability import agreement, averaged


def _reads(truth: np.ndarray, count: int, noise: float, rng: np.random.Generator) -> list[list[dict | None]]:
    return [[{"eye_l": float(v)} for v in truth + rng.normal(0, noise, len(truth))] for _ in range(count)]


def test_averaged_reads_agree_better_than_one_read_with_another() -> None:
    rng = np.random.default_rng(0)
    truth = np.sin(np.linspace(0, 12, 240))
    half_a, half_b = _reads(truth, 9, 0.7, rng), _reads(truth, 9, 0.7, rng)
    e = agreement(half_a, half_b, "eye_l")
    # noise of 0.7 on a signal of variance 0.5: one read agrees with another at 0.5 / (0.5 + 0.49) ≈ 0.5,
    # the means of nine at 0.5 / (0.5 + 0.49 / 9) ≈ 0.9
    assert e["one_read_mean"] == pytest.approx(0.5, abs=0.08)
    assert e["one_read_lowest"] < e["one_read_mean"]
    assert e["averaged_halves"] == pytest.approx(0.9, abs=0.04)


def test_a_frame_one_read_missed_is_the_mean_of_the_others() -> None:
    reads = [[{"eye_l": 1.0}, None, None], [{"eye_l": 3.0}, {"eye_l": 5.0}, None]]
    out = averaged(reads, "eye_l")
    assert out[0] == 2.0 and out[1] == 5.0 and np.isnan(out[2])
