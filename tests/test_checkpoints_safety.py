"""Hostile pickles are refused before anything runs: plain, inside torch.save files, NVIDIA-style."""
from __future__ import annotations

import importlib.util
import io
import os
import pickle
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.runtime.weights import load_generator, load_latent
from models.checkpoints.errors import CheckpointError, UnsafePickleError
from models.checkpoints.inert import audit_source
from models.checkpoints.torch_file import MAGIC_NUMBER, PROTOCOL_VERSION, read_pickled
from tests.checkpoint_writers import (
    NETWORK_SOURCE, Persistent, nvidia_modules, one_thread, tiny_generator, write_nvidia,
)

pytestmark = pytest.mark.usefixtures(one_thread.__name__)


def payloads(marker: Path) -> dict[str, bytes]:
    """Protocol-0 exploit pickles, each of which creates `marker` under the stock unpickler."""
    m = str(marker)
    return {
        "os.system": f"cos\nsystem\n(S'touch {m}'\ntR.".encode(),
        "builtins.eval": f"cbuiltins\neval\n(S'open(\"{m}\", \"w\").close()'\ntR.".encode(),
        "builtins.exec": f"c__builtin__\nexec\n(S'import os; os.system(\"touch {m}\")'\ntR.".encode(),
        "subprocess.Popen": f"csubprocess\nPopen\n((S'touch'\nS'{m}'\nltR.".encode(),
    }


