"""Run a compiled (AOTInductor) CPU package without holding Python's GIL, so other threads keep running.

torch's own runners of a `.pt2` package (`aoti_load_package(...)(x)`, the loader's `run`/`boxed_run`)
hold the GIL for the whole forward pass. In the app that stops every other Python thread — the camera's
capture thread and the GUI — for as long as the model runs: measured on 2 busy cores, a thread that
wakes every millisecond woke 4–12 times in 2 s beside a compiled tiny G (the longest gap 1.1–2.3 s),
and 818 times beside the same G run eagerly (eager PyTorch releases the GIL in every operator). With the
model at 160 ms per frame the camera preview fell to a few frames per second.

The package's model is a shared library with AOTInductor's C interface (torch's
``aoti_runtime/interface.h``): ``AOTInductorModelContainerCreateWithDevice``, ``…GetNumOutputs``,
``…Run``, ``…Delete``. Called through ctypes — which releases the GIL during a foreign call — the
forward pass runs while the other threads run too (same measurement: 841 wake-ups, longest gap 95 ms;
outputs bit-identical to torch's runner). Tensors cross the interface as AtenTensorHandles made and
taken back by torch's own helpers (``torch._C._aoti``).

Used for CPU packages whose weights are inside the library (weight freezing puts them there); anything
else, or any failure to set it up, leaves torch's runner in charge (logged).
"""
from __future__ import annotations

import ctypes
import logging
import os
import zipfile
from pathlib import Path

import torch

log = logging.getLogger(__name__)

_Handle = ctypes.c_void_p


def _capsule_api() -> tuple:
    api = ctypes.pythonapi
    api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    api.PyCapsule_GetPointer.restype = ctypes.c_void_p
    api.PyCapsule_New.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
    api.PyCapsule_New.restype = ctypes.py_object
    return api.PyCapsule_GetPointer, api.PyCapsule_New


class GilFreeModel:
    """The model of one AOTInductor CPU library, called through its C interface (the GIL released)."""

    def __init__(self, library: Path) -> None:
        self._lib = lib = ctypes.CDLL(str(library))
        lib.AOTInductorModelContainerCreateWithDevice.argtypes = [ctypes.POINTER(_Handle), ctypes.c_size_t,
                                                                   ctypes.c_char_p, ctypes.c_char_p]
        lib.AOTInductorModelContainerCreateWithDevice.restype = ctypes.c_int32
        lib.AOTInductorModelContainerGetNumOutputs.argtypes = [_Handle, ctypes.POINTER(ctypes.c_size_t)]
        lib.AOTInductorModelContainerGetNumOutputs.restype = ctypes.c_int32
        lib.AOTInductorModelContainerRun.argtypes = [_Handle, ctypes.POINTER(_Handle), ctypes.c_size_t,
                                                     ctypes.POINTER(_Handle), ctypes.c_size_t, _Handle, _Handle]
        lib.AOTInductorModelContainerRun.restype = ctypes.c_int32
        lib.AOTInductorModelContainerDelete.argtypes = [_Handle]
        lib.AOTInductorModelContainerDelete.restype = ctypes.c_int32
        self._pointer, self._capsule = _capsule_api()
        self._container = _Handle()
        _check(lib.AOTInductorModelContainerCreateWithDevice(ctypes.byref(self._container), 1, b"cpu", None),
               "create the model")
        outputs = ctypes.c_size_t()
        _check(lib.AOTInductorModelContainerGetNumOutputs(self._container, ctypes.byref(outputs)), "count outputs")
        self._outputs = outputs.value

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """The forward pass on contiguous CPU tensors; one output as a tensor, several as a list."""
        handles = [self._pointer(c, None) for c in torch._C._aoti.unsafe_alloc_void_ptrs_from_tensors(list(inputs))]
        given = (_Handle * len(handles))(*handles)  # new handles: the run takes (and frees) them
        taken = (_Handle * self._outputs)()
        _check(self._lib.AOTInductorModelContainerRun(self._container, given, len(handles), taken, self._outputs,
                                                      None, None), "run the model")
        outputs = torch._C._aoti.alloc_tensors_by_stealing_from_void_ptrs(
            [self._capsule(handle, None, None) for handle in taken])
        return outputs[0] if len(outputs) == 1 else outputs

    def __del__(self) -> None:
        container, self._container = getattr(self, "_container", None), None
        if container:
            self._lib.AOTInductorModelContainerDelete(container)


def _check(code: int, what: str) -> None:
    if code != 0:
        raise RuntimeError(f"AOTInductor could not {what} (error {code})")


def gil_free_runner(package: Path) -> GilFreeModel | None:
    """The package's model through its C interface, or None where that does not apply (logged): not one
    library with the weights inside, or it cannot be set up here. The library is extracted once, beside
    the package (``<package>.so``, written to a temporary name and renamed)."""
    try:
        with zipfile.ZipFile(package) as archive:
            names = archive.namelist()
            libraries = [n for n in names if n.endswith(".so")]
            if len(libraries) != 1 or any("/weights/" in n or n.endswith((".bin", ".pt")) for n in names):
                log.info("%s: not a single-library package with its weights inside; torch's runner runs it",
                         package.name)
                return None
            library = package.with_name(package.name + ".so")
            if not library.exists() or library.stat().st_mtime < package.stat().st_mtime:  # none, or older
                tmp = library.with_name(f".{library.name}.{os.getpid()}.partial")
                tmp.write_bytes(archive.read(libraries[0]))
                os.replace(tmp, library)
        return GilFreeModel(library)
    except (OSError, zipfile.BadZipFile, AttributeError, RuntimeError) as exc:
        log.warning("%s: cannot run it without the GIL (%s); torch's runner runs it (other threads wait "
                    "while it runs)", package.name, exc)
        return None
