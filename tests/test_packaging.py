"""The standalone build's contents, checked WITHOUT building.

build_spec/mimic.spec is executed with stand-ins for PyInstaller's Analysis/PYZ/EXE/COLLECT, so these tests
see exactly the hidden imports, data files and exclusions the real build gets. The build itself and its
smoke test run with `make dist` (docs/packaging.md).
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPEC_DIR = ROOT / "build_spec"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_packaging_{name}", SPEC_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module through sys.modules
    spec.loader.exec_module(module)
    return module


bc = _load("bundle_contents")


class _Recorder:
    """Stands in for one PyInstaller spec class; remembers its arguments."""

    calls: dict[str, list] = {}

    def __init__(self, *args, **kwargs) -> None:
        type(self).calls.setdefault(type(self).__name__, []).append((args, kwargs))
        self.args, self.kwargs = args, kwargs
        # what the spec reads from an Analysis
        self.pure, self.scripts = [], []
        self.binaries = [("torch/lib/libtorch_cpu.so", "/x/libtorch_cpu.so", "BINARY"),
                         ("torch/lib/libtorchbind_test.so", "/x/libtorchbind_test.so", "BINARY")]
        self.datas = [("torch/bin/test_api", "/x/test_api", "DATA"),
                      *[(f"{dest}/{Path(src).name}", src, "DATA") for src, dest in kwargs.get("datas", [])]]


@pytest.fixture(scope="module")
def spec_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Execute mimic.spec with recording stand-ins; returns the Analysis call and the spec's globals."""
    work = tmp_path_factory.mktemp("pyinstaller-work")
    classes = {name: type(name, (_Recorder,), {"calls": {}}) for name in ("Analysis", "PYZ", "EXE", "COLLECT", "BUNDLE")}
    namespace = {"SPECPATH": str(SPEC_DIR), "workpath": str(work), "DISTPATH": str(work / "dist"),
                 "specnm": "mimic", **classes}
    code = compile((SPEC_DIR / "mimic.spec").read_text(encoding="utf-8"), str(SPEC_DIR / "mimic.spec"), "exec")
    # PyInstaller itself is not needed: its binary-dependency lookup is replaced by "links nothing".
    bindepend = ModuleType("PyInstaller.depend.bindepend")
    bindepend.get_imports = lambda filename, search_paths=None: set()
    stand_ins = {"PyInstaller": ModuleType("PyInstaller"), "PyInstaller.depend": ModuleType("PyInstaller.depend"),
                 "PyInstaller.depend.bindepend": bindepend}
    stand_ins["PyInstaller.depend"].bindepend = bindepend
    stand_ins["PyInstaller"].depend = stand_ins["PyInstaller.depend"]
    saved_path, saved_modules = list(sys.path), {k: sys.modules.get(k) for k in stand_ins}
    saved_strip = os.environ.get("MIMIC_STRIP")
    sys.modules.update(stand_ins)
    os.environ["MIMIC_STRIP"] = "0"  # the stand-in Analysis lists files that do not exist
    try:
        exec(code, namespace)  # noqa: S102 - the project's own spec file
    finally:
        sys.path[:] = saved_path
        sys.modules.pop("bundle_contents", None)
        if saved_strip is None:
            os.environ.pop("MIMIC_STRIP", None)
        else:
            os.environ["MIMIC_STRIP"] = saved_strip
        for name, module in saved_modules.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    (args, kwargs), = classes["Analysis"].calls["Analysis"]
    return {"args": args, "kwargs": kwargs, "globals": namespace, "work": work}


def _hidden(spec_run: dict) -> set[str]:
    return set(spec_run["kwargs"]["hiddenimports"])


def _data_destinations(spec_run: dict) -> set[str]:
    return set(bc.data_destinations(spec_run["kwargs"]["datas"]))


# ------------------------------------------------------------------------------------------ modules


def test_spec_entry_script_and_paths(spec_run: dict) -> None:
    (scripts,) = spec_run["args"]
    assert [Path(s).name for s in scripts] == ["mimic_main.py"]
    assert str(ROOT) in spec_run["kwargs"]["pathex"]
    assert "bundle_check" in _hidden(spec_run)


def test_every_cli_command_is_bundled(spec_run: dict) -> None:
    from app.cli import COMMANDS

    assert bc.cli_commands(ROOT) == COMMANDS  # the source reading agrees with the module
    present = [name for name in COMMANDS if (ROOT / "app" / "commands" / f"{name}.py").is_file()]
    assert present, "no sub-command modules found"
    missing = [name for name in present if f"app.commands.{name}" not in _hidden(spec_run)]
    assert not missing, f"sub-commands not in the spec's hiddenimports: {missing}"


