"""What goes into Mimic's standalone build, computed from the source tree and the installed wheels.

The PyInstaller spec (``build_spec/mimic.spec``) and ``tests/test_packaging.py`` both use this module,
so the fast test checks exactly the lists the build uses. Nothing here imports the app, torch or Qt:
first-party modules are found by walking the source tree, dynamic imports by reading the sources (AST),
third-party data files by locating the installed packages with ``importlib.util.find_spec``.

PyInstaller follows ``import`` statements (function-level ones too) by itself. What it cannot see:
``importlib.import_module(f"app.commands.{name}")`` (the CLI's sub-commands), presence checks such as
``importlib.util.find_spec("onnxruntime")``, and data files read by native code (MediaPipe's graphs and
models). Those are listed here.
"""
from __future__ import annotations

import ast
import fnmatch
import importlib.util
import json
import logging
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

log = logging.getLogger("mimic.packaging")

ROOT = Path(__file__).resolve().parents[1]

# The project's own top-level packages; every module under them is bundled.
FIRST_PARTY = ("app", "engine", "models", "training", "benchmarks")

# The legacy MediaPipe solutions Mimic runs (FaceMesh, the full-range face detector for small faces:
# engine/face/landmarks.py; selfie segmentation for the warp's layers: engine/warp/layers.py) load their
# graphs, whose subgraphs (compiled into the native module) load these models by path relative to the
# mediapipe package. PyInstaller does not collect them by itself.
MEDIAPIPE_MODEL_DIRS = ("modules/face_landmark", "modules/face_detection", "modules/selfie_segmentation")
MEDIAPIPE_REQUIRED = (
    "modules/face_landmark/face_landmark_front_cpu.binarypb",
    "modules/face_landmark/face_landmark.tflite",  # refine_landmarks=False (the warp driver's nose, plain_nose)
    "modules/face_landmark/face_landmark_with_attention.tflite",  # refine_landmarks=True (Mimic's setting)
    "modules/face_detection/face_detection_short_range.tflite",
    "modules/face_detection/face_detection_full_range_cpu.binarypb",  # small faces
    "modules/face_detection/face_detection_full_range_sparse.tflite",
    "modules/selfie_segmentation/selfie_segmentation_cpu.binarypb",  # the warp's person layer
    "modules/selfie_segmentation/selfie_segmentation.tflite",
)
MEDIAPIPE_DATA_SUFFIXES = (".tflite", ".binarypb", ".pbtxt", ".txt")

# Packages the import graph drags in that Mimic never uses at run time -> reason.
# tests/test_packaging.py fails if first-party code starts importing one of them.
EXCLUDES: dict[str, str] = {
    "tensorboard": "training-time logging only; not part of the app",
    "tensorboard_data_server": "tensorboard's server",
    "torch.utils.tensorboard": "imports tensorboard",
    "tensorflow": "not installed; referenced by optional mediapipe/jax code paths",
    "jax": "pulled in by mediapipe's optional model-maker/tasks code; the FaceMesh solution does not use it",
    "jaxlib": "jax's native part (~330 MB installed)",
    "scipy": "no run-time user (checked: render, GUI, ONNX export and the bundle check run without it)",
    "tkinter": "Qt is the GUI toolkit",
    "_tkinter": "Qt is the GUI toolkit",
    "IPython": "interactive shells only",
    "pytest": "tests only",
    "pandas": "not used",
    # Not torch.testing._internal.distributed: torch._dynamo imports its fake_pg (via FSDP) when compiling.
    "torch.testing._internal.opinfo": "torch's operator test database",
    "torch.testing._internal.optests": "torch's operator tests",
}

# First-party packages allowed to import an excluded package -> why (the bundle check notes such modules).
EXCLUDED_USE_ALLOWED: dict[str, str] = {
    "training": "training runs from a source checkout with requirements-test.txt; the app bundle leaves tensorboard out",
}

