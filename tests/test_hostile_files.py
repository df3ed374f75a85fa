"""Hostile and malformed files against every command that reads or writes one (docs/weights.md, "Safe loading").

Each case runs `python -m app …` in its own process under RLIMIT_AS = 2 GiB and a 10 s wall limit
and must end with exit code 2, exactly one `error:` line that names the file, no traceback, no
marker file from a payload, and nothing but a regular file ever replaced. The corpus is built here.
"""
from __future__ import annotations

import json
import os
import socket
import stat
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.runtime.weights import import_generator
from tests import hostile_corpus as hc
from tests.checkpoint_writers import (
    NETWORK_SOURCE, TINY, Persistent, nvidia_modules, nvidia_generator, tiny_generator, tiny_inverter, tiny_paper,
    write_latent_npy, write_paper, write_restyle, write_rosinality,
)


@dataclass(frozen=True)
class Case:
    name: str
    argv: list[str]
    names: str  # what the error line must name (the file)
    marker: Path | None = None
    after: Callable[[], str | None] | None = None  # an extra check after the run: a problem, or None


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Case]]:
    d = tmp_path_factory.mktemp("hostile")
    torch.manual_seed(0)
    g = tiny_generator(seed=0)
    rosinality = write_rosinality(d / "g.pt", g)
    pack = import_generator(rosinality, d / "g.safetensors").path
    paper = write_paper(d / "best_model.pt", tiny_paper())
    restyle_inverter = tiny_inverter(g)
    restyle = write_restyle(d / "restyle.pt", restyle_inverter)
    latent = write_latent_npy(d / "w.npy", np.zeros((TINY.generator.n_latent, TINY.generator.style_dim), np.float32))
    out = str(d / "out.png")
    cases: list[Case] = []

    def file(name: str, data: bytes) -> Path:
        (d / name).write_bytes(data)
        return d / name

    def gen_weights(name: str, path: Path, marker: Path | None = None) -> None:
        cases.append(Case(name, ["generate", "--weights", str(path), "--seed", "1", "-o", out], path.name, marker))

    def gen_latent(name: str, path: Path) -> None:
        cases.append(Case(name, ["generate", "--weights", str(pack), "--latent", str(path), "-o", out], path.name))

    # time bombs: memo fan-out, hashing it, nesting
    gen_latent("memo bomb as latent", file("bomb_latent.pkl", hc.memo_bomb()))
    gen_weights("memo bomb as weights", file("bomb.pt", hc.memo_bomb()))
    gen_weights("memo bomb, protocol 4", file("bomb4.pkl", hc.memo_bomb(proto=4)))
    gen_weights("lists filled after memoizing", file("fill.pkl", hc.list_fill_bomb()))
    gen_latent("dict keyed by the bomb", file("hash.pkl", hc.hash_bomb()))
    gen_latent("nested 100k deep", file("deep.pkl", hc.deep_nesting()))
    gen_latent("declares 2^40 bytes", file("huge.pkl", hc.huge_length()))
    gen_weights("memo index 2^32 - 1", file("memo_index.pt", hc.memo_index_bomb()))
    # memory bombs
    gen_weights("zip storage inflating 64 MiB from kB", hc.zip_bomb(d / "zipbomb.pt"))
    gen_weights("legacy storages beyond the file", file("legacy.pt", hc.legacy_storages_beyond_file()))
    torch.save({"x": torch.zeros(1).expand(60000, 60000)}, d / "expand.pt")
    cases.append(Case("stride-0 expand imported", ["import-weights", "--stylegan", str(d / "expand.pt"), "-o",
                                                   str(d / "p.safetensors")], "expand.pt"))
    gen_latent("npy declaring 2^31 floats", file("big.npy", hc.npy_declaring((2**31,))))
    gen_latent("pickled array declaring 2^31 floats", file("big_arr.pkl", hc.pickled_array_declaring(2**31 - 1)))
    gen_latent("pickled array placeholder of 2 GiB", file("placeholder.pkl", hc.pickled_array_placeholder(2**31 - 1)))
    for i, (name, data) in enumerate(hc.allocating_pickles().items()):
        gen_latent(f"latent calling {name}", file(f"alloc{i}.pkl", data))
    cases.append(Case("IR-SE body of 1000 equal units", ["import-weights", "--paper", str(paper), "--restyle",
                                                         str(restyle), "--arcface",
                                                         str(hc.many_encoder_units(d / "units.pth")), "-o",
                                                         str(d / "p.safetensors")], "units.pth"))
    # code payloads (the unpickler refuses them; the marker proves nothing ran)
    marker = d / "pwned"
    gen_weights("os.system payload", file("payload.pkl", hc.code_payload(marker)), marker)
    for i, hidden in enumerate([f"x: __import__('os').system('touch {marker}') = 1\n",
                                f"def f() -> __import__('os').system('touch {marker}'):\n    pass\n",
                                f"def f(a: __import__('os').system('touch {marker}')):\n    pass\n"]):
        gen_weights(f"NVIDIA source: code in annotation {i}", _nvidia(d / f"annot{i}.pkl", g, NETWORK_SOURCE + hidden),
                    marker)
    # malformed but harmless
    state = g.state_dict()
    torch.save({**state, 7: torch.zeros(1)}, d / "intkey.pt")
    gen_weights("non-string state-dict key", d / "intkey.pt")
    torch.save({"g_ema": state, "latent_avg": torch.tensor(1.0)}, d / "avg0d.pt")
    gen_weights("0-d latent_avg (rosinality)", d / "avg0d.pt")
    gen_weights("a module that contains itself", hc.module_cycle(d / "cycle.pkl"))
    gen_weights("NVIDIA img_resolution='abc'", _nvidia(d / "res.pkl", g, NETWORK_SOURCE, img_resolution="abc"))
    gen_weights("truncated zip checkpoint", file("half.pt", rosinality.read_bytes()[: rosinality.stat().st_size // 2]))
    for name, restyle_content in _restyle_variants(restyle).items():
        torch.save(restyle_content, d / f"{name}.pt")
        cases.append(Case(f"ReStyle {name}", ["import-weights", "--paper", str(paper), "--restyle",
                                              str(d / f"{name}.pt"), "-o", str(d / "p.safetensors")], f"{name}.pt"))
    # pack manifests
    tensors, manifest = hc.pack_parts(pack)
    for name, text, new_tensors in _manifest_variants(tensors, manifest):
        gen_weights(f"manifest: {name}", hc.write_pack_with(d / f"m_{name}.safetensors", new_tensors, text))
    # images
    cases.append(Case("image declaring 40000x40000", ["align", str(file("huge.png", hc.png_declaring(40000, 40000))),
                                                      "-o", out], "huge.png"))
    # outputs
    cases.append(Case("align -o x.xyz", ["align", str(d / "huge.png"), "-o", str(d / "x.xyz")], "x.xyz"))
    (d / "folder.png").mkdir()
    cases.append(Case("generate -o a folder", ["generate", "--weights", str(pack), "--seed", "1", "-o",
                                               str(d / "folder.png")], "folder.png"))
    for value in ("-1", str(2**40)):
        cases.append(Case(f"generate --seed {value}", ["generate", "--weights", str(pack), "--seed", value, "-o", out],
                          f"got '{value}'"))
    cases += _special_outputs(d, rosinality)
    # train run --resume reads its own checkpoints through the same loader
    cases.append(Case("resume from a payload", ["train", "run", str(d), "-o", str(d / "run"), "--restyle",
                                                str(restyle), "--resume"], "step_0000001.pt", marker))
    (d / "run" / "checkpoints").mkdir(parents=True)
    (d / "run" / "checkpoints" / "step_0000001.pt").write_bytes(hc.code_payload(marker))
    return d, cases


@pytest.fixture(scope="module")
def server() -> Iterator[hc.AppForkServer]:
    with hc.AppForkServer() as running:
        yield running


def _nvidia(path: Path, g: torch.nn.Module, source: str, **settings: object) -> Path:
    original = Persistent.source
    Persistent.source = source
    try:
        with nvidia_modules() as util:
            g_ema = nvidia_generator(g, util.EasyDict)
            for key, value in settings.items():
                setattr(g_ema, key, value)
            with path.open("wb") as f:
                __import__("pickle").dump({"G_ema": g_ema}, f)
    finally:
        Persistent.source = original
    return path


def _restyle_variants(restyle: Path) -> dict[str, dict]:
    from models.checkpoints.torch_file import read_pickled

    content = read_pickled(restyle)
    return {
        "restyle_avg0d": {**content, "latent_avg": torch.tensor(0.5)},
        "restyle_iters1e9": {**content, "opts": {**content["opts"], "n_iters_per_batch": 10**9}},
        "restyle_iters_str": {**content, "opts": {**content["opts"], "n_iters_per_batch": "5"}},
    }


def _manifest_variants(tensors: dict[str, torch.Tensor], manifest: dict) -> list[tuple[str, str, dict]]:
    def with_config(**changes: object) -> str:
        return json.dumps({**manifest, "configs": {**manifest["configs"],
                                                    "generator": {**manifest["configs"]["generator"], **changes}}})

    first = sorted(k for k in tensors if k.startswith("G.") and tensors[k].ndim > 1)[0]
    return [
        ("list", json.dumps([manifest]), tensors),
        ("no_configs", json.dumps({k: v for k, v in manifest.items() if k != "configs"}), tensors),
        ("unknown_config_key", json.dumps({**manifest, "configs": {**manifest["configs"], "bogus": 1}}), tensors),
        ("nested_100k", "[" * 100_000 + "]" * 100_000, tensors),
        ("size_2e40", with_config(size=2**40), tensors),
        ("channel_max_2e20", with_config(channel_max=2**20), tensors),
        ("style_dim_str", with_config(style_dim="abc"), tensors),
        ("restyle_iters_1e9", json.dumps({**manifest, "configs": {**manifest["configs"], "restyle_iters": 10**9}}),
         tensors),
        ("int64_tensor", json.dumps(manifest), {**tensors, first: tensors[first].to(torch.int64)}),
        ("bool_tensor", json.dumps(manifest), {**tensors, first: tensors[first] > 0}),
    ]


def _special_outputs(d: Path, rosinality: Path) -> list[Case]:
    """import-weights -o at things that are not regular files; each must survive untouched."""
    cases = []
    fifo = d / "fifo.safetensors"
    os.mkfifo(fifo)
    sock_path = d / "sock.safetensors"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    (d / "dir.safetensors").mkdir()
    targets = {"a FIFO": (fifo, stat.S_ISFIFO), "a socket": (sock_path, stat.S_ISSOCK),
               "a folder": (d / "dir.safetensors", stat.S_ISDIR)}
    if os.geteuid() == 0:  # a device node of our own (/dev/full's numbers): a regression replaces only this one
        os.mknod(d / "dev.safetensors", stat.S_IFCHR | 0o666, os.makedev(1, 7))
        targets["a device"] = (d / "dev.safetensors", stat.S_ISCHR)
    if Path("/dev/full").exists():  # links only: a regression would replace the link, never /dev/full itself
        (d / "full.safetensors").symlink_to("/dev/full")
        targets["a link to /dev/full"] = (d / "full.safetensors", stat.S_ISCHR)
        (d / "side.json").symlink_to("/dev/full")  # the manifest copy beside a pack
        targets["a pack whose manifest copy is /dev/full"] = (d / "side.json", stat.S_ISCHR)
    for what, (target, still) in targets.items():
        def after(target: Path = target, still: Callable[[int], bool] = still) -> str | None:
            return None if still(os.stat(target).st_mode) else f"{target} was replaced"
        output = target.with_suffix(".safetensors") if target.suffix == ".json" else target
        cases.append(Case(f"import-weights -o {what}", ["import-weights", "--stylegan", str(rosinality), "-o",
                                                        str(output)], target.name, after=after))
    if os.geteuid() == 0:  # root writes anywhere a mode allows nothing: use a folder no one can create files in
        unwritable = Path("/proc/mimic-test.safetensors")
    else:
        locked = d / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        unwritable = locked / "p.safetensors"
    cases.append(Case("import-weights -o into an unwritable folder", ["import-weights", "--stylegan", str(rosinality),
                                                                      "-o", str(unwritable)], str(unwritable)))
    return cases


def _failures(cases: list[Case], outcomes: list[hc.Outcome]) -> list[str]:
    failures = []
    for case, outcome in zip(cases, outcomes):
        problems = hc.bounded_failure_problems(outcome, case.names, case.marker)
        extra = case.after() if case.after is not None else None
        if extra:
            problems.append(extra)
        if problems:
            failures.append(f"{case.name}: {'; '.join(problems)}")
    return failures


def test_every_hostile_file_fails_in_one_line_within_bounds(corpus: tuple[Path, list[Case]],
                                                            server: hc.AppForkServer) -> None:
    """Every case in a process of its own (forked from one that imported the app once: app.cli.main, the
    function `python -m app` runs), under RLIMIT_AS = 2 GiB and a 10 s wall limit."""
    d, cases = corpus
    outcomes = [server.run(case.argv, cwd=d) for case in cases]
    failures = _failures(cases, outcomes)
    assert not failures, "\n".join(failures)
    assert len(cases) >= 40


@pytest.mark.parametrize("name", ["memo bomb as weights"])
def test_the_real_command_line_fails_the_same_way(corpus: tuple[Path, list[Case]], name: str) -> None:
    """A sample through a real `python -m app` process (not forked), same bounds."""
    d, cases = corpus
    case = next(c for c in cases if c.name == name)
    assert not _failures([case], [hc.run_app(case.argv, cwd=d)])


def test_a_valid_file_still_works_under_the_same_limits(corpus: tuple[Path, list[Case]],
                                                        server: hc.AppForkServer) -> None:
    d, _ = corpus
    outcome = server.run(["generate", "--weights", str(d / "g.safetensors"), "--latent", str(d / "w.npy"),
                          "-o", str(d / "ok.png")], cwd=d)
    assert outcome.returncode == 0, outcome.stderr
    assert (d / "ok.png").is_file()


def test_the_hostile_corpus_is_really_hostile() -> None:
    """The bombs are what they claim under the stock unpickler (checked cheaply: the fan-out is real,
    the payload pickle names os.system), so the test above proves the bounds, not a broken corpus."""
    import pickle
    import pickletools

    small = pickle.loads(hc.memo_bomb(levels=3))
    assert small == ((((None, None), (None, None)), ((None, None), (None, None))),) * 2 or len(str(small)) > 40
    assert pickle.loads(hc.list_fill_bomb(levels=3)) == [[[[], []], [[], []]], [[[], []], [[], []]]]
    names = [arg for op, arg, _ in pickletools.genops(hc.code_payload(Path("/x"))) if op.name == "GLOBAL"]
    assert names == ["os system"]
    assert sys.getrecursionlimit() < 100_000  # the 100k nesting is deeper than any recursive walk can go


def test_a_recording_that_could_not_write_anything_says_so(tmp_path: Path) -> None:
    """A full disk from the first byte (RLIMIT_FSIZE = 0 stands in for it) must not claim a playable part."""
    code = f"""
import resource, signal, numpy as np
from engine.errors import MediaError
from engine.media.video_io import H264Writer
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
writer = H264Writer.live({str(tmp_path / 'rec.mp4')!r}, (64, 48), 30)
try:
    for i in range(60):
        writer.write(np.zeros((48, 64, 3), np.uint8), t_seconds=i / 30)
    writer.close()
    print("no error")
except MediaError as exc:
    print(exc)
"""
    done = __import__("subprocess").run([sys.executable, "-c", code], capture_output=True, text=True, cwd=hc.ROOT,
                                        env=hc._env(), timeout=60)
    assert done.returncode == 0, done.stderr
    assert "disk is full" in done.stdout and "nothing playable was written" in done.stdout, done.stdout
    assert "the part" not in done.stdout


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    from engine.errors import OutputFileError
    from engine.output_file import replacing, write_bytes

    target = write_bytes(tmp_path / "face.png", b"old")
    with pytest.raises(RuntimeError):
        with replacing(target) as tmp:
            tmp.write_bytes(b"half of the new")
            raise RuntimeError("the encoder failed")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["face.png"]
    write_bytes(target, b"new")
    assert target.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["face.png"]
    with pytest.raises(OutputFileError, match="the folder .* does not exist"):
        write_bytes(tmp_path / "missing" / "face.png", b"x")