def test_every_first_party_module_is_bundled(spec_run: dict) -> None:
    on_disk = {bc._module_name(ROOT, p) for package in bc.FIRST_PARTY for p in (ROOT / package).rglob("*.py")
               if "__pycache__" not in p.parts
               and all((d / "__init__.py").is_file() for d in p.parents if ROOT in d.parents)}
    missing = sorted(on_disk - _hidden(spec_run))
    assert not missing, f"first-party modules the spec does not collect: {missing}"


def test_dynamic_first_party_imports_are_bundled(spec_run: dict) -> None:
    hidden = _hidden(spec_run)
    sites = bc.dynamic_imports(ROOT)
    assert any(s.pattern == "app.commands." for s in sites), "the CLI's import_module(f'app.commands.{name}') was not found"
    problems = []
    for site in sites:
        if site.module and bc.is_first_party(site.module) and site.module not in hidden:
            problems.append(f"{site.where}: {site.module} not collected")
        elif not site.module and not site.pattern:
            problems.append(f"{site.where}: import by a name the spec cannot know; list it in build_spec/bundle_contents.py")
        elif site.pattern:
            prefix = site.pattern.rstrip(".")
            under = [m for m in bc.first_party_modules(ROOT) if m.startswith(site.pattern)]
            if not bc.is_first_party(prefix) or not under or not set(under) <= hidden:
                problems.append(f"{site.where}: import_module(f'{site.pattern}...') not covered")
    assert not problems, "\n".join(problems)


def test_third_party_dynamic_imports_are_bundled_or_declared(spec_run: dict) -> None:
    hidden = _hidden(spec_run)
    problems = []
    for site in bc.dynamic_imports(ROOT):
        if not site.module or bc.is_first_party(site.module):
            continue
        if bc.optional_reason(site.module):
            continue
        if bc.excluded_by(site.module):
            if site.where.split("/")[0] not in bc.EXCLUDED_USE_ALLOWED:
                problems.append(f"{site.where}: imports {site.module}, which the spec excludes")
        elif not bc.installed(site.module):
            problems.append(f"{site.where}: {site.module} is neither installed nor declared OPTIONAL")
        elif site.module not in hidden:
            problems.append(f"{site.where}: {site.module} not in hiddenimports")
    assert not problems, "\n".join(problems)


def test_cli_imports_no_excluded_package_at_import_time() -> None:
    """What `mimic --help` imports must all be in the bundle, or the whole CLI breaks."""
    start = ["app.cli", "app.__main__", *bc.command_modules(ROOT)]
    closure = bc.import_time_closure(start, ROOT)
    bad = {m: where for m, where in closure.items() if bc.excluded_by(m) or bc.optional_reason(m)}
    assert not bad, f"imported when the CLI starts but left out of the bundle: {bad}"


def test_excluded_packages_used_only_where_allowed() -> None:
    bad = []
    for path in bc.source_files(ROOT):
        for site in bc.scan_imports(path, ROOT):
            if site.module and bc.excluded_by(site.module) and site.where.split("/")[0] not in bc.EXCLUDED_USE_ALLOWED:
                bad.append(f"{site.where}: {site.module} ({bc.EXCLUDES[bc.excluded_by(site.module)]})")
    assert not bad, "code imports packages build_spec/bundle_contents.py EXCLUDES:\n" + "\n".join(bad)


def test_spec_excludes_unused_heavy_packages(spec_run: dict) -> None:
    excludes = set(spec_run["kwargs"]["excludes"])
    assert {"tensorboard", "jax", "jaxlib", "tkinter", "torch.utils.tensorboard"} <= excludes
    assert not excludes & {"torch", "PyQt6", "mediapipe", "cv2", "av", "onnxruntime", "onnx", "numpy", "matplotlib"}


def test_prune_drops_torch_tests_and_keeps_runtime_libraries(spec_run: dict) -> None:
    analysis = spec_run["globals"]["a"]
    binaries = [entry[0] for entry in analysis.binaries]
    assert "torch/lib/libtorch_cpu.so" in binaries
    assert "torch/lib/libtorchbind_test.so" not in binaries
    assert "torch/bin/test_api" not in [entry[0] for entry in analysis.datas]
    assert bc.prune([("mediapipe/modules/face_landmark/face_landmark.tflite", "x", "DATA"),
                     ("torch/include/ATen/ATen.h", "x", "DATA"),
                     ("torch/test/test_jit", "x", "DATA")]) == [
        ("mediapipe/modules/face_landmark/face_landmark.tflite", "x", "DATA")]


