"""Checks that run INSIDE the built app (``build_spec/smoke_test.sh`` calls them).

    mimic --bundle-check                 every bundled module imports, every data file is there,
                                         torch/ONNX/MediaPipe/Qt/PyAV work; exit 1 listing what is missing
    mimic --bundle-probe FILE            frame count and size of a video, or size and contrast of an image
    mimic --bundle-screenshot PNG [ARGS] start the GUI (`mimic gui ARGS`), save a grab of the main window
                                         after $MIMIC_SCREENSHOT_DELAY_MS (default 8000) ms, then quit

These are packaging tests, not user features: they live in build_spec/ and exist only in the bundle.
"""
from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Callable

log = logging.getLogger("mimic.bundle")

MANIFEST_NAME = "mimic_bundle_manifest.json"


def bundle_root() -> Path:
    """The folder holding the bundle's data files (``_internal`` of a one-folder build)."""
    return Path(getattr(sys, "_MEIPASS", Path(__file__).resolve().parent))


def _missing_name(exc: BaseException) -> str:
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return exc.name
    return f"{type(exc).__name__}: {exc}"


def _excluded_by(name: str, excluded: dict[str, str]) -> str | None:
    for key in excluded:
        if name == key or name.startswith(key + "."):
            return key
    return None


class Report:
    """Collects failures; prints one line per check."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    def ok(self, what: str) -> None:
        print(f"ok      {what}", flush=True)

    def note(self, what: str) -> None:
        print(f"note    {what}", flush=True)

    def fail(self, what: str) -> None:
        print(f"MISSING {what}", flush=True)
        self.failures.append(what)

    def run(self, what: str, check: Callable[[], str | None]) -> None:
        try:
            detail = check()
        except Exception as exc:  # noqa: BLE001 - a check reports every error it meets
            self.fail(f"{what}: {_missing_name(exc)}")
            log.debug("%s failed", what, exc_info=True)
            if os.environ.get("MIMIC_BUNDLE_CHECK_TRACEBACK"):
                traceback.print_exc()
        else:
            self.ok(f"{what}{': ' + detail if detail else ''}")


def check_imports(manifest: dict, report: Report) -> None:
    excluded = manifest.get("excluded", {})
    for name in [*manifest["runtime_packages"], *manifest["first_party"]]:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            missing = getattr(exc, "name", None) or ""
            by = _excluded_by(missing, excluded) if missing else None
            if by:
                report.note(f"import {name}: needs {missing}, left out of the bundle on purpose ({excluded[by]})")
            else:
                report.fail(f"import {name}: {_missing_name(exc)}")
        except Exception as exc:  # noqa: BLE001 - e.g. a native library that fails to load
            report.fail(f"import {name}: {type(exc).__name__}: {exc}")
    report.ok(f"imported {len(manifest['first_party'])} first-party modules and "
              f"{len(manifest['runtime_packages'])} runtime packages")


def check_data(manifest: dict, report: Report) -> None:
    root = bundle_root()
    missing = [rel for rel in manifest["data_files"] if not (root / rel).is_file()]
    for rel in missing:
        report.fail(f"data file {rel}")
    if not missing:
        report.ok(f"{len(manifest['data_files'])} data files present")


def check_commands(manifest: dict) -> str:
    """Every sub-command module that was bundled registers with the CLI."""
    import argparse

    from app.cli import build_parser

    parser = build_parser()
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    registered = set(actions[0].choices) if actions else set()
    bundled = set(manifest["first_party"])
    lost = [name for name in manifest["commands"] if f"app.commands.{name}" in bundled
            and name not in registered and name.replace("_", "-") not in registered]
    if lost:
        raise ModuleNotFoundError(f"sub-commands bundled but not registered: {', '.join(lost)}")
    return ", ".join(sorted(registered))


def check_mediapipe() -> str:
    import numpy as np

    from engine.face.landmarks import FaceFinder, FaceMeshDetector, MeshConfig
    from engine.warp.layers import person_alpha

    blank = np.zeros((192, 192, 3), np.uint8)
    detector = FaceMeshDetector(MeshConfig(plain_nose=True))  # the FaceMesh graph with both mesh models
    face = detector.detect(blank)
    detector.close()
    finder = FaceFinder(tiles=False)  # the full-range detector (small faces)
    boxes = finder.find(blank)
    finder.close()
    alpha = person_alpha(blank, np.zeros((478, 3)))  # selfie segmentation (the warp's person layer)
    return (f"FaceMesh, full-range detector and selfie segmentation load (blank frame -> "
            f"{'a face' if face else 'no face'}, {len(boxes)} box(es), person alpha {alpha.shape[1]}x{alpha.shape[0]})")


def check_torch_eager_and_onnx() -> str:
    import torch

    from engine.runtime.runtimes import RuntimeChoice, build_graph

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.LeakyReLU(0.2),
                                torch.nn.Conv2d(8, 3, 1)).eval()
    x = torch.randn(1, 3, 16, 16)
    with torch.inference_mode():
        want = model(x)
    eager = build_graph(model, (x,), RuntimeChoice("eager", "cpu", "fp32", reason="bundle check"))
    with tempfile.TemporaryDirectory() as cache:
        os.environ["MIMIC_CACHE_DIR"] = cache
        onnx = build_graph(model, (x,), RuntimeChoice("onnx", "cpu", "fp32", reason="bundle check"), "bundle-check")
        with torch.inference_mode():
            err = max((eager(x) - want).abs().max().item(), (onnx(x) - want).abs().max().item())
        del os.environ["MIMIC_CACHE_DIR"]
    if err > 1e-4:
        raise AssertionError(f"eager/ONNX Runtime differ from torch by {err:.2e}")
    return f"torch {torch.__version__} eager and ONNX export + ONNX Runtime agree (max err {err:.1e})"


def probe_compile() -> str:
    """torch.compile needs a C++ compiler and headers at run time: reported, never a failure."""
    try:
        import torch

        from engine.runtime.runtimes import RuntimeChoice, build_graph

        model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU())
        build_graph(model, (torch.randn(2, 4),), RuntimeChoice("compile", "cpu", "fp32", reason="bundle check"))
    except Exception as exc:  # noqa: BLE001 - any failure means: not available in this build
        if os.environ.get("MIMIC_BUNDLE_CHECK_TRACEBACK"):
            traceback.print_exc()
        return f"runtime 'compile' does NOT work in this bundle ({_reason(exc)})"
    return "runtime 'compile' works in this bundle (a C++ compiler and headers were found)"


def check_auto_runtime() -> str:
    """`--runtime auto` must resolve to a runtime that works in the bundle (select_runtime raises otherwise)."""
    from engine.runtime.runtimes import runtime_status, select_runtime

    compile_problem = runtime_status()["compile"]
    return f"--runtime auto picks {select_runtime('auto').name}" + (f" (compile: {compile_problem})" if compile_problem else "")


def _reason(exc: BaseException) -> str:
    """One line naming why ``exc`` happened; torch's BackendCompilerFailed puts the real error after 'raised:'."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:  # a C++ compile error: the compiler's own complaint
        if "fatal error:" in line:
            return line.split("fatal error:", 1)[1].strip()[:200]
    for before, after in zip(lines, lines[1:]):
        if before.endswith("raised:"):
            return after[:200]
    return f"{type(exc).__name__}: {lines[0][:200] if lines else ''}"


