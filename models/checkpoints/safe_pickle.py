"""Restricted unpickling: a pickle may name only globals on an explicit allow-list.

A pickle is a small program: GLOBAL/STACK_GLOBAL opcodes import any callable and REDUCE calls
it. `SafeUnpickler.find_class` answers every global from an allow-list of our own objects (plain
containers, our own tensor/array rebuilders, inert stand-ins) and refuses anything else with
`UnsafePickleError` before it is imported, so nothing foreign is imported or run.
"""
from __future__ import annotations

import collections
import contextlib
import io
import mmap
import os
import pickle
import struct
import types
from collections.abc import Callable, Mapping
from typing import IO, Any

import numpy as np

from models.checkpoints.errors import CheckpointError, UnsafePickleError
from models.checkpoints.pickle_budget import DEFAULT_BUDGET, PickleBudget, check_budget

# Allow-list: (module, name) → the object the unpickler gets instead of importing it.
Allowlist = Mapping[tuple[str, str], Any]

# Python 2 / old numpy module names, as `pickle`'s own fix_imports would map them.
_RENAMED_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg", "numpy._core.multiarray": "numpy.core.multiarray",
                    "numpy._core.numeric": "numpy.core.numeric"}

# Exceptions a malformed (not hostile: hostile ones stop at find_class) pickle raises while loading.
CORRUPT_ERRORS = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
                  LookupError, RuntimeError, struct.error, UnicodeDecodeError, OverflowError, MemoryError,
                  RecursionError)


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """`_codecs.encode(str, 'latin1')`: how protocol-2 pickles spell a bytes object."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"unexpected _codecs.encode({kind(text)}, {kind(encoding)})")
    return text.encode("latin1")


def _reconstruct_array(subtype: type, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's `_reconstruct`: an empty ndarray that the next BUILD fills (plain ndarrays only)."""
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError(f"unexpected array subtype {kind(subtype)}")
    if not (isinstance(shape, tuple) and all(type(n) is int and 0 <= n <= 1 for n in shape)):
        # numpy pickles (0,) here and the data with the BUILD that follows; a large shape would be allocated now
        raise pickle.UnpicklingError("unexpected array placeholder shape")
    return np.core.multiarray._reconstruct(np.ndarray, shape, dtype)


def _array_from_buffer(buffer: Any, dtype: np.dtype, shape: tuple[int, ...], order: str) -> np.ndarray:
    """numpy's `_frombuffer` (protocol-5 pickles of arrays)."""
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise pickle.UnpicklingError(f"unexpected array dtype {kind(dtype)}")
    return np.frombuffer(bytes(buffer), dtype=dtype).reshape(shape, order=order).copy()


def _scalar(dtype: np.dtype, data: Any) -> Any:
    """numpy's `scalar(dtype, bytes)`: one numpy scalar from its raw bytes."""
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, bytes):
        raise pickle.UnpicklingError(f"unexpected numpy scalar of {kind(dtype)}")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


class Namespace(types.SimpleNamespace):
    """`argparse.Namespace` (rosinality's `args`), rebuilt as plain attributes without importing argparse."""

    INERT = True  # may be rebuilt by copyreg._reconstructor


class AttrDict(dict):
    """A dict subclass of the pickling code (e.g. NVIDIA's `dnnlib.EasyDict`), rebuilt as a plain dict."""


def _reconstructor(cls: type, base: type, state: Any) -> Any:
    """copyreg's `_reconstructor` (protocol 0/1 pickles of objects): only for our own inert classes."""
    if base is object and isinstance(cls, type) and getattr(cls, "INERT", False):
        return cls.__new__(cls)
    if base is dict and isinstance(cls, type) and issubclass(cls, AttrDict):
        return cls(state or {})
    raise pickle.UnpicklingError(f"unexpected copyreg._reconstructor({kind(cls)}, {kind(base)})")


# Plain data: containers, numpy arrays and scalars, argparse namespaces.
DATA_ALLOWLIST: dict[tuple[str, str], Any] = {
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("builtins", "complex"): complex,
    ("builtins", "object"): object,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): _latin1_bytes,
    ("argparse", "Namespace"): Namespace,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct_array,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy.core.numeric", "_frombuffer"): _array_from_buffer,
}