# Packages first-party code imports only when present (optional extras) -> where they come from.
OPTIONAL: dict[str, str] = {
    "torch_tensorrt": "GPU build only (requirements-gpu.txt)",
    "tensorrt": "GPU build only (requirements-gpu.txt)",
    "dlib": "FFHQ-exact landmarks, optional (requirements-ffhq.txt)",
    "face_recognition_models": "dlib's 68-point model, optional (requirements-ffhq.txt)",
}

# Third-party modules the bundle check imports: the app cannot run without them.
RUNTIME_PACKAGES = (
    "numpy", "cv2", "av", "mediapipe", "PyQt6.QtCore", "PyQt6.QtGui", "PyQt6.QtWidgets",
    "torch", "safetensors", "onnx", "onnxruntime", "tqdm", "PIL", "matplotlib",
)

# Files found by hooks that the app does not need: torch's C++ tests, headers, CMake files and
# build tools. Patterns are matched against the destination path inside the bundle.
PRUNE_PATTERNS = (
    "torch/test/*",
    "torch/bin/*",  # C++ test programs and protoc; torch_shm_manager is kept (KEEP_PATTERNS)
    "torch/include/*",
    "torch/share/*",
    "torch/lib/*.a",
    "torch/lib/libjitbackend_test.so*",
    "torch/lib/libtorchbind_test.so*",
    "torch/lib/libbackend_with_compiler.so*",
    "torch/lib/libaoti_custom_ops.so*",
    "torch/_inductor/codegen/aoti_runtime/*",
    "*.pyi",
    "*/__pycache__/*",
    # Qt: the GTK platform theme (pulls in GTK's cairo/pango stack; Mimic has its own theme) and PDF images
    "PyQt6/Qt6/plugins/platformthemes/libqgtk3.so",
    "PyQt6/Qt6/plugins/imageformats/libqpdf.so",
    "PyQt6/Qt6/lib/libQt6Pdf.so*",
)

# Needed although a PRUNE_PATTERN matches: `import torch` checks that torch_shm_manager exists.
KEEP_PATTERNS = ("torch/bin/torch_shm_manager",)

# Libraries whose symbol table (.symtab, not used for dynamic linking) is stripped: about -95 MB.
# Only torch's own: libraries that auditwheel/patchelf edited (numpy.libs, cv2, av.libs) can break when stripped.
STRIP_PATTERNS = ("torch/lib/libtorch_cpu.so", "torch/lib/libtorch_python.so")

# CUDA libraries; a CPU build must contain none (the CPU torch wheel ships none).
CUDA_PATTERNS = ("nvidia/*", "*libcudnn*", "*libcublas*", "*libcufft*", "*libcusparse*", "*libnccl*",
                 "*libcudart*", "*libnvrtc*", "*libtorch_cuda*")

MANIFEST_NAME = "mimic_bundle_manifest.json"


@dataclass(frozen=True)
class ImportSite:
    """One import statement, or one import by name (``import_module("x")``), in the source."""

    module: str  # the imported module, absolute ("" if it could not be resolved)
    where: str  # file:line
    how: str  # "module" (runs at import time), "function" (inside a def), "by-name" (import_module/find_spec/...)
    pattern: str = ""  # for by-name imports built from a format string: the constant prefix


# ---------------------------------------------------------------------------------------- modules


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files(root: Path = ROOT) -> list[Path]:
    """Every .py file of the first-party packages (packages only: folders with __init__.py)."""
    files: list[Path] = []
    for package in FIRST_PARTY:
        base = root / package
        if not (base / "__init__.py").is_file():
            continue
        for path in sorted(base.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            if all((d / "__init__.py").is_file() for d in path.parents if base in (d, *d.parents)):
                files.append(path)
    return files


def first_party_modules(root: Path = ROOT) -> list[str]:
    """Dotted names of every first-party module and package."""
    return sorted({_module_name(root, p) for p in source_files(root)})


def cli_commands(root: Path = ROOT) -> tuple[str, ...]:
    """The names in ``app.cli.COMMANDS``, read from the source (not imported)."""
    tree = ast.parse((root / "app" / "cli.py").read_text(encoding="utf-8"))
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == "COMMANDS" for t in targets) and node.value is not None:
            value = ast.literal_eval(node.value)
            return tuple(value)
    raise ValueError("app/cli.py defines no COMMANDS tuple")


