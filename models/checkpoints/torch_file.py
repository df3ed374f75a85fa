"""Read pickled checkpoints without `torch.load`: torch.save's zip and legacy formats and plain pickles.

torch.save zip format: a zip whose `<prefix>/data.pkl` is the pickled object; each tensor is a
`torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)` call whose storage is a
persistent id `('storage', <torch.FloatStorage>, key, location, numel)`, the raw little-endian
bytes of which are the entry `<prefix>/data/<key>`.
Legacy format (torch < 1.6, and how a tensor's storage pickles itself inside a plain pickle via
`torch.storage._load_from_bytes`): pickles of the magic number, the protocol version and
system info, then the object (persistent ids `('storage', type, key, location, numel, view)`),
then the list of storage keys, then per storage an int64 element count and its raw bytes.
Every pickle goes through `SafeUnpickler` with our own tensor rebuilders.
"""
from __future__ import annotations

import io
import math
import os
import pickle
import stat
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import torch

from models.checkpoints.errors import CheckpointError
from models.checkpoints.inert import resolver
from models.checkpoints.safe_pickle import (
    CORRUPT_ERRORS, DATA_ALLOWLIST, describe, kind, load_plain_pickle, safe_load,
)

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
_LEGACY_PREFIX = pickle.dumps(MAGIC_NUMBER, protocol=2)  # how a legacy torch.save file starts

_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
    "ComplexFloatStorage": torch.complex64, "ComplexDoubleStorage": torch.complex128, "UntypedStorage": torch.uint8,
}
_DTYPE_NAMES = ("float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool",
                "complex64", "complex128", "float", "double", "half", "long", "int", "short")


@dataclass(frozen=True)
class StorageType:
    """What `torch.FloatStorage` & co. unpickle to: just the element type."""

    dtype: torch.dtype


class Storage:
    """A flat tensor of one dtype; unpickled tensors are strided views of it."""

    def __init__(self, data: torch.Tensor) -> None:
        self.data = data  # [numel]


class SizeBudget:
    """Bytes a file may make us allocate, set from its size: storages are at most the file's bytes
    (x8 for a compressed zip entry), tensor views at most a few times that (stride-0 `expand`s)."""

    def __init__(self, file_name: str, file_bytes: int) -> None:
        self.file_name = file_name
        self.storage_left = 8 * file_bytes
        self.view_left = 4 * file_bytes + (256 << 20)

    def storage(self, nbytes: int, key: Any) -> None:
        self.storage_left -= nbytes
        if self.storage_left < 0:
            raise CheckpointError(f"{self.file_name} is corrupt: its storages declare more bytes than the file "
                                  f"holds (storage {kind(key)} of {nbytes:,} bytes)")

    def view(self, size: tuple[int, ...], element_size: int) -> None:
        self.view_left -= math.prod(size) * element_size
        if self.view_left < 0:
            raise CheckpointError(f"{self.file_name} is refused: its tensors declare far more elements than its "
                                  f"storages hold (a tensor of size {list(size)[:8]} repeats its data)")


def _tensor_rebuilders(budget: SizeBudget) -> dict[tuple[str, str], Any]:
    """torch._utils' rebuild functions, checked: layout inside the storage, total size within `budget`."""

    def rebuild_tensor(storage: Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...],
                       requires_grad: bool = False, backward_hooks: Any = None, metadata: Any = None) -> torch.Tensor:
        if not isinstance(storage, Storage):
            raise pickle.UnpicklingError("tensor without storage")
        if not (_ints(size) and _ints(stride) and isinstance(offset, int)) or len(size) != len(stride) \
                or len(size) > 16 or min(size, default=0) < 0 or min(stride, default=0) < 0 or offset < 0:
            raise pickle.UnpicklingError("bad tensor layout")
        size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
        numel = storage.data.numel()
        if all(size) and offset + sum((n - 1) * s for n, s in zip(size, stride)) >= numel:
            raise pickle.UnpicklingError(f"tensor of size {list(size)} reaches past its storage of {numel} elements")
        budget.view(size, storage.data.element_size())
        return torch.as_strided(storage.data, size, stride, storage.data.storage_offset() + offset)

    def rebuild_tensor_v3(storage: Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...],
                          requires_grad: bool, backward_hooks: Any, dtype: torch.dtype,
                          metadata: Any = None) -> torch.Tensor:
        if not isinstance(storage, Storage) or not isinstance(dtype, torch.dtype):
            raise pickle.UnpicklingError("tensor without storage")
        data = storage.data.view(torch.uint8)
        if data.numel() % _element_size(dtype):
            raise pickle.UnpicklingError("storage bytes do not divide into its dtype")
        return rebuild_tensor(Storage(data.view(dtype)), offset, size, stride)

    return {("torch._utils", "_rebuild_tensor"): rebuild_tensor,
            ("torch._utils", "_rebuild_tensor_v2"): rebuild_tensor,
            ("torch._utils", "_rebuild_tensor_v3"): rebuild_tensor_v3}


def _ints(values: Any) -> bool:
    return isinstance(values, (tuple, list, torch.Size)) and all(type(v) is int for v in values)


