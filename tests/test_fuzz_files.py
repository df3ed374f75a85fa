"""Seeded fuzzing of the loaders: a few hundred mutations of small valid checkpoints, latents and packs
(bit flips, byte runs, truncations, type swaps in pickles, state dicts and manifests).

Every mutant either loads, or fails with one line (CheckpointError / MimicError) — never another
exception, never past 10 s, never an attempt to allocate past 2 GiB. The mutants are loaded in-process
through the loader entry points the CLI uses (`load_generator`, `load_latent`, `load_paper_pack`),
in a worker process under RLIMIT_AS = 2 GiB with a per-case alarm; a sample also goes through the CLI.
"""
from __future__ import annotations

import io
import json
import random
import resource
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests import hostile_corpus as hc

SEED = 15
MUTANTS_PER_SEED_FILE = 40
CASE_LIMIT_S = 10


# ------------------------------------------------------------------------------------------ seed files


def write_seed_files(d: Path) -> dict[str, Path]:
    """Small valid files of every kind the loaders read."""
    from engine.runtime.weights import import_generator, import_weights
    from tests.checkpoint_writers import (
        TINY, tiny_generator, tiny_inverter, tiny_paper, write_latent_npy, write_latent_pkl, write_nvidia, write_paper,
        write_restyle, write_rosinality,
    )

    g = tiny_generator(seed=0)
    latent = np.random.RandomState(0).randn(TINY.generator.n_latent, TINY.generator.style_dim).astype(np.float32)
    files = {
        "zip.pt": write_rosinality(d / "zip.pt", g),
        "legacy.pt": write_rosinality(d / "legacy.pt", g, legacy=True),
        "nvidia.pkl": write_nvidia(d / "nvidia.pkl", g),
        "latent.npy": write_latent_npy(d / "latent.npy", latent),
        "latent.pkl": write_latent_pkl(d / "latent.pkl", latent),
    }
    files["g.safetensors"] = import_generator(files["zip.pt"], d / "g.safetensors").path
    paper, restyle = write_paper(d / "paper.pt", tiny_paper()), write_restyle(d / "restyle.pt", tiny_inverter(g))
    files["paper.safetensors"] = import_weights(paper, restyle, out=d / "paper.safetensors").path
    return files


# ------------------------------------------------------------------------------------------ mutations


def _flip_bits(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(out))
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def _random_run(data: bytes, rng: random.Random) -> bytes:
    i = rng.randrange(len(data))
    run = bytes(rng.choice([0x00, 0xFF, rng.randrange(256)]) for _ in range(rng.randint(1, 16)))
    return data[:i] + run + data[i + len(run):]


def _truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data))]


# Opcodes swapped for others of a different type (int ↔ str ↔ containers ↔ None/True), in pickles.
_SWAPS = [(b"K", b"U"), (b"]", b"}"), (b"}", b")"), (b")", b"]"), (b"N", b"\x88"), (b"\x85", b"\x86"), (b"t", b"l"),
          (b"J", b"\x8a"), (b"X", b"B"), (b"\x8c", b"C"), (b"h", b"j"), (b"q", b"\x94")]


def _swap_opcode(data: bytes, rng: random.Random) -> bytes:
    old, new = rng.choice(_SWAPS)
    hits = [i for i in range(len(data)) if data[i:i + 1] == old]
    if not hits:
        return _flip_bits(data, rng)
    i = rng.choice(hits)
    return data[:i] + new + data[i + 1:]


def _mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    return rng.choice([_flip_bits, _random_run, _truncate, _swap_opcode])(data, rng)


def _mutate_zip_pickle(path: Path, rng: random.Random) -> bytes:
    """A torch zip checkpoint whose data.pkl is mutated and re-zipped (valid CRCs: the unpickler sees it)."""
    out = io.BytesIO()
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info, _mutate_bytes(data, rng) if info.filename.endswith("data.pkl") else data)
    return out.getvalue()


_ODD_VALUES: list[Any] = [None, True, -1, 0, 2**40, 1e308, float("nan"), "abc", "", [], {}, [1, 2], {"a": 1},
                          "x" * 5000]


