"""Hostile and malformed files, built by the tests themselves (nothing binary is committed), and the
bounded way to run a command on one: `python -m app …` in a subprocess under an address-space limit
and a wall-clock limit, with its peak memory measured.

Used by tests/test_hostile_files.py (the corpus) and tests/test_fuzz_files.py (mutations).
"""
from __future__ import annotations

import json
import os
import pickle
import resource
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from models.checkpoints.torch_file import MAGIC_NUMBER, PROTOCOL_VERSION

ROOT = Path(__file__).resolve().parents[1]
MEMORY_LIMIT = 2 << 30  # RLIMIT_AS of every case: 2 GiB
WALL_LIMIT_S = 10.0


# ------------------------------------------------------------------------------------------ running


@dataclass(frozen=True)
class Outcome:
    returncode: int | None  # None: killed at the wall limit
    stdout: str
    stderr: str
    wall_s: float
    peak_rss_bytes: int

    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error:")]


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    os.setsid()  # its own process group: a kill at the wall limit takes every child with it


def _env() -> dict[str, str]:
    return {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
            "TQDM_DISABLE": "1"}


def run_app(argv: list[str], cwd: Path, timeout_s: float = WALL_LIMIT_S) -> Outcome:
    """`python -m app *argv` under RLIMIT_AS = 2 GiB, killed after `timeout_s`; peak RSS from wait4."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        process = subprocess.Popen([sys.executable, "-m", "app", *argv], cwd=cwd, env=_env(), stdout=out, stderr=err,
                                   stdin=subprocess.DEVNULL, preexec_fn=_limits)
        killed = threading.Event()

        def kill() -> None:
            killed.set()
            os.killpg(process.pid, signal.SIGKILL)

        timer = threading.Timer(timeout_s, kill)
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped here; Popen must not wait again
        wall = time.monotonic() - start
        out.seek(0)
        err.seek(0)
        return Outcome(None if killed.is_set() else process.returncode, out.read().decode(errors="replace"),
                       err.read().decode(errors="replace"), wall, usage.ru_maxrss * 1024)


# A fork server: one process imports the app (torch and all) once, then forks a fresh child per case that
# runs `app.cli.main(argv)` — what `python -m app` runs — under the same limits. Saves ~1.5 s per case.
_SERVER = r"""
import json, os, resource, sys, time, traceback
import importlib
import app.cli, engine.runtime.weights, engine.media.video_io, engine.output_file, training.trainer  # the heavy imports, once
for module in sys.argv[1:]:  # and the caller's (e.g. the landmark warp for renders)
    importlib.import_module(module)
for line in sys.stdin:
    job = json.loads(line)
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            resource.setrlimit(resource.RLIMIT_AS, (job["memory"], job["memory"]))
            os.chdir(job["cwd"])
            for fd, path in ((1, job["stdout"]), (2, job["stderr"])):
                os.dup2(os.open(path, os.O_WRONLY | os.O_TRUNC), fd)
            sys.argv = ["python -m app", *job["argv"]]
            code = app.cli.main(job["argv"])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush(); sys.stderr.flush()
        os._exit(code if isinstance(code, int) else 0)
    killed = False
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() - start > job["timeout"] and not killed:
            os.killpg(pid, 9); killed = True
        time.sleep(0.005)
    print(json.dumps({"code": None if killed else os.waitstatus_to_exitcode(status),
                      "wall": time.monotonic() - start, "rss": usage.ru_maxrss * 1024}), flush=True)
