"""The pickle budget counts what NumPy/torch constructors called by a pickle would allocate (shape × itemsize from
the REDUCE/NEWOBJ arguments) and refuses an over-budget one before anything is built; ordinary pickles of arrays
still load. (The same files through `generate --latent` under a 2 GiB limit: tests/test_hostile_files.py.)"""
from __future__ import annotations

import io
import pickle

import numpy as np
import pytest

from models.checkpoints.errors import CheckpointError
from models.checkpoints.latents import read_latent
from models.checkpoints.pickle_budget import PickleBudget, check_budget
from models.checkpoints.safe_pickle import DATA_ALLOWLIST, safe_load
from tests.hostile_corpus import _Call, allocating_pickles

ALLOCATING = allocating_pickles()


@pytest.mark.parametrize("name", list(ALLOCATING))
def test_an_allocating_call_is_refused_before_it_runs(name: str) -> None:
    data = ALLOCATING[name]
    assert len(data) < 2000
    with pytest.raises(CheckpointError, match=r"x\.pkl is refused: its pickle would allocate .*; at most 64\.0 MiB"):
        check_budget(data, 0, "x.pkl")
    with pytest.raises(CheckpointError, match="would allocate"):  # the loader's own path: the scan runs first
        safe_load(io.BytesIO(data), "x.pkl", DATA_ALLOWLIST)


def test_a_latent_file_that_allocates_is_one_line(tmp_path) -> None:
    path = tmp_path / "w.pkl"
    path.write_bytes(ALLOCATING["numpy.ndarray((2**31,), uint8) by REDUCE"])
    with pytest.raises(CheckpointError) as info:
        read_latent(path, 18, 512)
    assert str(info.value).startswith("w.pkl is refused: its pickle would allocate 2.0 GiB (here numpy.ndarray of "
                                      "2,147,483,648 values × 1 bytes)")


@pytest.mark.parametrize("proto", [2, 3, 4, 5])
def test_ordinary_array_pickles_still_load(proto: int) -> None:
    latent = np.random.default_rng(0).standard_normal((18, 512)).astype(np.float32)
    for obj in (latent, {"w": latent}, [latent, np.arange(5)], np.dtype("V16"), np.float64(2.5)):
        data = pickle.dumps(obj, protocol=proto)
        check_budget(data, 0, "ok.pkl")
        loaded = safe_load(io.BytesIO(data), "ok.pkl", DATA_ALLOWLIST)
        if isinstance(obj, np.ndarray):
            assert np.array_equal(loaded, obj)


def test_small_calls_are_charged_within_the_budget() -> None:
    check_budget(pickle.dumps(_Call(np.zeros, (18, 512), "f4"), 2), 0, "small.pkl")
    many = pickle.dumps([_Call(np.empty, 2**20, "u1") for _ in range(40)], 4)  # 40 MiB in all: within 64 MiB
    check_budget(many, 0, "many.pkl")
    with pytest.raises(CheckpointError, match=r"would allocate 9\.0 MiB \(here numpy.empty"):
        check_budget(many, 0, "many.pkl", PickleBudget(max_allocation_bytes=8 << 20))


def test_a_shape_that_cannot_be_measured_is_refused() -> None:
    """np.empty's shape made by a call the scan does not follow (here: a nested np.ones result)."""
    data = pickle.dumps(_Call(np.empty, _Call(len, "abc")), 2)
    with pytest.raises(CheckpointError, match="numpy.empty with a shape or dtype that cannot be measured"):
        check_budget(data, 0, "x.pkl")