class Reduce:
    """An object whose pickle calls `func(*args)` (protocol 2+ spelling: STACK_GLOBAL + REDUCE)."""

    def __init__(self, func, *args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def legacy_torch_file(main_pickle: bytes) -> bytes:
    """A torch.save legacy-format file whose object pickle is `main_pickle` (and no storages)."""
    head = b"".join(pickle.dumps(x, protocol=2) for x in (MAGIC_NUMBER, PROTOCOL_VERSION, {"little_endian": True}))
    return head + main_pickle + pickle.dumps([], protocol=2)


def zip_with_data_pkl(tmp: Path, data_pkl: bytes) -> bytes:
    """A real torch.save zip file with its data.pkl replaced."""
    real = tmp / "real.pt"
    torch.save({"w": torch.ones(3)}, real)
    buffer = io.BytesIO()
    with zipfile.ZipFile(real) as src, zipfile.ZipFile(buffer, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, data_pkl if info.filename.endswith("data.pkl") else src.read(info))
    return buffer.getvalue()


def test_the_payloads_are_real_exploits(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    pickle.loads(payloads(marker)["os.system"])  # the stock unpickler runs it
    assert marker.exists()


@pytest.mark.parametrize("wrapper", ["plain", "torch-zip", "torch-legacy", "zip-nested-in-dict"])
@pytest.mark.parametrize("target", ["os.system", "builtins.eval", "builtins.exec", "subprocess.Popen"])
def test_hostile_pickles_are_refused(tmp_path: Path, wrapper: str, target: str) -> None:
    marker = tmp_path / "pwned"
    payload = payloads(marker)[target]
    if wrapper == "plain":
        data = payload
    elif wrapper == "torch-zip":
        data = zip_with_data_pkl(tmp_path, payload)
    elif wrapper == "torch-legacy":
        data = legacy_torch_file(payload)
    else:  # a dict of real tensors with the exploit as one value, protocol 2 (as torch.save writes)
        inner = payload[:-1]  # without STOP: the call leaves its result on the stack
        data = zip_with_data_pkl(tmp_path, b"\x80\x02}q\x00(X\x01\x00\x00\x00a" + inner + b"X\x01\x00\x00\x00bK\x01u.")
    path = tmp_path / "stylegan2-ffhq-config-f.pt"
    path.write_bytes(data)
    with pytest.raises(UnsafePickleError) as info:
        read_pickled(path)
    message = str(info.value)
    shown = "builtins.exec" if target == "builtins.exec" else target
    assert message == (f"refusing to load {path.name}: it asks to run {shown}; only tensors and plain data are allowed")
    with pytest.raises(UnsafePickleError):
        load_generator(path)  # the engine API refuses it too
    assert not marker.exists()


def test_protocol_4_reduce_and_embedded_storage_are_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    direct = tmp_path / "direct.pkl"
    direct.write_bytes(pickle.dumps({"w": Reduce(os.system, f"touch {marker}")}, protocol=4))
    with pytest.raises(UnsafePickleError, match=r"direct\.pkl: it asks to run (posix|os|nt)\.system"):
        read_pickled(direct)
    # NVIDIA pickles carry each tensor's storage as a legacy torch.save file inside the pickle:
    # an exploit hidden there is refused too.
    from torch.storage import _load_from_bytes

    embedded = tmp_path / "embedded.pkl"
    inner = legacy_torch_file(payloads(marker)["os.system"])
    embedded.write_bytes(pickle.dumps({"G_ema": Reduce(_load_from_bytes, inner)}, protocol=4))
    with pytest.raises(UnsafePickleError, match=r"embedded\.pkl: it asks to run os\.system"):
        read_pickled(embedded)
    assert not marker.exists()


@pytest.mark.parametrize("trick", [b"cbuiltins\ngetattr\n", b"ccopyreg\n_reconstructor\n(cos\nsystem\n",
                                   b"ctorch\nload\n", b"cnumpy\nload\n", b"ctorch._utils\n_rebuild_qtensor\n",
                                   b"cpickle\nloads\n", b"c__main__\nReduce\n"])
def test_other_globals_are_refused(tmp_path: Path, trick: bytes) -> None:
    path = tmp_path / "x.pt"
    path.write_bytes(trick + b"(tR.")
    with pytest.raises(UnsafePickleError, match=r"refusing to load x\.pt: it asks to run"):
        read_pickled(path)


# ------------------------------------------------------------------------------------------ NVIDIA


def write_persistent(path: Path, class_name: str, source: str) -> None:
    """An NVIDIA-style pickle: one persistent object whose pickled module source is `source`."""

    class Evil(Persistent):
        pass

    Evil.source = source
    with nvidia_modules():
        obj = Evil(class_name, z_dim=8)
        with path.open("wb") as f:
            pickle.dump({"G_ema": obj}, f)


def test_nvidia_source_code_is_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    hostile = f"import os\nos.system('touch {marker}')\n" + NETWORK_SOURCE
    path = tmp_path / "stylegan2-ffhq-1024x1024.pkl"
    write_persistent(path, "Generator", hostile)
    with pytest.raises(UnsafePickleError, match=r"stylegan2-ffhq-1024x1024\.pkl: the source code pickled with "
                                                r"Generator would run line 2: os\.system"):
        read_pickled(path)
    assert not marker.exists()
    assert "torch_utils" not in sys.modules and "dnnlib" not in sys.modules


@pytest.mark.parametrize("hidden", [
    "class Generator:\n    x = __import__('os').system('touch {m}')\n",
    "@__import__('atexit').register\ndef f():\n    pass\n",
    "def f(x=__import__('os').system('touch {m}')):\n    pass\n",
    "class Generator(__import__('os').system('touch {m}')):\n    pass\n",
    "try:\n    import os\nexcept ImportError:\n    pass\n",
])
def test_nvidia_source_running_code_anywhere_at_import_is_refused(tmp_path: Path, hidden: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "g.pkl"
    write_persistent(path, "Generator", NETWORK_SOURCE + hidden.format(m=marker))
    with pytest.raises(UnsafePickleError, match=r"g\.pkl: the source code pickled with Generator would run line"):
        read_pickled(path)
    assert not marker.exists()


def test_nvidia_unknown_persistent_class_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "g.pkl"
    write_persistent(path, "Exploit", NETWORK_SOURCE)
    with pytest.raises(UnsafePickleError, match=r"g\.pkl: it carries pickled source code for class 'Exploit'"):
        read_pickled(path)


def test_nvidia_pickle_loads_without_nvidia_code(tmp_path: Path) -> None:
    path = write_nvidia(tmp_path / "network-snapshot.pkl", tiny_generator(conv_clamp=256.0))
    assert importlib.util.find_spec("torch_utils") is None and importlib.util.find_spec("dnnlib") is None
    g = load_generator(path)
    assert g.config.conv_clamp == 256.0
    assert "torch_utils" not in sys.modules and "dnnlib" not in sys.modules
    assert audit_source(NETWORK_SOURCE) is None


# ------------------------------------------------------------------------------------------ latents


def test_latent_pickles_allow_numpy_only(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "latent.pkl"
    path.write_bytes(payloads(marker)["os.system"])
    with pytest.raises(UnsafePickleError, match=r"latent\.pkl: it asks to run os\.system"):
        load_latent(path)
    path.write_bytes(pickle.dumps(torch.zeros(18, 512)))
    with pytest.raises(UnsafePickleError, match=r"latent\.pkl: it asks to run torch\._utils\._rebuild_tensor_v2"):
        load_latent(path)
    # an object .npy (np.save of a dict) is a pickle inside: read restricted as well
    npy = tmp_path / "latents.npy"
    np.save(npy, np.array({"face.png": np.ones((18, 512), np.float32)}, dtype=object), allow_pickle=True)
    assert load_latent(npy).shape == (18, 512)
    data = npy.read_bytes()
    npy.write_bytes(data[: data.index(b"\n", 10) + 1] + payloads(marker)["os.system"])
    with pytest.raises(UnsafePickleError, match=r"latents\.npy: it asks to run os\.system"):
        load_latent(npy)
    assert not marker.exists()


def test_malformed_pickles_are_corrupt_not_crashes(tmp_path: Path) -> None:
    path = tmp_path / "x.pkl"
    for data in (b"\x80\x04K", b"\x80\x02ctorch\nFloatStorage\nq\x00)R.", b"\x80\x02}(K\x01Q.",
                 b"\x80\x02ccollections\nOrderedDict\nK\x05\x85R."):
        path.write_bytes(data)
        with pytest.raises(CheckpointError, match=r"^x\.pkl is truncated or corrupt \("):
            read_pickled(path)
