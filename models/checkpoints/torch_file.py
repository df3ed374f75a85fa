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
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import torch

from models.checkpoints.errors import CheckpointError
from models.checkpoints.inert import resolver
from models.checkpoints.safe_pickle import CORRUPT_ERRORS, DATA_ALLOWLIST, describe, load_plain_pickle, safe_load

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


def _rebuild_tensor(storage: Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...],
                    requires_grad: bool = False, backward_hooks: Any = None, metadata: Any = None) -> torch.Tensor:
    if not isinstance(storage, Storage):
        raise pickle.UnpicklingError("tensor without storage")
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    numel = storage.data.numel()
    if len(size) != len(stride) or min(size, default=0) < 0 or min(stride, default=0) < 0 or offset < 0:
        raise pickle.UnpicklingError(f"bad tensor layout {size}/{stride}")
    if all(size) and offset + sum((n - 1) * s for n, s in zip(size, stride)) >= numel:
        raise pickle.UnpicklingError(f"tensor of size {list(size)} reaches past its storage of {numel} elements")
    return torch.as_strided(storage.data, size, stride, storage.data.storage_offset() + offset)


def _rebuild_tensor_v3(storage: Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...],
                       requires_grad: bool, backward_hooks: Any, dtype: torch.dtype,
                       metadata: Any = None) -> torch.Tensor:
    if not isinstance(storage, Storage) or not isinstance(dtype, torch.dtype):
        raise pickle.UnpicklingError("tensor without storage")
    return _rebuild_tensor(Storage(storage.data.view(torch.uint8).view(dtype)), offset, size, stride)


def _rebuild_parameter(data: torch.Tensor, requires_grad: bool = False, backward_hooks: Any = None,
                       state: Any = None) -> torch.Tensor:
    if not isinstance(data, torch.Tensor):
        raise pickle.UnpicklingError("parameter without tensor")
    return data  # a plain tensor: the module that receives it decides what is a parameter


TORCH_ALLOWLIST: dict[tuple[str, str], Any] = {
    **DATA_ALLOWLIST,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    **{(module, name): StorageType(dtype) for name, dtype in _STORAGE_DTYPES.items()
       for module in ("torch", "torch.cuda", "torch.storage")},
    **{("torch", name): getattr(torch, name) for name in _DTYPE_NAMES},
}


def _allowlist(name: str) -> dict[tuple[str, str], Any]:
    """TORCH_ALLOWLIST plus `torch.storage._load_from_bytes`: a storage pickled by value (legacy format)
    inside a plain pickle, as NVIDIA's pickles hold them."""
    return {**TORCH_ALLOWLIST, ("torch.storage", "_load_from_bytes"): lambda data: _read_legacy(io.BytesIO(data), name)}


def read_pickled(path: Path) -> Any:
    """The object in a torch.save file (zip or legacy) or a plain pickle, read with the allow-list.

    Raises CheckpointError (truncated/corrupt/unsupported) or UnsafePickleError (foreign code).
    """
    path = Path(path)
    name = path.name
    try:
        with path.open("rb") as f:
            head = f.read(512)
            f.seek(0)
            if head.startswith(b"PK\x03\x04"):
                return _read_zip(f, name)
            if head.startswith(_LEGACY_PREFIX):
                return _read_legacy(f, name)
            if len(head) > 262 and head[257:262] == b"ustar":
                raise CheckpointError(f"{name} uses PyTorch's pre-0.4 tar format; re-save it with a current PyTorch")
            if not head:
                raise CheckpointError(f"{name} is empty")
            return load_plain_pickle(f, name, _allowlist(name), resolver(name), protocol_2=head[:1] == b"\x80")
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint not found: {path}") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path} is a folder; expected a checkpoint file") from None