def _rebuild_parameter(data: torch.Tensor, requires_grad: bool = False, backward_hooks: Any = None,
                       state: Any = None) -> torch.Tensor:
    if not isinstance(data, torch.Tensor):
        raise pickle.UnpicklingError("parameter without tensor")
    return data  # a plain tensor: the module that receives it decides what is a parameter


TORCH_ALLOWLIST: dict[tuple[str, str], Any] = {
    **DATA_ALLOWLIST,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    **{(module, name): StorageType(dtype) for name, dtype in _STORAGE_DTYPES.items()
       for module in ("torch", "torch.cuda", "torch.storage")},
    **{("torch", name): getattr(torch, name) for name in _DTYPE_NAMES},
}


def _allowlist(name: str, budget: SizeBudget) -> dict[tuple[str, str], Any]:
    """TORCH_ALLOWLIST with rebuilders charging `budget`, plus `torch.storage._load_from_bytes`: a storage
    pickled by value (legacy format) inside a plain pickle, as NVIDIA's pickles hold them."""
    def load_from_bytes(data: Any) -> Any:
        if not isinstance(data, bytes):
            raise pickle.UnpicklingError("storage bytes expected")
        return _read_legacy(io.BytesIO(data), name, budget)

    return {**TORCH_ALLOWLIST, **_tensor_rebuilders(budget), ("torch.storage", "_load_from_bytes"): load_from_bytes}


def read_pickled(path: Path) -> Any:
    """The object in a torch.save file (zip or legacy) or a plain pickle, read with the allow-list.

    Raises CheckpointError (truncated/corrupt/unsupported/over budget) or UnsafePickleError (foreign code).
    """
    path = Path(path)
    name = path.name
    try:
        with path.open("rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise CheckpointError(f"{path} is not a regular file; expected a checkpoint file")
            budget = SizeBudget(name, os.fstat(f.fileno()).st_size)
            head = f.read(512)
            f.seek(0)
            if head.startswith(b"PK\x03\x04"):
                return _read_zip(f, name, budget)
            if head.startswith(_LEGACY_PREFIX):
                return _read_legacy(f, name, budget)
            if len(head) > 262 and head[257:262] == b"ustar":
                raise CheckpointError(f"{name} uses PyTorch's pre-0.4 tar format; re-save it with a current PyTorch")
            if not head:
                raise CheckpointError(f"{name} is empty")
            return load_plain_pickle(f, name, _allowlist(name, budget), resolver(name),
                                     protocol_2=head[:1] == b"\x80")
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint not found: {path}") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path} is a folder; expected a checkpoint file") from None
    except PermissionError:
        raise CheckpointError(f"cannot read {path}: permission denied") from None


def _read_zip(f: IO[bytes], name: str, budget: SizeBudget) -> Any:
    try:
        archive = zipfile.ZipFile(f)
        records = archive.namelist()
        pkl = [r for r in records if r.endswith("data.pkl") and r.count("/") == 1]
        if len(pkl) != 1:
            raise CheckpointError(f"{name} is a zip file but not a PyTorch checkpoint (no data.pkl)")
        prefix = pkl[0][: -len("data.pkl")]
        if f"{prefix}byteorder" in records and _read_small(archive, f"{prefix}byteorder", budget).strip() != b"little":
            raise CheckpointError(f"{name} was saved big-endian; re-save it on a little-endian machine")
        storages: dict[str, Storage] = {}

        def persistent_load(saved_id: Any) -> Storage:
            if not (isinstance(saved_id, tuple) and len(saved_id) == 5 and saved_id[0] == "storage"):
                raise pickle.UnpicklingError(f"unexpected persistent id ({kind(saved_id)})")
            _, storage_type, key, _location, numel = saved_id
            if not isinstance(storage_type, StorageType) or not isinstance(key, str) or type(numel) is not int:
                raise pickle.UnpicklingError("storage of unknown type")
            if key not in storages:
                record = archive.getinfo(f"{prefix}data/{key}")
                dtype = storage_type.dtype
                nbytes = numel * _element_size(dtype) if numel >= 0 else -1
                if record.file_size != nbytes:  # checked before reading: no allocation from a bogus size
                    raise pickle.UnpicklingError(f"storage {kind(key)} has {record.file_size} bytes, expected {nbytes}")
                _charge(record, budget)  # before allocating
                data = torch.empty(numel, dtype=dtype)
                _read_record(archive, record, data.view(torch.uint8).numpy())
                storages[key] = Storage(data)
            return storages[key]

        pickled = _read_small(archive, pkl[0], budget)
        return safe_load(io.BytesIO(pickled), name, _allowlist(name, budget), resolver(name), persistent_load)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, KeyError, EOFError, OSError, ValueError) as exc:
        if isinstance(exc, (FileNotFoundError, IsADirectoryError)):
            raise
        raise CheckpointError(f"{name} is truncated or corrupt ({describe(exc)})") from None


