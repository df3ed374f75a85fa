"""The command line as a newcomer meets it, round two (issue 26): real `python -m app` processes, their
stdout and stderr read as a terminal shows them; and `--runtime auto` choosing by timing the pack's graphs."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app.cli import main
from engine.media.video_io import write_image
from tests.support import tiny_pack

ROOT = Path(__file__).resolve().parents[1]
NOISE = re.compile(r"^(?:[IW]\d{4} \d\d:\d\d:|WARNING: All log messages before absl|INFO: Created TensorFlow Lite)",
                   re.MULTILINE)


def mimic(*args: str, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MIMIC_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.parametrize("output", ["out.xyz", "FOLDER"])
def test_a_bad_output_is_refused_before_any_work(clip, portrait, tmp_path, output) -> None:
    (tmp_path / "FOLDER").mkdir()
    run = mimic("render", "--driving", str(clip), "--target", str(portrait), "-o", str(tmp_path / output),
                cache=tmp_path / "cache")
    assert run.returncode == 2
    assert run.stdout == ""  # nothing built, no target prepared, no progress bar
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("error: cannot write "), run.stderr


def test_a_faceless_target_is_named_on_one_clean_error_line(clip, tmp_path) -> None:
    """`error:` starts its own line (never after a progress bar's carriage return), names the file, and
    MediaPipe's start-up noise is not shown; `reenactor:` once; `-v` shows the noise again."""
    wall = tmp_path / "wall.png"
    write_image(wall, np.full((256, 256, 3), 128, np.uint8))
    run = mimic("render", "--driving", str(clip), "--target", str(wall), "-o", str(tmp_path / "out.mp4"),
                cache=tmp_path / "cache")
    assert run.returncode == 2
    assert run.stdout.count("reenactor:") == 1
    lines = run.stderr.split("\n")
    errors = [line for line in lines if "error:" in line]
    assert errors == ["error: wall.png: no face found in the target image; try a frontal, well-lit portrait"], \
        run.stderr
    assert not NOISE.search(run.stderr), run.stderr
    verbose = mimic("-v", "render", "--driving", str(clip), "--target", str(wall), "-o",
                    str(tmp_path / "out.mp4"), cache=tmp_path / "cache")
    assert verbose.returncode == 2 and NOISE.search(verbose.stderr), verbose.stderr


@pytest.fixture(scope="module")
def pack(tmp_path_factory) -> Path:
    return tiny_pack(tmp_path_factory.mktemp("weights"))[0]


LINE = re.compile(r"^reenactor: StyleGAN2 \(paper\) · (\w+) · CPU · (\w+)(?: \([^)]*\))? — "
                  r"(?:(\d+\.\d)x eager fp32 on this pack|fastest on this pack \(.+\))$", re.MULTILINE)


def test_auto_times_the_packs_own_graphs_and_keeps_the_fastest(pack, fixtures_dir, portrait, tmp_path, monkeypatch,
                                                              capsys) -> None:
    """Item 1: `auto` builds eager fp32 and the runtime it prefers, times them on this pack's graphs, keeps
    the fastest, says so on the runtime line, and keeps the verdict for the next start (no timing then).

    No C++ compiler here (as in a standalone bundle), so the preferred runtime is ONNX: the same choice
    as with `compile`, at a fraction of the build time."""
    import engine.runtime.runtimes as runtimes

    monkeypatch.setenv("MIMIC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(runtimes.shutil, "which", lambda name: None)
    if runtimes.runtime_status()["onnx"] is not None:
        pytest.skip(runtimes.runtime_status()["onnx"])
    args = ["render", "--weights", str(pack), "--driving", str(fixtures_dir / "aligned" / "1.png"),
            "--target", str(portrait)]
    assert main([*args, "-o", str(tmp_path / "one.png")]) == 0
    first = LINE.search(capsys.readouterr().out)
    assert first is not None
    (verdict,) = json.loads((tmp_path / "cache" / "compiled" / "auto_choices.json").read_text()).values()
    assert set(verdict["ms"]) == {"eager fp32", "onnx fp32"}
    fastest = min(verdict["ms"], key=verdict["ms"].get)
    assert verdict["choice"] == fastest and f"{first[1]} {first[2]}" == fastest
    if first[3] is not None:
        assert float(first[3]) == pytest.approx(verdict["ms"]["eager fp32"] / verdict["ms"][fastest], abs=0.051)

    assert main([*args, "-o", str(tmp_path / "two.png"), "--runtime", "eager", "--precision", "fp32"]) == 0
    assert "reenactor: StyleGAN2 (paper) · eager · CPU · fp32\n" in capsys.readouterr().out  # obeyed, not timed

    assert main([*args, "-o", str(tmp_path / "three.png")]) == 0  # the verdict is kept: the same choice
    again = LINE.search(capsys.readouterr().out)
    assert again is not None and again[0] == first[0]


@pytest.mark.parametrize(("args", "message"), [
    (["generate", "--weights", "PACK", "--seed", "1", "-o", "OUT/g.xyz"], "error: cannot write image "),
    (["generate", "--weights", "PACK", "--seed", "1", "-o", "OUT"], "error: cannot write image "),
    (["serve", "--size", "3000"], "error: argument --size: expected an output size, a whole number from 64 to 2048"),
    (["serve", "--port", "70000"], "error: argument --port: expected a port"),
])
def test_a_bad_value_is_one_error_line_without_the_usage_block(pack, tmp_path, args, message) -> None:
    """A wrong output type or folder for `generate`, an out-of-range `serve --size`: one `error:` line
    naming the whole path or the range, never argparse's usage block (that is for malformed command lines)."""
    args = [a.replace("PACK", str(pack)).replace("OUT", str(tmp_path)) for a in args]
    run = mimic(*args, cache=tmp_path / "cache")
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.count("\n") == 1 and run.stderr.startswith(message), run.stderr
    assert "usage:" not in run.stderr
    if args[0] == "generate":
        assert str(tmp_path) in run.stderr  # the path as given, not only its last part