def test_prune_drops_libraries_only_pruned_plugins_needed() -> None:
    links = {"/qt/libqgtk3.so": {"libcairo.so.2", "libglib-2.0.so.0"},
             "/qt/libQt6Gui.so.6": {"libglib-2.0.so.0", "libfontconfig.so.1"}}
    toc = [("PyQt6/Qt6/plugins/platformthemes/libqgtk3.so", "/qt/libqgtk3.so", "BINARY"),
           ("PyQt6/Qt6/lib/libQt6Gui.so.6", "/qt/libQt6Gui.so.6", "BINARY"),
           ("libcairo.so.2", "/usr/lib/libcairo.so.2", "BINARY"),
           ("libglib-2.0.so.0", "/usr/lib/libglib-2.0.so.0", "BINARY"),
           ("libfontconfig.so.1", "/usr/lib/libfontconfig.so.1", "BINARY"),
           ("libpython3.11.so.1.0", "/usr/lib/libpython3.11.so.1.0", "BINARY")]  # loaded by the bootloader
    kept = bc.prune_binaries(toc, lambda src: links.get(src, set()))
    assert [entry[0] for entry in kept] == ["PyQt6/Qt6/lib/libQt6Gui.so.6", "libglib-2.0.so.0",
                                            "libfontconfig.so.1", "libpython3.11.so.1.0"]


@pytest.mark.skipif(shutil.which("strip") is None or not sys.platform.startswith("linux"), reason="needs Linux + strip")
def test_strip_symbols_points_to_smaller_copies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch_dir = bc.package_dir("torch")
    lib = torch_dir / "lib" / "libc10.so" if torch_dir else None
    if lib is None or not lib.is_file():
        pytest.skip("torch's libc10.so not found")
    monkeypatch.setattr(bc, "STRIP_PATTERNS", ("torch/lib/libc10.so",))
    other = ("torch/lib/libshm.so", str(lib.parent / "libshm.so"), "BINARY")
    out = bc.strip_symbols([("torch/lib/libc10.so", str(lib), "BINARY"), other], tmp_path)
    stripped = Path(out[0][1])
    assert stripped == tmp_path / "stripped" / "torch" / "lib" / "libc10.so"
    assert stripped.read_bytes()[:4] == b"\x7fELF" and 0 < stripped.stat().st_size <= lib.stat().st_size
    assert out[1] == other


# -------------------------------------------------------------------------------------- data files


def test_mediapipe_face_mesh_models_are_in_datas(spec_run: dict) -> None:
    base = bc.package_dir("mediapipe")
    if base is None:
        pytest.skip("mediapipe is not installed")
    destinations = _data_destinations(spec_run)
    for rel in bc.MEDIAPIPE_REQUIRED:
        assert (base / rel).is_file(), f"the installed mediapipe lacks {rel}"
        assert f"mediapipe/{rel}" in destinations
    face_mesh = sorted(p.relative_to(base).as_posix() for folder in bc.MEDIAPIPE_MODEL_DIRS
                       for p in (base / folder).glob("*") if p.suffix in (".tflite", ".binarypb"))
    assert {f"mediapipe/{rel}" for rel in face_mesh} <= destinations


def test_facemesh_graph_names_only_bundled_models() -> None:
    """Every model path in the FaceMesh graph file is one the spec bundles."""
    base = bc.package_dir("mediapipe")
    if base is None:
        pytest.skip("mediapipe is not installed")
    graph = (base / "modules/face_landmark/face_landmark_front_cpu.binarypb").read_bytes()
    import re

    named = {m.decode() for m in re.findall(rb"mediapipe/modules/[\w/]+\.(?:tflite|binarypb)", graph)}
    bundled = set(bc.data_destinations(bc.mediapipe_datas()))
    assert named <= bundled


def test_assets_folder_is_bundled(spec_run: dict, tmp_path: Path) -> None:
    (tmp_path / "assets" / "icons").mkdir(parents=True)
    (tmp_path / "assets" / "icons" / "mimic.png").write_bytes(b"\x89PNG")
    (tmp_path / "assets" / "about.txt").write_text("Mimic")
    assert bc.asset_datas(tmp_path) == [
        (str(tmp_path / "assets" / "about.txt"), "assets"),
        (str(tmp_path / "assets" / "icons" / "mimic.png"), "assets/icons"),
    ]
    assert bc.asset_datas(tmp_path / "nowhere") == []
    real = {p.relative_to(ROOT).as_posix() for p in (ROOT / "assets").rglob("*") if p.is_file()} \
        if (ROOT / "assets").is_dir() else set()
    assert real <= _data_destinations(spec_run)