def _charge(info: zipfile.ZipInfo, budget: SizeBudget) -> None:
    """Refuse an entry that would inflate far beyond its compressed bytes; charge its size to `budget`."""
    if info.compress_type != zipfile.ZIP_STORED and info.file_size > 8 * max(info.compress_size, 1):
        raise CheckpointError(f"{budget.file_name} is refused: zip entry {info.filename[:60]} would inflate "
                              f"{info.compress_size:,} bytes to {info.file_size:,} (a zip bomb)")
    budget.storage(info.file_size, info.filename)


def _read_small(archive: zipfile.ZipFile, name: str, budget: SizeBudget) -> bytes:
    info = archive.getinfo(name)
    _charge(info, budget)
    buffer = bytearray(info.file_size)
    _read_record(archive, info, buffer)
    return bytes(buffer)


def _read_record(archive: zipfile.ZipFile, info: zipfile.ZipInfo, into: Any) -> None:
    """One zip entry into `into`, a writable buffer of exactly its declared size (no second copy)."""
    view = memoryview(into).cast("B")
    with archive.open(info) as data:
        done = 0
        while done < len(view):
            n = data.readinto(view[done:done + (1 << 24)])
            if not n:
                raise EOFError(f"zip entry {info.filename[:60]} is cut short")
            done += n
        if data.read(1):
            raise zipfile.BadZipFile(f"zip entry {info.filename[:60]} is longer than declared")


def _element_size(dtype: torch.dtype) -> int:
    return torch.empty(0, dtype=dtype).element_size()


def _read_legacy(f: IO[bytes], name: str, budget: SizeBudget) -> Any:
    """torch.save's legacy (non-zip) format; storages are allocated when named, filled at the end."""
    try:
        magic = safe_load(f, name, DATA_ALLOWLIST)
        version = safe_load(f, name, DATA_ALLOWLIST)
        safe_load(f, name, DATA_ALLOWLIST)  # system info
        if magic != MAGIC_NUMBER or version != PROTOCOL_VERSION:
            raise CheckpointError(f"{name} is not a PyTorch checkpoint (bad magic number / protocol)")
        storages: dict[str, Storage] = {}
        start = f.tell()
        remaining = f.seek(0, io.SEEK_END) - start  # bytes left for the object and its storages
        f.seek(start)

        def persistent_load(saved_id: Any) -> Storage:
            if isinstance(saved_id, tuple) and saved_id and saved_id[0] == "module":
                raise CheckpointError(f"{name} holds a whole pickled model (torch.save(model)); expected a state dict")
            if not (isinstance(saved_id, tuple) and len(saved_id) == 6 and saved_id[0] == "storage"):
                raise pickle.UnpicklingError(f"unexpected persistent id ({kind(saved_id)})")
            _, storage_type, key, _location, numel, view = saved_id
            if not isinstance(storage_type, StorageType) or type(numel) is not int or numel < 0 \
                    or not isinstance(key, str):
                raise pickle.UnpicklingError("storage of unknown type")
            if key not in storages:
                nbytes = numel * _element_size(storage_type.dtype)
                if nbytes > remaining:  # no allocation from a bogus size
                    raise pickle.UnpicklingError(f"storage {kind(key)} of {numel} elements is larger than the file")
                budget.storage(nbytes, key)
                storages[key] = Storage(torch.empty(numel, dtype=storage_type.dtype))
            if view is None:
                return storages[key]
            if not (isinstance(view, tuple) and len(view) == 3 and isinstance(view[0], str)
                    and type(view[1]) is int and type(view[2]) is int):
                raise pickle.UnpicklingError("bad storage view")
            view_key, offset, view_size = view
            root = storages[key].data
            if view_key not in storages:
                if offset < 0 or view_size < 0 or offset + view_size > root.numel():
                    raise pickle.UnpicklingError("storage view out of range")
                storages[view_key] = Storage(root[offset: offset + view_size])
            return storages[view_key]

        result = safe_load(f, name, _allowlist(name, budget), resolver(name), persistent_load)
        keys = safe_load(f, name, DATA_ALLOWLIST)
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise CheckpointError(f"{name} is truncated or corrupt (no storage table)")
        for key in keys:
            if key not in storages:
                raise CheckpointError(f"{name} is truncated or corrupt (unknown storage {kind(key)})")
            data = storages[key].data
            head = f.read(8)
            if len(head) != 8:
                raise CheckpointError(f"{name} is truncated (storage {kind(key)} missing)")
            (count,) = struct.unpack("<q", head)
            nbytes = data.numel() * data.element_size()
            if count != data.numel():
                raise CheckpointError(f"{name} is corrupt (storage {kind(key)} has {count} elements, "
                                      f"expected {data.numel()})")
            target = data.view(torch.uint8).numpy() if data.is_contiguous() and data.storage_offset() == 0 \
                else bytearray(nbytes)
            got = f.readinto(memoryview(target).cast("B")) if nbytes else 0
            if got != nbytes:
                raise CheckpointError(f"{name} is truncated (storage {kind(key)} has {got} of {nbytes} bytes)")
            if nbytes and isinstance(target, bytearray):
                data.copy_(torch.frombuffer(target, dtype=data.dtype))
        return result
    except CORRUPT_ERRORS as exc:
        raise CheckpointError(f"{name} is truncated or corrupt ({describe(exc)})") from None