def _swap_json_value(value: Any, rng: random.Random, depth: int = 0) -> Any:
    """The manifest with one value somewhere replaced by a value of another type or an absurd size."""
    if isinstance(value, dict) and value and (depth < 1 or rng.random() < 0.7):
        key = rng.choice(sorted(value))
        if rng.random() < 0.1:
            return {k: v for k, v in value.items() if k != key}  # a field missing
        return {**value, key: _swap_json_value(value[key], rng, depth + 1)}
    if isinstance(value, list) and value and rng.random() < 0.6:
        i = rng.randrange(len(value))
        return [*value[:i], _swap_json_value(value[i], rng, depth + 1), *value[i + 1:]]
    return rng.choice(_ODD_VALUES)


def _mutate_pack(path: Path, rng: random.Random) -> bytes:
    tensors, manifest = hc.pack_parts(path)
    choice = rng.random()
    if choice < 0.6:
        text = json.dumps(_swap_json_value(manifest, rng))
    else:
        text = json.dumps(manifest)
        key = rng.choice(sorted(tensors))
        t = tensors[key]
        tensors[key] = rng.choice([t.to(torch.int64), t > 0, t.reshape(-1), t.reshape(-1)[:1], torch.tensor(1.0),
                                   t.to(torch.float16), torch.zeros(0)])
    buffer = path.with_name(f".mutant-{rng.randrange(1 << 30)}.safetensors")
    hc.write_pack_with(buffer, {k: v.contiguous() for k, v in tensors.items()}, text)
    data = buffer.read_bytes()
    buffer.unlink()
    return data if rng.random() < 0.8 else _mutate_bytes(data, rng)


def _mutate_state(path: Path, rng: random.Random) -> bytes:
    """A rosinality checkpoint re-saved with one entry of a different type or shape."""
    from models.checkpoints.torch_file import read_pickled

    content = read_pickled(path)
    state = dict(content["g_ema"])
    key = rng.choice(sorted(state))
    value = state.pop(key)
    swapped = rng.choice([None, 3, "w", [value], value.reshape(-1), value.to(torch.int64), value > 0,
                          torch.tensor(0.5), value.t() if value.ndim == 2 else value[None]])
    state[rng.choice([key, 7, (1, 2), key + ".x"])] = swapped
    content = {**content, "g_ema": state, "latent_avg": rng.choice([content["latent_avg"], torch.tensor(1.0),
                                                                    torch.zeros(3, 3, 3, 3), "avg"])}
    out = io.BytesIO()
    torch.save(content, out)
    return out.getvalue()


def make_mutants(files: dict[str, Path], d: Path,
                 count_per_file: int = MUTANTS_PER_SEED_FILE) -> list[tuple[str, Path]]:
    """(loader, mutant path) pairs, reproducible from SEED."""
    rng = random.Random(SEED)
    loaders = {"zip.pt": "generator", "legacy.pt": "generator", "nvidia.pkl": "generator", "latent.npy": "latent",
               "latent.pkl": "latent", "g.safetensors": "generator", "paper.safetensors": "paper_pack"}
    mutants = []
    for name, path in files.items():
        original = path.read_bytes()
        for i in range(count_per_file):
            if name.endswith(".safetensors"):
                data = _mutate_pack(path, rng)
            elif name == "zip.pt":
                data = rng.choice([lambda: _mutate_zip_pickle(path, rng), lambda: _mutate_state(path, rng),
                                   lambda: _mutate_bytes(original, rng)])()
            else:
                data = _mutate_bytes(original, rng)
            mutant = d / f"m{i:03d}_{name}"
            mutant.write_bytes(data)
            mutants.append((loaders[name], mutant))
    return mutants


# ------------------------------------------------------------------------------------------ the worker


class _Alarm(Exception):
    pass


def _on_alarm(signum: int, frame: Any) -> None:
    raise _Alarm()