class SafeUnpickler(pickle.Unpickler):
    """`pickle.Unpickler` whose globals come only from `allowlist` (and, optionally, a resolver for
    whole families such as `torch.nn.modules.*`); `file_name` names the file in errors."""

    def __init__(self, file: IO[bytes], file_name: str, allowlist: Allowlist,
                 resolve: Callable[[str, str], Any | None] | None = None,
                 persistent_load: Callable[[Any], Any] | None = None) -> None:
        super().__init__(file, encoding="latin1")
        self.file_name = file_name
        self.allowlist = allowlist
        self.resolve = resolve
        if persistent_load is not None:
            self.persistent_load = persistent_load

    def find_class(self, module: str, name: str) -> Any:
        module = _RENAMED_MODULES.get(module, module)
        found = self.allowlist.get((module, name))
        if found is None and self.resolve is not None:
            found = self.resolve(module, name)
        if found is None:
            raise UnsafePickleError(f"refusing to load {self.file_name}: it asks to run {module}.{name}; "
                                    "only tensors and plain data are allowed")
        return found


def safe_load(file: IO[bytes], file_name: str, allowlist: Allowlist,
              resolve: Callable[[str, str], Any | None] | None = None,
              persistent_load: Callable[[Any], Any] | None = None,
              budget: PickleBudget = DEFAULT_BUDGET) -> Any:
    """Unpickle one object from `file` with `SafeUnpickler`, after `check_budget` has measured it (so a
    memo bomb or a bogus length is refused before anything is built); a malformed stream → CheckpointError."""
    start = file.tell()
    with _bytes_of(file) as data:
        end = check_budget(data, start, file_name, budget)
    file.seek(start)
    try:
        result = SafeUnpickler(file, file_name, allowlist, resolve, persistent_load).load()
    except CheckpointError:
        raise
    except CORRUPT_ERRORS as exc:
        raise CheckpointError(f"{file_name} is truncated or corrupt ({describe(exc)})") from None
    file.seek(end)  # the C unpickler may read ahead
    return result


@contextlib.contextmanager
def _bytes_of(file: IO[bytes]):
    """The whole content of `file` as a buffer without copying it where possible (mmap, BytesIO)."""
    if isinstance(file, io.BytesIO):
        view = file.getbuffer()
        try:
            yield view
        finally:
            view.release()
        return
    try:
        fileno = file.fileno()
    except (OSError, AttributeError, io.UnsupportedOperation):
        fileno = None
    if fileno is None or os.fstat(fileno).st_size == 0:
        position = file.tell()
        file.seek(0)
        data = file.read()
        file.seek(position)
        yield data
        return
    with mmap.mmap(fileno, 0, access=mmap.ACCESS_READ) as mapped:
        view = memoryview(mapped)
        try:
            yield view
        finally:
            view.release()


def safe_loads(data: bytes, file_name: str, allowlist: Allowlist = DATA_ALLOWLIST,
               resolve: Callable[[str, str], Any | None] | None = None) -> Any:
    return safe_load(io.BytesIO(data), file_name, allowlist, resolve)


def load_plain_pickle(file: IO[bytes], file_name: str, allowlist: Allowlist,
                      resolve: Callable[[str, str], Any | None] | None = None, protocol_2: bool = True,
                      what: str = "a PyTorch checkpoint or pickle") -> Any:
    """`safe_load` of a file that may not be a pickle at all: one that does not start with protocol 2+'s
    PROTO opcode and fails to unpickle is reported as "not <what>" rather than as corrupt."""
    if protocol_2:
        return safe_load(file, file_name, allowlist, resolve)
    try:
        return safe_load(file, file_name, allowlist, resolve)
    except UnsafePickleError:
        raise
    except CheckpointError:
        raise CheckpointError(f"{file_name} is not {what}") from None


def describe(exc: BaseException) -> str:
    """A short reason for an error message: the exception's first line (or its type). Only string
    arguments are shown: `str()` of an object from a hostile file could take any time and memory."""
    text = exc.args[0] if len(exc.args) == 1 and isinstance(exc.args[0], str) else ""
    lines = text[:400].strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:160]}" if lines else type(exc).__name__


def kind(obj: Any) -> str:
    """A value from a file, for an error message, without str()/repr() of it: short strings, small numbers
    and dtypes as themselves, anything else as its type."""
    if isinstance(obj, bool) or isinstance(obj, float) or isinstance(obj, int) and obj.bit_length() <= 64:
        return repr(obj)
    if isinstance(obj, str):
        return repr(obj) if len(obj) <= 60 else f"a {len(obj)}-character string"
    if isinstance(obj, np.dtype):
        return repr(obj)
    if isinstance(obj, type):
        return f"{obj.__module__}.{obj.__qualname__}"[:80]
    return f"a {type(obj).__name__}"