"""


class AppForkServer:
    """`with AppForkServer() as server: server.run(argv, cwd)` — an `Outcome` per case, like `run_app`."""

    def __init__(self, preload: tuple[str, ...] = ()) -> None:
        self.preload = preload  # more modules to import once, before the forks

    def __enter__(self) -> "AppForkServer":
        self.process = subprocess.Popen([sys.executable, "-c", _SERVER, *self.preload], cwd=ROOT, env=_env(),
                                        stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        self.lock = threading.Lock()
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)

    def run(self, argv: list[str], cwd: Path, timeout_s: float = WALL_LIMIT_S) -> Outcome:
        with self.lock, tempfile.TemporaryDirectory() as tmp:
            out, err = Path(tmp) / "out", Path(tmp) / "err"
            out.touch()
            err.touch()
            job = {"argv": argv, "cwd": str(cwd), "timeout": timeout_s, "memory": MEMORY_LIMIT, "stdout": str(out),
                   "stderr": str(err)}
            self.process.stdin.write(json.dumps(job) + "\n")
            self.process.stdin.flush()
            reply = json.loads(self.process.stdout.readline())
            return Outcome(reply["code"], out.read_text(errors="replace"), err.read_text(errors="replace"),
                           reply["wall"], reply["rss"])


def bounded_failure_problems(outcome: Outcome, names: str, marker: Path | None = None) -> list[str]:
    """What is wrong with how a command failed on a bad file ([] = exit 2, one `error:` line naming
    `names`, no traceback, no marker, within the wall and memory bounds)."""
    problems = []
    if outcome.returncode is None:
        problems.append(f"killed after {WALL_LIMIT_S:g} s")
    elif outcome.returncode != 2:
        problems.append(f"exit code {outcome.returncode}")
    if "Traceback" in outcome.stderr or "Traceback" in outcome.stdout:
        problems.append("a traceback")
    lines = outcome.error_lines()
    if len(lines) != 1:
        problems.append(f"{len(lines)} error lines")
    elif names not in lines[0]:
        problems.append(f"the error does not name {names!r}")
    if marker is not None and marker.exists():
        problems.append("the payload ran (marker file created)")
    if outcome.peak_rss_bytes > MEMORY_LIMIT:
        problems.append(f"peak memory {outcome.peak_rss_bytes / 2**30:.1f} GiB")
    if problems:
        problems.append(f"stderr: {outcome.stderr[-600:]!r}")
    return problems


# ------------------------------------------------------------------------------------------ pickles


def memo_bomb(levels: int = 60, proto: int = 2) -> bytes:
    """A tuple of 2^levels leaves in a few hundred bytes: each level is (previous, previous) from the memo."""
    return bytes([0x80, proto]) + b"Nq\x00" + b"h\x00h\x00\x86q\x00" * levels + b"."


def list_fill_bomb(levels: int = 60) -> bytes:
    """The same fan-out with lists memoized while empty and filled afterwards (how pickle writes lists),
    filled from the outermost: a size snapshot taken at memo time would see only empty lists."""
    ops = [b"\x80\x02"] + [b"]r" + struct.pack("<I", i) for i in range(levels + 1)]
    for i in range(levels, 0, -1):  # L_i.extend([L_(i-1), L_(i-1)])
        inner = b"j" + struct.pack("<I", i - 1)
        ops.append(b"j" + struct.pack("<I", i) + b"(" + inner + inner + b"e0")
    return b"".join(ops) + b"j" + struct.pack("<I", levels) + b"."


def hash_bomb() -> bytes:
    """A dict whose key is the 2^60 tuple: unpickling hashes it."""
    return b"\x80\x02}" + b"Nq\x000" + b"h\x00h\x00\x86q\x000" * 60 + b"h\x00Ns."


def deep_nesting(depth: int = 100_000) -> bytes:
    return b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b"."


def huge_length() -> bytes:
    """BINBYTES8 declaring 2^40 bytes, followed by three."""
    return b"\x80\x04\x8e" + (1 << 40).to_bytes(8, "little") + b"abc."


def code_payload(marker: Path) -> bytes:
    return f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()


def legacy_storages_beyond_file(count: int = 24, pad: int = 1 << 16) -> bytes:
    """A legacy torch.save file whose storages each fit the file, but not all together."""
    numel = pad // 2 // 4

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, str) and obj.startswith("storage:"):
                return ("storage", torch.FloatStorage, obj[8:], "cpu", numel, None)
            return None

    buffer = __import__("io").BytesIO()
    for head in (MAGIC_NUMBER, PROTOCOL_VERSION, {"little_endian": True}):
        pickle.dump(head, buffer, protocol=2)
    Pickler(buffer, protocol=2).dump({f"t{i}": f"storage:{i}" for i in range(count)})
    pickle.dump([str(i) for i in range(count)], buffer, protocol=2)
    return buffer.getvalue() + bytes(pad)


def zip_bomb(path: Path, inflated: int = 64 << 20) -> Path:
    """A torch.save zip whose one storage is `inflated` bytes of zeros, deflated to a few kB."""
    torch.save({"w": torch.zeros(4)}, path)
    with zipfile.ZipFile(path) as src:
        entries = [(info, src.read(info)) for info in src.infolist()]
    with zipfile.ZipFile(path, "w") as dst:
        for info, data in entries:
            if info.filename.endswith("data.pkl"):
                data = data.replace(b"K\x04t", b"J" + struct.pack("<i", inflated // 4) + b"t")
                dst.writestr(info.filename, data)
            elif "/data/" in info.filename:
                dst.writestr(info.filename, bytes(inflated), compress_type=zipfile.ZIP_DEFLATED)
            else:
                dst.writestr(info.filename, data)
    return path


def module_cycle(path: Path) -> Path:
    """An NVIDIA-looking G_ema (whole torch.nn modules, read inert) whose block holds the generator itself:
    a walk over its sub-modules that does not stop at cycles never ends."""
    import torch.nn.modules.container as host

    names = ("Generator", "SynthesisNetwork", "SynthesisBlock", "MappingNetwork")
    classes = {}
    for name in names:  # importable by name while pickling only
        classes[name] = type(name, (torch.nn.Module,), {"__module__": host.__name__, "__qualname__": name})
        setattr(host, name, classes[name])
    try:
        g = classes["Generator"]()
        g.synthesis, g.mapping = classes["SynthesisNetwork"](), classes["MappingNetwork"]()
        g.img_resolution, g.z_dim, g.w_dim, g.c_dim, g.img_channels = 8, 4, 4, 0, 3
        g.synthesis.b4, g.synthesis.b8 = classes["SynthesisBlock"](), classes["SynthesisBlock"]()
        g.synthesis.b8.loop = g
        with path.open("wb") as f:
            pickle.dump({"G_ema": g}, f, protocol=2)
    finally:
        for name in names:
            delattr(host, name)
    return path


def many_encoder_units(path: Path, units: int = 1000) -> Path:
    """An ArcFace-style IR-SE state dict whose body has `units` units of one width: telling its 4 stages
    apart by trying every split would take C(units, 3) ≈ 10^8 tries."""
    state = {"input_layer.0.weight": torch.zeros(1, 3, 1, 1), "output_layer.3.weight": torch.zeros(32, 8)}
    state.update({f"body.{i}.res_layer.1.weight": torch.zeros(1, 1, 1, 1) for i in range(units)})
    torch.save(state, path)
    return path


# ------------------------------------------------------------------------------------------ arrays, images


def npy_declaring(shape: tuple[int, ...], data_bytes: int = 16) -> bytes:
    header = {"descr": "<f4", "fortran_order": False, "shape": shape}
    text = repr(header).encode()
    text += b" " * (-(len(text) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + bytes(data_bytes)


def memo_index_bomb() -> bytes:
    """LONG_BINPUT at index 2^32 - 1: the C unpickler sizes its memo array to the index (32 GB)."""
    return b"\x80\x02Nr\xff\xff\xff\xff."


def pickled_array_placeholder(elements: int) -> bytes:
    """A pickled ndarray whose `_reconstruct` placeholder (numpy writes (0,)) declares `elements` bytes."""
    small = pickle.dumps(np.zeros(4, np.float32), protocol=2)
    return small.replace(b"K\x00\x85", b"J" + struct.pack("<i", elements) + b"\x85", 1)


def pickled_array_declaring(elements: int) -> bytes:
    """A pickled ndarray whose BUILD state declares `elements` floats but carries 16 bytes."""
    small = pickle.dumps(np.zeros(4, np.float32), protocol=2)
    return small.replace(b"K\x04\x85", b"J" + struct.pack("<i", elements) + b"\x85", 1)


class _Call:
    """Pickles as `callee(*args)` (REDUCE)."""

    def __init__(self, callee: object, *args: object) -> None:
        self.callee, self.args = callee, args

    def __reduce__(self) -> tuple:
        return self.callee, self.args


def allocating_pickles() -> dict[str, bytes]:
    """Small pickles whose constructors, called by the unpickler, would allocate gigabytes (issue 27): the budget
    must refuse each before anything is built."""
    shape = (2**16, 2**16)
    return {
        "numpy.ndarray((2**31,), uint8) by REDUCE": pickle.dumps(_Call(np.ndarray, (2**31,), np.dtype("u1")), 2),
        "numpy.ndarray, protocol 4": pickle.dumps(_Call(np.ndarray, (2**31,), np.dtype("u1")), 4),
        # cls, ((2**31,), "u1"), NEWOBJ: ndarray.__new__(ndarray, (2**31,), "u1")
        "ndarray.__new__ by NEWOBJ":
            b"\x80\x02cnumpy\nndarray\n\x8a\x05\x00\x00\x00\x80\x00\x85X\x02\x00\x00\x00u1\x86\x81.",
        "getattr(ndarray, '__new__')": pickle.dumps(_Call(np.ndarray.__new__, np.ndarray, (2**31,), "u1"), 2),
        "numpy.empty": pickle.dumps(_Call(np.empty, 2**31, "u1"), 2),
        "numpy.zeros of float64": pickle.dumps(_Call(np.zeros, (2**28,)), 2),
        "numpy.full": pickle.dumps(_Call(np.full, (2**31,), 0, "u1"), 4),
        "a 4 GB void dtype": pickle.dumps(_Call(np.ndarray, (4,), np.dtype("V1000000000")), 2),
        "torch.empty": pickle.dumps(_Call(torch.empty, 2**20, 2**20), 2),
        "nested shape through the memo": pickle.dumps(_Call(np.ones, [shape, shape]), 2),
        "many small calls": pickle.dumps([_Call(np.empty, 2**20, "u1") for _ in range(100)], 4),
    }


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height pixels (its data is a few bytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + \
        chunk(b"IEND", b"")


# ------------------------------------------------------------------------------------------ packs


def pack_parts(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, json.loads(f.metadata()["mimic"])


def write_pack_with(path: Path, tensors: dict[str, torch.Tensor], manifest_text: str) -> Path:
    save_file(tensors, str(path), metadata={"mimic": manifest_text})
    return path