def test_server_page_is_bundled(spec_run: dict) -> None:
    """`mimic serve` reads its page with importlib.resources: the files go in beside the modules."""
    assert {"engine/server/static/index.html", "engine/server/static/client.js"} <= _data_destinations(spec_run)


def test_manifest_lists_what_the_bundle_check_expects(spec_run: dict) -> None:
    manifest = json.loads((spec_run["work"] / bc.MANIFEST_NAME).read_text())
    assert manifest["first_party"] == bc.first_party_modules(ROOT)
    assert set(manifest["data_files"]) | {bc.MANIFEST_NAME} == _data_destinations(spec_run)
    assert (str(spec_run["work"] / bc.MANIFEST_NAME), ".") in spec_run["kwargs"]["datas"]


# ------------------------------------------------------------------------------- the import scanner


def test_scanner_finds_every_dynamic_form(tmp_path: Path) -> None:
    pkg = tmp_path / "app"
    (pkg / "commands").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "commands" / "__init__.py").write_text("")
    (pkg / "commands" / "go.py").write_text("")
    (pkg / "cli.py").write_text(
        "import importlib\nimport importlib.util\nimport json\n"
        "COMMANDS = ('go', 'later')\n"
        "def _has(name):\n    return importlib.util.find_spec(name) is not None\n"
        "def load(n):\n"
        "    importlib.import_module(f'app.commands.{n}')\n"
        "    importlib.import_module('app.commands.go')\n"
        "    from .commands import go\n"
        "    import tqdm\n"
        "    name = n.upper()\n"
        "    return _has('onnxruntime'), importlib.import_module(name)\n"
    )
    sites = {(s.module, s.how, s.pattern) for s in bc.scan_imports(pkg / "cli.py", tmp_path)}
    assert sites == {
        ("importlib", "module", ""), ("importlib.util", "module", ""), ("json", "module", ""),
        ("", "by-name", "app.commands."), ("app.commands.go", "by-name", ""), ("app.commands.go", "function", ""),
        ("tqdm", "function", ""), ("onnxruntime", "by-name", ""), ("", "by-name", ""),
    }
    assert bc.cli_commands(tmp_path) == ("go", "later")
    assert bc.command_modules(tmp_path) == ["app.commands.go"]
    assert bc.first_party_modules(tmp_path) == ["app", "app.cli", "app.commands", "app.commands.go"]


# ------------------------------------------------------------------------ entry point, smoke script


def test_entry_point_probes_an_image(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import numpy as np
    from PIL import Image

    sys.path.insert(0, str(SPEC_DIR))
    try:
        entry = _load("mimic_main")
        image = np.zeros((20, 30, 3), np.uint8)
        image[:, 15:] = 200
        Image.fromarray(image).save(tmp_path / "shot.png")
        assert entry.main(["--bundle-probe", str(tmp_path / "shot.png")]) == 0
        probe = json.loads(capsys.readouterr().out)
        assert (probe["kind"], probe["width"], probe["height"]) == ("image", 30, 20) and probe["std"] > 50
        assert entry.main(["--bundle-probe", str(tmp_path / "absent.png")]) == 1
    finally:
        sys.path.remove(str(SPEC_DIR))
        sys.modules.pop("bundle_check", None)


@pytest.mark.skipif(shutil.which("bash") is None or os.name == "nt", reason="needs bash")
def test_smoke_script_names_missing_modules_and_skips_without_fixtures(tmp_path: Path) -> None:
    """The smoke script against a stand-in bundle whose self-check reports a missing module."""
    dist = tmp_path / "dist" / "mimic"
    dist.mkdir(parents=True)
    fake = dist / "mimic"
    fake.write_text(
        "#!/usr/bin/env bash\n"
        'case "$1" in\n'
        "  --help) echo 'usage: mimic {gui,render}'; echo render ;;\n"
        "  --bundle-check) echo \"MISSING import engine.warp: No module named 'scipy'\"; exit 1 ;;\n"
        "  *) exit 9 ;;\n"
        "esac\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    env = {**os.environ, "MIMIC_FIXTURES": str(tmp_path / "no-fixtures"), "MIMIC_SMOKE_NO_GUI": "1",
           "MIMIC_SMOKE_OUT": str(tmp_path / "out")}
    result = subprocess.run(["bash", str(SPEC_DIR / "smoke_test.sh"), str(dist)], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "PASS  mimic --help" in result.stdout
    assert "SKIP  render: fixture" in result.stdout and "no-fixtures" in result.stdout
    assert "FAIL  mimic --bundle-check" in result.stderr
    assert "missing: MISSING import engine.warp: No module named 'scipy'" in result.stderr
