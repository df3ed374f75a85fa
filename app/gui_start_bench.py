"""Time to the first frame in the app: window open → first output frame of the paper model.

Each start is a fresh process running the real window (offscreen Qt), as a user's launch is: the
window opens with the landmark warp, the model pack loads on a worker thread (its progress messages
recorded with their times), and the first output frame of the paper model is timed from the moment
the window is shown. *cold*: an empty cache dir (the fold and the compiled graphs are built); *warm*:
the second start with the same pack and settings (everything loaded from the cache). The target is
an identity latent (no inversion), the source a looped video with a face.

    python -m app.gui_start_bench --config paper-1024 --runtime compile --precision auto \
        --source ../shared/fixtures/video/carphone_pristine.mp4 [--pack PACK] [--json out.json]

Child mode (one start, JSON on stdout): ``python -m app.gui_start_bench --child PACK ...``.
It lives in `app`, not `benchmarks`, because it runs the Qt window (README "Project layout": only the
app imports Qt).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
T0 = time.perf_counter()  # the child's process start (as near as Python gets)
WAIT_S = 1800.0  # the longest a start may take (a cold paper-size build on 2 busy cores), never an assertion


def one_start(pack: Path, target: Path, source: Path, runtime: str, precision: str, settings_dir: Path) -> dict:
    """Child: open the window, wait for the paper model's first output frame; seconds from the window's show."""
    from PyQt6.QtCore import QSettings
    from PyQt6.QtWidgets import QApplication

    from app.gui.main_window import LaunchOptions, MainWindow, reenactor_factory_for
    from app.gui.settings import AppSettings
    from engine.session import TaskProgress

    app = QApplication.instance() or QApplication([])
    settings = AppSettings(QSettings(str(settings_dir / "settings.ini"), QSettings.Format.IniFormat))
    window = MainWindow(LaunchOptions(source=str(source), weights=pack, target=target, audio="none"), settings,
                        reenactor_factory_for(runtime, "cpu", precision))
    window.show()
    shown = time.perf_counter()
    stages: list[tuple[float, str]] = []
    window.session.subscribe(lambda e: stages.append((round(time.perf_counter() - shown, 2), e.message))
                             if isinstance(e, TaskProgress) else None)
    session, ready, first = window.session, None, None
    while first is None and time.perf_counter() - shown < WAIT_S:
        app.processEvents()
        time.sleep(0.01)
        reenactor = session.pipeline.reenactor
        if ready is None and reenactor is not None and session.state.model_pack == pack:
            ready = time.perf_counter()
        latest = session.latest
        if ready is not None and latest is not None and latest.started_at >= ready and latest.result.face_found:
            first = latest.done_at
    describe = session.state.reenactor.describe() if session.state.reenactor else "none"
    window.close()
    app.processEvents()
    if first is None:
        raise RuntimeError(f"no output frame of the model within {WAIT_S:.0f} s")
    return {"runtime": describe, "process_to_window_s": shown - T0, "window_to_model_s": ready - shown,
            "window_to_first_frame_s": first - shown, "stages": stages}


def measure(pack: Path, target: Path, source: Path, runtime: str, precision: str) -> dict:
    """A cold and a warm start with one fresh cache dir."""
    result = {"runtime": f"{runtime}:{precision}"}
    with tempfile.TemporaryDirectory(prefix="mimic-appstart-") as cache:
        env = {**os.environ, "MIMIC_CACHE_DIR": cache, "PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": "offscreen"}
        for start in ("cold", "warm"):
            cmd = [sys.executable, "-m", "app.gui_start_bench", "--child", str(pack), "--target", str(target),
                   "--source", str(source), "--runtime", runtime, "--precision", precision, "--settings", cache]
            t = time.perf_counter()
            out = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError(f"{start} start failed:\n{out.stderr[-3000:]}")
            result[start] = {**json.loads(out.stdout.strip().splitlines()[-1]), "wall_s": time.perf_counter() - t}
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--child", type=Path, metavar="PACK", help=argparse.SUPPRESS)
    p.add_argument("--pack", type=Path, help="a paper pack (default: a random-weight one of --config)")
    p.add_argument("--config", default="paper-1024", help="paper-1024, 256 or tiny (for the random pack)")
    p.add_argument("--target", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--settings", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--source", type=Path, required=True, help="a video with a face (looped as the camera)")
    p.add_argument("--runtime", default="compile")
    p.add_argument("--precision", default="auto")
    p.add_argument("--json", type=Path, help="write the figures here")
    args = p.parse_args()
    if args.child:  # the log (with times since the process start) goes to stderr, for diagnosis
        from engine.runtime.memory import keep_freed_memory

        keep_freed_memory()  # as app.cli.main does, before the window's threads start
        logging.basicConfig(level=logging.INFO, format="%(relativeCreated)7.0f ms %(name)s: %(message)s", force=True)
        print(json.dumps(one_start(args.child, args.target, args.source, args.runtime, args.precision, args.settings)))
        return 0
    from benchmarks.pipeline_bench import paper_configs
    from benchmarks.startup_bench import render_inputs, write_random_pack

    ((_, config),) = paper_configs([args.config])
    with tempfile.TemporaryDirectory(prefix="mimic-apppack-") as folder:
        pack = args.pack or write_random_pack(config, Path(folder))
        _, target = render_inputs(config, Path(folder))
        result = measure(pack, target, args.source.resolve(), args.runtime, args.precision)
    for start in ("cold", "warm"):
        r = result[start]
        print(f"{r['runtime']} {start}: process → window {r['process_to_window_s']:.1f} s, window → model "
              f"{r['window_to_model_s']:.1f} s, window → first frame {r['window_to_first_frame_s']:.1f} s "
              f"(process wall {r['wall_s']:.1f} s)")
        for at, message in r["stages"]:
            print(f"    {at:7.2f} s  {message}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())
