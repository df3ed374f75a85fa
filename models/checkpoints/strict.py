"""Strict state-dict loading with one-line errors naming the file and what did not match."""
from __future__ import annotations

import torch
from torch import nn

from models.checkpoints.errors import CheckpointError
from models.checkpoints.safe_pickle import kind

StateDict = dict[str, torch.Tensor]


def check_state(module: nn.Module, state: StateDict, file_name: str, what: str) -> None:
    """Raise CheckpointError unless `state` has exactly `module`'s keys with the same shapes and kinds of
    dtype (floating point where the module has floats, the same integer type elsewhere)."""
    bad_key = next((k for k in state if not isinstance(k, str) or not isinstance(state[k], torch.Tensor)), None)
    if bad_key is not None:
        raise CheckpointError(f"{file_name}: {what} holds {kind(state[bad_key])} under {kind(bad_key)}; "
                              "expected tensors under names")
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {list(state[k].shape)} (expected {list(v.shape)})" for k, v in expected.items()
             if k in state and state[k].shape != v.shape]
    dtypes = [f"{k} as {_dtype(state[k])} (expected {_dtype(v)})" for k, v in expected.items()
              if k in state and not _same_kind(state[k].dtype, v.dtype)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing tensor(s) (e.g. {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensor(s) (e.g. {unexpected[0]})")
    if wrong:
        problems.append(f"{len(wrong)} of the wrong shape (e.g. {wrong[0]})")
    if dtypes:
        problems.append(f"{len(dtypes)} stored as the wrong type (e.g. {dtypes[0]})")
    if problems:
        raise CheckpointError(f"{file_name}: {what} does not match: " + "; ".join(problems))


def _same_kind(stored: torch.dtype, expected: torch.dtype) -> bool:
    if expected.is_floating_point:
        return stored.is_floating_point
    return stored == expected


def _dtype(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


def load_strict(module: nn.Module, state: StateDict, file_name: str, what: str) -> nn.Module:
    """Put `state` into `module` after `check_state`. Fresh, aligned copies are assigned (so the module
    may be built on the meta device: no memory, no random init); floats become float32.

    Copies, because tensors read from files can sit at any alignment and oneDNN's kernels round
    differently on misaligned weights (≈1e-6): aligned copies make outputs bit-identical.
    """
    check_state(module, state, file_name, what)
    state = {k: (v.float() if v.is_floating_point() else v).clone(memory_format=torch.contiguous_format)
             for k, v in state.items()}
    module.load_state_dict(state, strict=True, assign=True)
    return module