def _read_zip(f: IO[bytes], name: str) -> Any:
    try:
        archive = zipfile.ZipFile(f)
        records = archive.namelist()
        pkl = [r for r in records if r.endswith("data.pkl") and r.count("/") == 1]
        if len(pkl) != 1:
            raise CheckpointError(f"{name} is a zip file but not a PyTorch checkpoint (no data.pkl)")
        prefix = pkl[0][: -len("data.pkl")]
        if f"{prefix}byteorder" in records and archive.read(f"{prefix}byteorder").strip() != b"little":
            raise CheckpointError(f"{name} was saved big-endian; re-save it on a little-endian machine")
        storages: dict[str, Storage] = {}

        def persistent_load(saved_id: Any) -> Storage:
            if not (isinstance(saved_id, tuple) and len(saved_id) == 5 and saved_id[0] == "storage"):
                raise pickle.UnpicklingError(f"unexpected persistent id {str(saved_id)[:60]}")
            _, storage_type, key, _location, numel = saved_id
            if not isinstance(storage_type, StorageType):
                raise pickle.UnpicklingError("storage of unknown type")
            if key not in storages:
                record = archive.getinfo(f"{prefix}data/{key}")
                dtype = storage_type.dtype
                nbytes = numel * _element_size(dtype) if isinstance(numel, int) and numel >= 0 else -1
                if record.file_size != nbytes:  # checked before reading: no allocation from a bogus size
                    raise pickle.UnpicklingError(f"storage {key} has {record.file_size} bytes, expected {nbytes}")
                raw = bytearray(archive.read(record))
                storages[key] = Storage(torch.frombuffer(raw, dtype=dtype, count=numel) if numel else
                                        torch.empty(0, dtype=dtype))
            return storages[key]

        with archive.open(pkl[0]) as data:
            return safe_load(data, name, _allowlist(name), resolver(name), persistent_load)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, KeyError, EOFError, OSError) as exc:
        if isinstance(exc, (FileNotFoundError, IsADirectoryError)):
            raise
        raise CheckpointError(f"{name} is truncated or corrupt ({describe(exc)})") from None


def _element_size(dtype: torch.dtype) -> int:
    return torch.empty(0, dtype=dtype).element_size()


def _read_legacy(f: IO[bytes], name: str) -> Any:
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
                raise pickle.UnpicklingError(f"unexpected persistent id {str(saved_id)[:60]}")
            _, storage_type, key, _location, numel, view = saved_id
            if not isinstance(storage_type, StorageType) or not isinstance(numel, int) or numel < 0:
                raise pickle.UnpicklingError("storage of unknown type")
            if key not in storages:
                if numel * _element_size(storage_type.dtype) > remaining:  # no allocation from a bogus size
                    raise pickle.UnpicklingError(f"storage {key} of {numel} elements is larger than the file")
                storages[key] = Storage(torch.empty(numel, dtype=storage_type.dtype))
            if view is None:
                return storages[key]
            view_key, offset, view_size = view
            root = storages[key].data
            if view_key not in storages:
                if offset < 0 or offset + view_size > root.numel():
                    raise pickle.UnpicklingError("storage view out of range")
                storages[view_key] = Storage(root[offset: offset + view_size])
            return storages[view_key]

        result = safe_load(f, name, _allowlist(name), resolver(name), persistent_load)
        keys = safe_load(f, name, DATA_ALLOWLIST)
        if not isinstance(keys, list):
            raise CheckpointError(f"{name} is truncated or corrupt (no storage table)")
        for key in keys:
            if key not in storages:
                raise CheckpointError(f"{name} is truncated or corrupt (unknown storage {key!r})")
            data = storages[key].data
            head = f.read(8)
            if len(head) != 8:
                raise CheckpointError(f"{name} is truncated (storage {key!r} missing)")
            (count,) = struct.unpack("<q", head)
            nbytes = data.numel() * data.element_size()
            if count != data.numel():
                raise CheckpointError(f"{name} is corrupt (storage {key!r} has {count} elements, "
                                      f"expected {data.numel()})")
            raw = bytearray(f.read(nbytes))
            if len(raw) != nbytes:
                raise CheckpointError(f"{name} is truncated (storage {key!r} has {len(raw)} of {nbytes} bytes)")
            if nbytes:
                data.copy_(torch.frombuffer(raw, dtype=data.dtype))
        return result
    except CORRUPT_ERRORS as exc:
        raise CheckpointError(f"{name} is truncated or corrupt ({describe(exc)})") from None