def check_qt() -> str:
    from PyQt6.QtGui import QGuiApplication, QImageReader

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    formats = {bytes(f).decode() for f in QImageReader.supportedImageFormats()}
    needed = {"png", "jpg", "jpeg", "bmp"}
    if not needed <= formats:
        raise FileNotFoundError(f"Qt image format plugins missing: {sorted(needed - formats)}")
    plugins = bundle_platform_plugins()
    for wanted in ("offscreen", "xcb") if sys.platform.startswith("linux") else ():
        if wanted not in plugins:
            raise FileNotFoundError(f"Qt platform plugin {wanted} not bundled (found {sorted(plugins)})")
    return f"platform {app.platformName()}; platform plugins {sorted(plugins)}; image formats include {sorted(needed)}"


def bundle_platform_plugins() -> set[str]:
    from PyQt6.QtCore import QLibraryInfo

    folder = Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)) / "platforms"
    names = set()
    for path in folder.glob("*"):
        stem = path.name.split(".")[0]
        names.add(stem[len("libq"):] if stem.startswith("libq") else stem[1:] if stem.startswith("q") else stem)
    return names


def check_pyav() -> str:
    import av

    codec = av.codec.Codec("libx264", "w")
    return f"PyAV {av.__version__}, encoder {codec.name} available"


