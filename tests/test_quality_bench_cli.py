"""quality_bench's command line without the judge: a bad count is refused in one line before any work."""
from __future__ import annotations

import pytest

from benchmarks import quality_bench as qb


def test_a_negative_spread_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        qb.main(["--spread", "-1"])
    assert exit_.value.code == 2
    assert "--spread takes a count of re-judgings, 0 or more" in capsys.readouterr().err
