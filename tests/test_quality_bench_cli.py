"""quality_bench's command line without the judge: a bad count is refused in one line before any work."""
from __future__ import annotations

import pytest

from benchmarks import quality_bench as qb


def test_a_negative_spread_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        qb.main(["--spread", "-1"])
    assert exit_.value.code == 2
    assert "--spread takes a count of re-judgings, 0 or more" in capsys.readouterr().err


def test_the_table_puts_a_perfect_warp_next_to_the_outputs() -> None:
    """The driver judged as its own output (quality_bench.perfect_output) is a row of the table, its re-judged
    spread a row of the spread table, and the self-reenactment's outputs follow the driver beside it."""
    follow = {s: {"r": 0.5, "gain": 1.0} for s in qb.SIGNALS}
    spread = {s: [0.4, 0.6] for s in qb.SIGNALS}
    edges = {"ratio_mean": 1.0, "ratio_worst_frame": 1.0, "worst_frame": 3, "grain_mean": 1.0,
             "grain_worst_frame": 1.0}
    perfect = {s: {"r": 0.9, "gain": 0.8} for s in qb.SIGNALS}
    report = {"cross": {"a.png": {"follow": follow, "identity_mean": 0.2, "identity_max": 0.3, "uncovered_edges": edges,
                                  "judge_spread": spread}},
              "ceiling": {s: 0.8 for s in qb.SIGNALS},
              "perfect": {"follow": perfect, "judge_spread": {s: [0.85, 0.95] for s in qb.SIGNALS}}}
    still = {"expression_error": 0.07, "placed_error": 0.6, "psnr_face_db": 17.0, "identity": 0.3}
    report["self"] = {"warp": {**still, "follow": {s: {"r": 0.7, "gain": 1.1} for s in qb.SIGNALS}}, "still": still,
                      "uncovered_edges": edges}
    lines = qb.table(report).splitlines()
    row = next(line for line in lines if line.startswith("| the driver as its own output (a perfect warp) |"))
    assert row.count("0.90 / 0.80") == len(qb.SIGNALS)
    assert "| the driver as its own output | " + " | ".join(["0.85–0.95"] * len(qb.SIGNALS)) + " |" in lines
    # the self-reenactment's outputs beside the real frames, which are the perfect warp's (the same framing)
    assert "| warp | " + " | ".join(["0.70 / 1.10"] * len(qb.SIGNALS)) + " |" in lines
    assert "| the real frames (a perfect warp) | " + " | ".join(["0.90 / 0.80"] * len(qb.SIGNALS)) + " |" in lines
    del report["perfect"]
    assert not any("perfect" in line or "its own output" in line for line in qb.table(report).splitlines())
