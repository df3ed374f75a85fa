"""The paper model live in the window against `render` offline, and the camera preview beside it.

Three figures for one pack, each from a fresh process on the same machine, in one run:
  1. `render` (offline, the same runtime setting): frames per second of the whole per-frame pipeline,
     from its median stage times;
  2. the window (offscreen Qt) with the pack live on the fixture clip: output frames per second, and the
     driver preview's frames per second (what the user sees of the camera) — both counted on the GUI
     thread over `--seconds`;
  3. the same window with the landmark warp only (no pack): the preview's baseline rate.

    python -m app.gui_live_bench --pack PACK --source ../shared/fixtures/video/carphone_pristine.mp4 \
        --target ../shared/fixtures/portraits/astronaut.png [--runtime auto] [--seconds 20] [--json out.json]

The clip's own rate caps the window (a 29.97 frames/s file gives at most 29.97 outputs a second, while
`render` runs as fast as it can): `--source-fps F` plays the same frames re-timed to F frames/s, so a
pack faster than the camera can show its own rate; the ratio printed is output / min(render, source).

Figures are noisy on a shared machine: compare the ratios of one run (window/render, preview/baseline).
It lives in `app` because it runs the Qt window.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WAIT_S = 1800.0  # the longest a pack may take to be live (a first build on busy cores), never an assertion


def window_rates(pack: Path | None, source: Path, target: Path, runtime: str, seconds: float) -> dict:
    """Child: open the window, wait until the output is live (with `pack` when given), then count frames."""
    from PyQt6.QtCore import QSettings
    from PyQt6.QtWidgets import QApplication

    from app.gui.main_window import LaunchOptions, MainWindow, reenactor_factory_for
    from app.gui.settings import AppSettings

    app = QApplication.instance() or QApplication([])
    folder = Path(tempfile.mkdtemp(prefix="mimic-live-bench-"))
    settings = AppSettings(QSettings(str(folder / "settings.ini"), QSettings.Format.IniFormat))
    window = MainWindow(LaunchOptions(source=str(source), weights=pack, target=target, audio="none"), settings,
                        reenactor_factory_for(runtime, "auto", "auto"))
    window.show()
    session, view = window.session, window.view_panel
    start = time.perf_counter()

    def live() -> bool:
        return session.state.live and not session.busy and session.state.model_pack == pack

    while not live() and time.perf_counter() - start < WAIT_S:
        app.processEvents()
        time.sleep(0.01)
    settle = time.perf_counter() + 3.0  # the first frames (the live aligner starts) are not counted
    while time.perf_counter() < settle:
        app.processEvents()
        time.sleep(0.005)
    out0, drv0, t0 = view.output_view.frames_shown, view.driver_view.frames_shown, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        app.processEvents()
        time.sleep(0.005)
    elapsed = time.perf_counter() - t0
    stats = session.pipeline.stats()
    result = {"output_fps": (view.output_view.frames_shown - out0) / elapsed,
              "preview_fps": (view.driver_view.frames_shown - drv0) / elapsed,
              "latency_ms": stats.latency_ms, "model": session.state.reenactor.describe()}
    window.close()
    return result


def render_fps(pack: Path, source: Path, target: Path, runtime: str) -> dict:
    """`python -m app render` with the pack: frames per second from its median stage times."""
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([sys.executable, "-m", "app", "render", "--weights", str(pack), "--runtime", runtime,
                              "--driving", str(source), "--target", str(target), "-o", str(Path(tmp) / "o.mp4")],
                             cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if out.returncode != 0:
        raise SystemExit(f"render failed: {out.stderr.strip().splitlines()[-1:]}")
    stages = {k: float(v) for k, v in re.findall(r"(\w+) ([\d.]+) ms", out.stdout.split("median per frame:")[1])}
    model = re.search(r"reenactor: (.*)", out.stdout)[1]
    return {"fps": 1000.0 / sum(stages.values()), "stage_ms": stages, "model": model}


def retimed(source: Path, fps: float, folder: Path) -> Path:
    """The frames of `source` written again at `fps` frames/s (H.264, silent)."""
    from engine.media.video_io import H264Writer, VideoReader

    out = folder / f"{source.stem}-{fps:g}fps.mp4"
    with VideoReader(source) as video:
        frames = list(video)
    writer = H264Writer.constant_rate(out, fps, (frames[0].shape[1], frames[0].shape[0]))
    for frame in frames:
        writer.write(frame)
    writer.close()
    return out


def source_fps(source: Path) -> float:
    from engine.media.video_io import VideoReader

    with VideoReader(source) as video:
        return float(video.fps)


def child(args: argparse.Namespace) -> dict:
    from engine.runtime.threads import reserve_cpu_for_live

    reserve_cpu_for_live()  # as `python -m app gui` does, before torch loads
    if args.niceness is not None:
        import engine.live

        engine.live.INFERENCE_NICENESS = args.niceness
    return window_rates(args.pack if args.child == "pack" else None, args.source, args.target, args.runtime,
                        args.seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pack", type=Path, required=True)
    parser.add_argument("--source", type=Path, required=True, help="a video with a face (the camera)")
    parser.add_argument("--target", type=Path, required=True, help="a portrait")
    parser.add_argument("--runtime", default="auto")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the window's rates are counted")
    parser.add_argument("--source-fps", type=float, help="play the source's frames at this rate instead of its own")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--niceness", type=int, help="the inference thread's niceness (default: "
                        "engine.live.INFERENCE_NICENESS); 0 runs it at the GUI's priority")
    parser.add_argument("--child", choices=("pack", "warp"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return 0
    figures = {"render": render_fps(args.pack, args.source, args.target, args.runtime)}
    folder = Path(tempfile.mkdtemp(prefix="mimic-live-bench-"))
    source = retimed(args.source, args.source_fps, folder) if args.source_fps else args.source
    figures["source_fps"] = source_fps(source)
    given = [*(sys.argv[1:] if argv is None else argv), "--source", str(source)]  # the last --source wins
    for kind in ("pack", "warp"):
        out = subprocess.run([sys.executable, "-m", "app.gui_live_bench", *given, "--child", kind],
                             cwd=ROOT, capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": "offscreen"})
        if out.returncode != 0:
            raise SystemExit(f"window ({kind}) failed: {out.stderr.strip()[-500:]}")
        figures[kind] = json.loads(out.stdout.strip().splitlines()[-1])
    render, pack, warp = figures["render"], figures["pack"], figures["warp"]
    ceiling = min(render["fps"], figures["source_fps"])
    figures["output_over_ceiling"] = pack["output_fps"] / ceiling
    print(f"render (offline):   {render['fps']:.1f} fps  ({render['model']})")
    print(f"source:             {figures['source_fps']:.2f} fps{' (re-timed)' if args.source_fps else ''}")
    print(f"window, pack live:  output {pack['output_fps']:.1f} fps = {figures['output_over_ceiling']:.2f}x "
          f"min(render, source); preview {pack['preview_fps']:.1f} fps; latency {pack['latency_ms']:.0f} ms")
    print(f"window, warp only:  output {warp['output_fps']:.1f} fps; preview {warp['preview_fps']:.1f} fps "
          f"(pack's preview = {pack['preview_fps'] / max(warp['preview_fps'], 1e-9):.2f}x this)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
