"""Stored identity latents (W+ codes): `.npy` arrays and pickled NumPy arrays (the official repo's `.pkl`)."""
from __future__ import annotations

import io
import math
import tokenize
from pathlib import Path
from typing import Any

import numpy as np

from models.checkpoints.errors import CheckpointError
from models.checkpoints.safe_pickle import CORRUPT_ERRORS, DATA_ALLOWLIST, describe, load_plain_pickle, safe_load


def read_latent(path: Path, n_latent: int | None = None, style_dim: int | None = None) -> np.ndarray:
    """A W+ latent as float32 [n_latent, style_dim]; accepts [n, D], [1, n, D] and one W [D] / [1, D]
    (repeated over the n layers, which needs `n_latent`). Shapes are checked against the given sizes."""
    path = Path(path)
    array = _read_array(path)
    if not np.issubdtype(array.dtype, np.floating):
        raise CheckpointError(f"{path.name} holds a {array.dtype} array; expected a float latent")
    if array.ndim == 3 and array.shape[0] == 1 or array.ndim == 2 and array.shape[0] == 1 and n_latent != 1:
        array = array[0]
    if array.ndim == 1:
        if n_latent is None:
            raise CheckpointError(f"{path.name} holds one W vector of {array.shape[0]}; expected an n x D W+ latent")
        array = np.repeat(array[None], n_latent, axis=0)
    expected = f"[{n_latent or 'n'}, {style_dim or 'D'}]"
    if array.ndim != 2 or (n_latent is not None and array.shape[0] != n_latent) or \
            (style_dim is not None and array.shape[1] != style_dim):
        raise CheckpointError(f"{path.name} holds a latent of shape {list(array.shape)}; expected {expected}")
    if not np.isfinite(array).all():
        raise CheckpointError(f"{path.name}: the latent contains NaN or infinite values")
    return np.array(array, dtype=np.float32, order="C")  # a writable copy (the file's buffer is read-only)


def _read_array(path: Path) -> np.ndarray:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"latent not found: {path}") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read latent {path}: {exc.strerror or exc}") from None
    if data.startswith(b"\x93NUMPY"):
        return _read_npy(data, path.name)
    obj = load_plain_pickle(io.BytesIO(data), path.name, DATA_ALLOWLIST, protocol_2=data[:1] == b"\x80",
                            what="a latent file (a .npy array or a pickled NumPy array)")
    return _single_array(obj, path.name)


def _read_npy(data: bytes, name: str) -> np.ndarray:
    f = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(f)
        shape, fortran, dtype = np.lib.format._read_array_header(f, version)
        if not dtype.hasobject:
            declared = math.prod(shape) * dtype.itemsize  # checked before numpy allocates it
            if declared != len(data) - f.tell():
                raise CheckpointError(f"{name} is truncated or corrupt (its header declares {math.prod(shape):,} "
                                      f"values of {declared:,} bytes; the file holds {len(data) - f.tell():,})")
            array = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=f.tell())
            return array.reshape(shape, order="F" if fortran else "C")
    except (*CORRUPT_ERRORS, tokenize.TokenError, SyntaxError) as exc:  # numpy parses the header as Python text
        raise CheckpointError(f"{name} is truncated or corrupt ({describe(exc)})") from None
    # An object array (e.g. a dict of latents saved with np.save): its body is a pickle; read it restricted.
    return _single_array(safe_load(f, name, DATA_ALLOWLIST), name)


def _single_array(obj: Any, name: str) -> np.ndarray:
    if isinstance(obj, np.ndarray) and obj.dtype.hasobject and obj.size == 1:
        obj = obj.reshape(()).item()
    if isinstance(obj, dict):
        arrays = [v for v in obj.values() if isinstance(v, np.ndarray)]
        if len(arrays) != 1:
            raise CheckpointError(f"{name} holds {len(obj)} entries; expected a single latent array")
        obj = arrays[0]
    if isinstance(obj, (list, tuple)) and len(obj) == 1:
        obj = obj[0]
    if not isinstance(obj, np.ndarray) or obj.dtype.hasobject:
        raise CheckpointError(f"{name} holds a {type(obj).__name__}; expected a NumPy latent array")
    return obj