def run_checks(argv: list[str]) -> int:
    manifest_path = bundle_root() / MANIFEST_NAME
    if not manifest_path.is_file():
        print(f"MISSING {MANIFEST_NAME} in {bundle_root()}: is this a Mimic bundle?", file=sys.stderr)
        return 1
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    report = Report()
    check_imports(manifest, report)
    check_data(manifest, report)
    report.run("CLI commands", lambda: check_commands(manifest))
    report.run("Qt", check_qt)
    report.run("PyAV", check_pyav)
    report.run("MediaPipe", check_mediapipe)
    report.run("torch", check_torch_eager_and_onnx)
    if "--no-compile" not in argv:
        report.note(probe_compile())
    report.run("runtime auto", check_auto_runtime)
    if report.failures:
        print(f"bundle check FAILED: {len(report.failures)} problem(s):", file=sys.stderr)
        for failure in report.failures:
            print(f"  {failure}", file=sys.stderr)
        return 1
    print("bundle check passed")
    return 0


def probe(path: Path) -> int:
    """Print what a written file holds; exit 1 if it cannot be read."""
    if not path.is_file():
        print(f"probe: no such file {path}", file=sys.stderr)
        return 1
    if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"):
        import cv2

        image = cv2.imread(str(path))
        if image is None:
            print(f"probe: cannot read image {path}", file=sys.stderr)
            return 1
        print(json.dumps({"kind": "image", "width": image.shape[1], "height": image.shape[0],
                          "std": round(float(image.std()), 2)}))
        return 0
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        print(json.dumps({"kind": "video", "frames": frames, "width": stream.codec_context.width,
                          "height": stream.codec_context.height, "codec": stream.codec_context.name}))
    return 0


def screenshot(path: Path, gui_args: list[str]) -> int:
    """Run ``mimic gui ARGS``; grab the main window after a delay, close it, return non-zero if no PNG was saved."""
    from PyQt6.QtCore import QTimer
    from PyQt6.QtWidgets import QApplication

    from app.cli import main as cli_main
    from app.gui.app import create_app

    delay_ms = int(os.environ.get("MIMIC_SCREENSHOT_DELAY_MS", "8000"))
    app = create_app()  # run_gui reuses this instance
    saved: list[bool] = []

    def grab() -> None:
        windows = [w for w in QApplication.topLevelWidgets() if w.isVisible()]
        if not windows:
            print("screenshot: no visible window", file=sys.stderr)
            app.exit(3)
            return
        window = max(windows, key=lambda w: w.width() * w.height())
        saved.append(window.grab().save(str(path)))
        print(f"screenshot: {window.windowTitle()!r} {window.width()}x{window.height()} -> {path}", flush=True)
        window.close()  # lets the window stop its workers; the app quits with its last window
        QTimer.singleShot(3000, app.quit)

    QTimer.singleShot(delay_ms, grab)
    rc = cli_main(["gui", *gui_args])
    if not (saved and saved[0] and path.is_file()):
        print(f"screenshot: nothing saved to {path}", file=sys.stderr)
        return rc or 3
    return rc
