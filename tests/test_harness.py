"""The test suite's own rules: test modules never import each other, and a test that leaves a live loop
running or a MediaPipe graph open fails (tests/leak_check.py), shown on a pytest run of a small leaking file."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"


def imported_modules(path: Path) -> set[str]:
    """Every module an import statement of `path` names (inside functions too); relative ones as '.name'."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
    return names


def test_no_test_module_imports_another() -> None:
    """Shared builders live in helper modules (tests/support.py …), so each test module stands alone."""
    def is_test_module(name: str) -> bool:
        return name.rsplit(".", 1)[-1].startswith("test_")

    found = {path.name: sorted(filter(is_test_module, imported_modules(path))) for path in TESTS.glob("*.py")}
    assert {name: mods for name, mods in found.items() if mods} == {}
    assert "tests.support" in imported_modules(TESTS / "test_gui.py")  # the check sees real imports


LEAKY = '''
import pytest

from engine.face.landmarks import FaceMeshDetector, MeshConfig
from engine.live import LivePipeline

KEEP = []  # strong references: what a window or a session would hold


@pytest.fixture(scope="module")
def shared_detector():
    with FaceMeshDetector(MeshConfig(static_images=True)) as detector:  # open for the module: allowed
        yield detector


def test_leaves_a_live_loop_running():
    pipeline = LivePipeline(on_result=lambda result: None)
    pipeline.start()
    KEEP.append(pipeline)


def test_leaves_a_graph_open():
    KEEP.append(FaceMeshDetector(MeshConfig(static_images=True)))


def test_closes_what_it_opens(shared_detector):
    pipeline = LivePipeline(on_result=lambda result: None)
    pipeline.start()
    pipeline.stop()
    with FaceMeshDetector(MeshConfig(static_images=True)):
        pass


def test_after_a_leak_the_next_test_starts_clean():
    assert not any(p.running for p in KEEP if isinstance(p, LivePipeline))
'''


def test_a_leaked_live_loop_or_graph_fails_its_test(tmp_path: Path) -> None:
    (tmp_path / "test_leaky.py").write_text(textwrap.dedent(LEAKY))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # not the project's settings: only the leak check
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.leak_check", "-p", "no:cacheprovider",
                          "-c", str(tmp_path / "pytest.ini"), "-q", "-rA",
                          "test_leaky.py"],
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                         timeout=300)
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    assert "test_leaves_a_live_loop_running leaked: 1 live loop(s) left running" in out, out
    assert "test_leaves_a_graph_open leaked: 1 MediaPipe graph(s) left open" in out, out
    assert "4 passed, 2 errors" in out, out  # each leak is an error of its own test; the clean tests pass
    assert "ERROR test_leaky.py::test_leaves_a_live_loop_running" in out and \
        "PASSED test_leaky.py::test_closes_what_it_opens" in out, out
    assert "terminate called" not in out  # what leaked was closed, and the process ended cleanly