def command_modules(root: Path = ROOT) -> list[str]:
    """``app.commands.<name>`` for every name in COMMANDS whose module exists in this copy."""
    return [f"app.commands.{name}" for name in cli_commands(root)
            if (root / "app" / "commands" / f"{name}.py").is_file()]


# -------------------------------------------------------------------------------- import scanning

_BY_NAME_CALLS = {"import_module", "find_spec", "__import__"}


def _call_name(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


def _by_name_wrappers(tree: ast.Module) -> set[str]:
    """Module-level functions that pass one of their parameters to import_module/find_spec (e.g. ``_has``)."""
    wrappers = set()
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        params = {a.arg for a in node.args.args}
        for call in ast.walk(node):
            if (isinstance(call, ast.Call) and _call_name(call.func) in _BY_NAME_CALLS and call.args
                    and isinstance(call.args[0], ast.Name) and call.args[0].id in params):
                wrappers.add(node.name)
    return wrappers


def _resolve_from(module: str, package: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = package.split(".")
    base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
    return ".".join([*base, *([node.module] if node.module else [])])


def _is_package(root: Path, module: str) -> bool:
    return (root / Path(*module.split(".")) / "__init__.py").is_file()


def _iter_nodes(tree: ast.AST, in_function: bool = False):
    """(node, in_function) for every node; in_function is True below a def or lambda."""
    for child in ast.iter_child_nodes(tree):
        yield child, in_function
        nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        yield from _iter_nodes(child, nested)


def scan_imports(path: Path, root: Path = ROOT) -> list[ImportSite]:
    """Every import in ``path``: at import time ("module"), inside functions ("function"), by name ("by-name")."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    module = _module_name(root, path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    rel = path.relative_to(root).as_posix()
    wrappers = _by_name_wrappers(tree)
    # calls inside a wrapper that pass the wrapper's own parameter on: resolved at the wrapper's call sites
    wrapper_params = {id(call): {a.arg for a in fn.args.args}
                      for fn in tree.body if isinstance(fn, ast.FunctionDef) and fn.name in wrappers
                      for call in ast.walk(fn) if isinstance(call, ast.Call)}
    sites: list[ImportSite] = []
    for node, in_function in _iter_nodes(tree):
        where = f"{rel}:{getattr(node, 'lineno', 0)}"
        how = "function" if in_function else "module"
        if isinstance(node, ast.Import):
            sites.extend(ImportSite(alias.name, where, how) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_from(module, package, node)
            if base == "__future__":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                # `from pkg import sub` imports a submodule when `sub` is one; else a name from pkg.
                is_sub = (root / Path(*sub.split("."))).with_suffix(".py").is_file() or _is_package(root, sub)
                sites.append(ImportSite(sub if is_sub else base, where, how))
        elif isinstance(node, ast.Call) and node.args and (
                _call_name(node.func) in _BY_NAME_CALLS or _call_name(node.func) in wrappers):
            site = _by_name_site(node, where, wrapper_params)
            if site is not None:
                sites.append(site)
    return sites


def _by_name_site(call: ast.Call, where: str, wrapper_params: dict[int, set[str]]) -> ImportSite | None:
    """The module a by-name import call names; None for a wrapper's own pass-through of its parameter."""
    arg = call.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return ImportSite(arg.value, where, "by-name")
    if isinstance(arg, ast.JoinedStr):
        head = arg.values[0] if arg.values else None
        prefix = head.value if isinstance(head, ast.Constant) and isinstance(head.value, str) else ""
        return ImportSite("", where, "by-name", pattern=prefix)
    if isinstance(arg, ast.Name) and arg.id in wrapper_params.get(id(call), set()):
        return None
    return ImportSite("", where, "by-name")


def dynamic_imports(root: Path = ROOT) -> list[ImportSite]:
    """Every function-level and by-name import across the first-party packages."""
    return [site for path in source_files(root) for site in scan_imports(path, root) if site.how != "module"]


def import_time_closure(start: list[str], root: Path = ROOT) -> dict[str, str]:
    """Every module imported (transitively, through first-party modules) when ``start`` modules are imported,
    mapped to the first place that imports it. Function-level and by-name imports are not followed."""
    files = {_module_name(root, p): p for p in source_files(root)}
    seen: dict[str, str] = {name: "(start)" for name in start}
    todo = [name for name in start if name in files]
    while todo:
        current = todo.pop()
        for site in scan_imports(files[current], root):
            if site.how != "module" or site.module in seen:
                continue
            seen[site.module] = site.where
            parts = site.module.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a, a.b, a.b.c
                name = ".".join(parts[:i])
                if name in files and name not in todo and (name == site.module or name not in seen):
                    seen.setdefault(name, site.where)
                    todo.append(name)
    return seen


def _top(module: str) -> str:
    return module.split(".")[0]


def is_first_party(module: str) -> bool:
    return _top(module) in FIRST_PARTY


def excluded_by(module: str) -> str | None:
    """The EXCLUDES entry that removes ``module`` from the bundle, if any."""
    for name in EXCLUDES:
        if module == name or module.startswith(name + "."):
            return name
    return None


def optional_reason(module: str) -> str | None:
    return OPTIONAL.get(_top(module))


def installed(module: str) -> bool:
    """Whether the top-level package of ``module`` is installed here (without importing it)."""
    try:
        return importlib.util.find_spec(_top(module)) is not None
    except (ImportError, ValueError):
        return False


def hidden_imports(root: Path = ROOT) -> list[str]:
    """Modules to force into the bundle: every first-party module (which covers the CLI's sub-commands
    and any ``import_module`` of a first-party name), and the installed third-party modules that are
    imported only inside functions or looked up by name (``find_spec("onnxruntime")``). OPTIONAL packages
    go in when installed (a GPU environment's torch_tensorrt), and are left out quietly otherwise."""
    names = set(first_party_modules(root)) | set(command_modules(root))
    for site in dynamic_imports(root):
        if not site.module or is_first_party(site.module) or excluded_by(site.module):
            continue
        if installed(site.module):
            names.add(site.module)
        elif not optional_reason(site.module):
            log.warning("%s imports %s, which is not installed: not bundled", site.where, site.module)
    return sorted(names)


def excludes() -> list[str]:
    return sorted(EXCLUDES)


# -------------------------------------------------------------------------------------- data files


def package_dir(name: str) -> Path | None:
    """The installed folder of a top-level package, found without importing it."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def mediapipe_datas() -> list[tuple[str, str]]:
    """(source file, destination folder) for the graphs and models of the installed mediapipe that Mimic runs."""
    base = package_dir("mediapipe")
    if base is None:
        log.warning("mediapipe is not installed: its models are not bundled")
        return []
    entries = []
    for folder in MEDIAPIPE_MODEL_DIRS:
        for path in sorted((base / folder).glob("*")):
            if path.is_file() and path.suffix in MEDIAPIPE_DATA_SUFFIXES:
                entries.append((str(path), f"mediapipe/{folder}"))
    missing = [r for r in MEDIAPIPE_REQUIRED if not (base / r).is_file()]
    if missing:
        raise FileNotFoundError(f"the installed mediapipe ({base}) lacks model files: {', '.join(missing)}")
    return entries


def asset_datas(root: Path = ROOT) -> list[tuple[str, str]]:
    """Every file under ``assets/`` at the same relative place in the bundle (none in a copy without assets)."""
    base = root / "assets"
    if not base.is_dir():
        return []
    return [(str(p), (Path("assets") / p.parent.relative_to(base)).as_posix())
            for p in sorted(base.rglob("*")) if p.is_file() and "__pycache__" not in p.parts]


PACKAGE_DATA_DIRS = ("engine/server/static",)  # first-party files read with importlib.resources


def package_datas(root: Path = ROOT) -> list[tuple[str, str]]:
    """First-party data files next to their modules (the server's browser page)."""
    return [(str(p), folder) for folder in PACKAGE_DATA_DIRS for p in sorted((root / folder).glob("*"))
            if p.is_file()]


def datas(root: Path = ROOT) -> list[tuple[str, str]]:
    return mediapipe_datas() + asset_datas(root) + package_datas(root)


def data_destinations(entries: list[tuple[str, str]]) -> list[str]:
    """Bundle-relative paths of (source, destination folder) data entries."""
    return sorted((Path(dest) / Path(src).name).as_posix() for src, dest in entries)


# ----------------------------------------------------------------------------------------- pruning


def _matches(dest: str, patterns: tuple[str, ...]) -> bool:
    dest = dest.replace("\\", "/")
    return any(fnmatch.fnmatch(dest, p) for p in patterns)


def prune(toc: list[tuple]) -> list[tuple]:
    """A PyInstaller TOC (``(dest, source, kind)`` entries) without the files the app does not need."""
    kept = [entry for entry in toc if _matches(entry[0], KEEP_PATTERNS) or not _matches(entry[0], PRUNE_PATTERNS)]
    log.info("pruned %d of %d entries", len(toc) - len(kept), len(toc))
    return kept


def prune_binaries(toc: list[tuple], imports: Callable[[str], set[str]]) -> list[tuple]:
    """``prune`` for binaries, also dropping the top-level libraries that only pruned files needed
    (e.g. GTK's stack behind the GTK platform theme). ``imports(source)`` gives the file names of the
    libraries a binary links against (PyInstaller's bindepend.get_imports)."""
    kept = prune(toc)
    kept_names = {entry[0] for entry in kept}
    removed = [entry for entry in toc if entry[0] not in kept_names]
    if not removed:
        return kept
    top_level = {entry[0] for entry in kept if "/" not in entry[0].replace("\\", "/")}
    wanted_by_removed = {name for entry in removed for name in imports(entry[1])} & top_level
    if not wanted_by_removed:
        return kept
    still_needed = {name for entry in kept if entry[0] not in top_level for name in imports(entry[1])}
    orphans = wanted_by_removed - still_needed
    log.info("dropped %d libraries only pruned files needed: %s", len(orphans), ", ".join(sorted(orphans)))
    return [entry for entry in kept if entry[0] not in orphans]


def strip_symbols(toc: list[tuple], workdir: Path) -> list[tuple]:
    """Entries matching STRIP_PATTERNS point to stripped copies in ``workdir`` (Linux, with binutils' strip)."""
    strip = shutil.which("strip")
    if not sys.platform.startswith("linux") or strip is None:
        log.info("not stripping symbols (needs Linux and binutils' strip)")
        return toc
    out = []
    for dest, src, kind in toc:
        if _matches(dest, STRIP_PATTERNS):
            target = workdir / "stripped" / dest
            if not target.is_file() or target.stat().st_mtime < Path(src).stat().st_mtime:
                target.parent.mkdir(parents=True, exist_ok=True)
                subprocess.run([strip, "--strip-unneeded", "-o", str(target), src], check=True)
            log.info("stripped %s: %.0f -> %.0f MB", dest, Path(src).stat().st_size / 1e6, target.stat().st_size / 1e6)
            src = str(target)
        out.append((dest, src, kind))
    return out


def cuda_entries(toc: list[tuple]) -> list[str]:
    return [entry[0] for entry in toc if _matches(entry[0], CUDA_PATTERNS)]


# ---------------------------------------------------------------------------------------- manifest


def manifest(root: Path = ROOT) -> dict:
    """What the bundle check (``mimic --bundle-check``) expects to find inside the built app."""
    return {
        "first_party": first_party_modules(root),
        "commands": list(cli_commands(root)),
        "runtime_packages": [m for m in RUNTIME_PACKAGES if installed(m)],
        "data_files": data_destinations(datas(root)),
        "excluded": EXCLUDES,
        "optional": OPTIONAL,
    }


def write_manifest(path: Path, root: Path = ROOT) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest(root), indent=1), encoding="utf-8")
    return path