def load_one(loader: str, path: Path) -> str:
    """'ok', or 'error: <message>' for a one-line user error; anything else propagates."""
    from engine.errors import USER_ERRORS
    from engine.runtime.weights import load_generator, load_latent, load_paper_pack
    from tests.checkpoint_writers import TINY

    try:
        if loader == "generator":
            load_generator(path)
        elif loader == "latent":
            load_latent(path, TINY.generator.n_latent, TINY.generator.style_dim)
        else:
            load_paper_pack(path)
    except USER_ERRORS as exc:
        return f"error: {exc}"
    return "ok"


def worker(jobs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Load every mutant under RLIMIT_AS = 2 GiB, each with a 10 s alarm; one result per mutant."""
    resource.setrlimit(resource.RLIMIT_AS, (hc.MEMORY_LIMIT, hc.MEMORY_LIMIT))
    torch.set_num_threads(1)
    signal.signal(signal.SIGALRM, _on_alarm)
    results = []
    for loader, path in jobs:
        start = time.monotonic()
        signal.alarm(CASE_LIMIT_S)
        try:
            outcome = load_one(loader, Path(path))
        except _Alarm:
            outcome = f"HANG past {CASE_LIMIT_S} s"
        except BaseException as exc:  # noqa: BLE001 - exactly what the fuzzing looks for
            outcome = f"CRASH {type(exc).__name__}: {str(exc)[:200]}"
        finally:
            signal.alarm(0)
        results.append({"path": path, "outcome": outcome, "wall_s": time.monotonic() - start})
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return [{**r, "peak_rss": peak} for r in results]


def fuzz_problem(result: dict[str, Any]) -> str | None:
    outcome = result["outcome"]
    name = Path(result["path"]).name
    if outcome == "ok":
        return None
    if not outcome.startswith("error: "):
        return outcome
    if "\n" in outcome or name not in outcome:
        return f"not one line naming {name}: {outcome!r}"
    if "MemoryError" in outcome:
        return f"tried to allocate past the limit: {outcome}"
    return None


# ------------------------------------------------------------------------------------------ the tests


@pytest.fixture(scope="module")
def mutants(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, Path]]:
    d = tmp_path_factory.mktemp("fuzz")
    torch.manual_seed(0)
    return make_mutants(write_seed_files(d), d)


def test_mutants_load_or_fail_in_one_line_within_bounds(mutants: list[tuple[str, Path]]) -> None:
    jobs = [(loader, str(path)) for loader, path in mutants]
    code = "import json, sys; from tests.test_fuzz_files import worker; print(json.dumps(worker(json.load(sys.stdin))))"
    done = subprocess.run([sys.executable, "-c", code], input=json.dumps(jobs), capture_output=True, text=True,
                          cwd=hc.ROOT, env=hc._env(), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(results) == len(jobs) >= 250
    problems = [f"{Path(r['path']).name}: {p}" for r in results if (p := fuzz_problem(r))]
    assert not problems, "\n".join(problems)
    assert results[-1]["peak_rss"] < hc.MEMORY_LIMIT
    failed = sum(r["outcome"] != "ok" for r in results)
    assert failed > len(results) // 3  # the mutations do break files (a fuzzer that only loads is no test)


def test_a_sample_of_mutants_through_the_cli(mutants: list[tuple[str, Path]], tmp_path: Path) -> None:
    from tests.checkpoint_writers import TINY

    rng = random.Random(SEED + 1)
    sample = rng.sample(mutants, 16)
    pack = next(p for _, p in mutants if p.name.endswith("g.safetensors")).with_name("g.safetensors")
    np.save(tmp_path / "w.npy", np.zeros((TINY.generator.n_latent, TINY.generator.style_dim), np.float32))
    failures = []
    with hc.AppForkServer() as server:
        for loader, path in sample:
            source = ["--latent", str(path)] if loader == "latent" else ["--seed", "1"]
            weights = pack if loader == "latent" else path
            outcome = server.run(["generate", "--weights", str(weights), *source, "-o", str(tmp_path / "o.png")],
                                 cwd=tmp_path)
            if outcome.returncode == 0:
                continue  # a harmless mutation (e.g. a flipped bit in a weight)
            problems = hc.bounded_failure_problems(outcome, path.name)
            if problems:
                failures.append(f"{path.name}: {'; '.join(problems)}")
    assert not failures, "\n".join(failures)
