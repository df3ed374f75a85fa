"""The layer rules as import contracts (.importlinter, checked by import-linter on every import statement,
including the ones inside functions): the app never imports torch itself, engine/models/training never
import Qt or the app, the app reaches the networks through engine, data flows one way."""
from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("importlinter", reason="import-linter is a test requirement (requirements-test.txt)")


def lint(config: Path) -> subprocess.CompletedProcess:
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(sys.argv[1], no_cache=True))"
    return subprocess.run([sys.executable, "-c", code, str(config)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def test_every_layer_contract_is_kept() -> None:
    out = lint(ROOT / ".importlinter")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    contracts = configparser.ConfigParser()
    contracts.read(ROOT / ".importlinter")
    names = {s.split(":")[-1] for s in contracts.sections() if s.startswith("importlinter:contract:")}
    assert names == {"gui-no-torch", "engine-no-qt", "commands-through-engine", "layers", "media-alone", "face-alone",
                     "reenactors-independent", "warp-no-runtime", "torch-where-networks-run", "session-parts-independent",
                     "values-pure"}
    assert out.stdout.count(" KEPT") == len(names)


def test_a_broken_rule_is_caught(tmp_path: Path) -> None:
    """The checker is live: the same rules with the engine allowed nothing at all fail on real imports."""
    config = (ROOT / ".importlinter").read_text().replace(
        "forbidden_modules =\n    PyQt6\n    app", "forbidden_modules =\n    PyQt6\n    app\n    numpy")
    (tmp_path / "contracts.ini").write_text(config)
    out = lint(tmp_path / "contracts.ini")
    assert out.returncode != 0 and "engine" in out.stdout and "numpy" in out.stdout
