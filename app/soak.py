"""A soak of the live app (run by hand, not in CI): the real window under Xvfb, a looped video as the camera, for
many minutes, while recording is switched on and off every minute, the target is swapped every 2 minutes and the
window is resized now and then. Per minute: resident memory, outputs per second, dropped frames, latency p50/p95.
At the end every recording must play to its end (its frames decoded = the frames the recorder wrote).

    xvfb-run -a python -m app.soak --minutes 30 --source ../shared/fixtures/video/carphone_pristine.mp4 \
        --targets ../shared/fixtures/portraits/astronaut.png ../shared/fixtures/aligned/{1,3}.png --json soak-warp.json
    xvfb-run -a python -m app.soak --minutes 10 --pack random:256 --source … --json soak-256.json

Without --pack: the landmark warp and the portraits in --targets; `--pack random:256`: a random-weight pack of the
paper's architecture at 256 (as benchmarks.startup_bench writes it) and random identity latents as the targets.
It lives in `app` because it runs the Qt window (only the app imports Qt).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger("mimic.soak")

RECORD_EVERY_S = 60.0  # recording switched on, then off, every minute
SWAP_EVERY_S = 120.0  # a new target every 2 minutes
RESIZE_EVERY_S = 45.0  # the window resized now and then
SIZES = ((1280, 800), (900, 640), (1600, 1000), (1100, 720))


@dataclass
class Minute:
    minute: int
    rss_mib: float  # resident memory at the end of the minute
    outputs_per_s: float
    dropped: int  # captured frames skipped because a newer one came first, in this minute
    latency_p50_ms: float
    latency_p95_ms: float
    frames_seen: int  # distinct outputs the script saw (sampled from the session)


@dataclass
class SoakReport:
    reenactor: str
    minutes: list[Minute] = field(default_factory=list)
    recordings: list[dict] = field(default_factory=list)  # path, frames written, frames decoded, seconds, ok
    swaps: int = 0
    resizes: int = 0
    notices: list[str] = field(default_factory=list)  # errors and warnings the app showed

    def summary(self) -> dict:
        after5 = [m.rss_mib for m in self.minutes[5:]] or [m.rss_mib for m in self.minutes]
        first, rest = self.minutes[: max(1, len(self.minutes) // 3)], self.minutes[-max(1, len(self.minutes) // 3):]
        mean = lambda xs: sum(xs) / max(1, len(xs))  # noqa: E731
        return {
            "rss_after_minute_5_mib": [round(min(after5), 1), round(max(after5), 1)],
            "rss_spread_after_minute_5_pct": round(100 * (max(after5) - min(after5)) / max(1e-9, mean(after5)), 2),
            "latency_p50_first_third_ms": round(mean([m.latency_p50_ms for m in first]), 1),
            "latency_p50_last_third_ms": round(mean([m.latency_p50_ms for m in rest]), 1),
            "outputs_per_s_mean": round(mean([m.outputs_per_s for m in self.minutes]), 2),
            "recordings_ok": f"{sum(r['ok'] for r in self.recordings)}/{len(self.recordings)}",
        }


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def frames_in(path: Path) -> int:
    """Frames decoded from a recording, to its end (an error part-way raises)."""
    import av

    with av.open(str(path)) as video:
        return sum(1 for _ in video.decode(video=0))


def soak(source: Path, targets: list[Path], pack: Path | None, minutes: float, folder: Path,
         runtime: str = "auto", precision: str = "auto", record_every_s: float = RECORD_EVERY_S,
         swap_every_s: float = SWAP_EVERY_S, resize_every_s: float = RESIZE_EVERY_S) -> SoakReport:
    """The soak; an interval of 0 leaves that action out (to find which one a trend comes from)."""
    from PyQt6.QtCore import QSettings
    from PyQt6.QtWidgets import QApplication

    from app.gui.main_window import LaunchOptions, MainWindow, reenactor_factory_for
    from app.gui.settings import AppSettings
    from engine.session import Notice, RecordingSaved, TargetRef, target_kind

    app = QApplication.instance() or QApplication([])
    settings = AppSettings(QSettings(str(folder / "settings.ini"), QSettings.Format.IniFormat))
    settings.output_dir = folder / "recordings"
    window = MainWindow(LaunchOptions(source=str(source), weights=pack, target=targets[0], audio="none"), settings,
                        reenactor_factory_for(runtime, "cpu", precision))
    window.resize(*SIZES[0])
    window.show()
    session = window.session
    saved: list = []
    notices: list[str] = []
    session.subscribe(lambda e: saved.append(e.stats) if isinstance(e, RecordingSaved) else
                      notices.append(f"{e.kind}: {e.text}") if isinstance(e, Notice) and e.kind != "success"
                      else None)

    def pump(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.005)

    # wait for the first output with the first target (model load, target preparation)
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        pump(0.1)
        latest = session.latest
        if session.state.reenactor is not None and session.state.target is not None and latest is not None \
                and latest.result.face_found and not session.busy:
            break
    report = SoakReport(session.state.reenactor.describe() if session.state.reenactor else "none")
    log.info("soak of %s for %.1f min", report.reenactor, minutes)
    start = time.monotonic()
    never = float("inf")
    next_record = start if record_every_s else never
    next_swap = start + swap_every_s if swap_every_s else never
    next_resize = start + resize_every_s if resize_every_s else never
    next_minute = start + 60
    last_seq, latencies = -1, []
    stats0 = session.pipeline.stats()
    minute = 0
    while time.monotonic() - start < minutes * 60:
        app.processEvents()
        time.sleep(0.004)
        latest = session.latest
        if latest is not None and latest.seq != last_seq:
            last_seq = latest.seq
            latencies.append(latest.latency_ms)
        now = time.monotonic()
        if now >= next_record:
            next_record += record_every_s
            if session.state.recorder is None and now - start < minutes * 60 - 5:  # none in the last seconds
                session.start_recording(settings.output_dir, side_by_side=minute % 4 == 0)
            else:
                session.stop_recording()
        if now >= next_swap:
            next_swap += swap_every_s
            report.swaps += 1
            target = targets[report.swaps % len(targets)]
            session.choose_target(TargetRef(str(target), target_kind(target)))
        if now >= next_resize:
            next_resize += resize_every_s
            report.resizes += 1
            window.resize(*SIZES[report.resizes % len(SIZES)])
        if now >= next_minute:
            next_minute += 60
            stats = session.pipeline.stats()
            row = Minute(minute, round(rss_mib(), 1), round((stats.processed - stats0.processed) / 60, 2),
                         stats.dropped - stats0.dropped, round(percentile(latencies, 0.5), 1),
                         round(percentile(latencies, 0.95), 1), len(latencies))
            report.minutes.append(row)
            print(json.dumps(asdict(row)), flush=True)
            stats0, latencies, minute = stats, [], minute + 1
    if session.state.recorder is not None:
        session.stop_recording()
    expected = sum(1 for _ in (folder / "recordings").glob("*.mp4"))
    deadline = time.monotonic() + 120
    while len(saved) < expected and time.monotonic() < deadline:
        pump(0.1)
    for stats in saved:
        try:
            decoded, problem = frames_in(Path(stats.path)), None
        except Exception as exc:  # noqa: BLE001 - reported, not raised: the soak's verdict
            decoded, problem = 0, f"{type(exc).__name__}: {exc}"
        report.recordings.append({"path": Path(stats.path).name, "frames_written": stats.frames_written,
                                  "frames_decoded": decoded, "duration_s": round(stats.duration_s, 1),
                                  "error": stats.error or problem,
                                  "ok": stats.error is None and problem is None and decoded == stats.frames_written})
    report.notices = notices
    window.close()
    app.processEvents()
    return report


def random_pack_inputs(config_name: str, folder: Path, count: int = 3) -> tuple[Path, list[Path]]:
    """A random-weight pack of `config_name` and `count` random identity latents for it."""
    import numpy as np

    from benchmarks.pipeline_bench import paper_configs
    from benchmarks.startup_bench import write_random_pack

    ((_, config),) = paper_configs([config_name])
    pack = write_random_pack(config, folder)
    rng = np.random.default_rng(5)
    latents = []
    for i in range(count):
        path = folder / f"identity{i}.npy"
        np.save(path, rng.standard_normal((config.generator.n_latent, config.generator.style_dim)).astype(np.float32))
        latents.append(path)
    return pack, latents


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--source", type=Path, required=True, help="a video with a face, looped as the camera")
    p.add_argument("--targets", type=Path, nargs="+", help="portraits (or folders of them) to swap between "
                   "(landmark warp)")
    p.add_argument("--pack", help="random:CONFIG (a random-weight paper pack: 256, paper-1024) or a pack file")
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--runtime", default="auto")
    p.add_argument("--precision", default="auto")
    p.add_argument("--record-every", type=float, default=RECORD_EVERY_S, metavar="S",
                   help=f"seconds between switching recording on or off (default {RECORD_EVERY_S:g}; 0: never)")
    p.add_argument("--swap-every", type=float, default=SWAP_EVERY_S, metavar="S",
                   help=f"seconds between target swaps (default {SWAP_EVERY_S:g}; 0: never)")
    p.add_argument("--resize-every", type=float, default=RESIZE_EVERY_S, metavar="S",
                   help=f"seconds between window resizes (default {RESIZE_EVERY_S:g}; 0: never)")
    p.add_argument("--keep", type=Path, help="keep the recordings and settings here (default: a temporary folder)")
    p.add_argument("--json", type=Path, help="write the report here")
    args = p.parse_args()
    from engine.runtime.memory import keep_freed_memory
    from engine.runtime.threads import reserve_cpu_for_live

    keep_freed_memory()  # as app.cli.main does, before the window's threads start
    reserve_cpu_for_live()  # as `python -m app gui` does, before torch loads
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="mimic-soak-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        if args.pack and args.pack.startswith("random:"):
            pack, targets = random_pack_inputs(args.pack.split(":", 1)[1], folder)
        else:
            pack = Path(args.pack) if args.pack else None
            if args.targets is None:
                p.error("give --targets (portraits) for the landmark warp")
            targets = [t for given in args.targets for t in (sorted(given.iterdir()) if given.is_dir() else [given])
                       if t.suffix.lower() in (".png", ".jpg", ".jpeg")]
        report = soak(args.source.resolve(), targets, pack, args.minutes, folder, args.runtime, args.precision,
                      args.record_every, args.swap_every, args.resize_every)
    summary = report.summary()
    print(f"{report.reenactor}: {len(report.minutes)} min, {report.swaps} target swaps, {report.resizes} resizes")
    print(" min  RSS MiB  outputs/s  dropped  p50 ms  p95 ms")
    for m in report.minutes:
        print(f"{m.minute:4d} {m.rss_mib:8.1f} {m.outputs_per_s:10.2f} {m.dropped:8d} {m.latency_p50_ms:7.1f} "
              f"{m.latency_p95_ms:7.1f}")
    for r in report.recordings:
        print(f"  {r['path']}: {r['frames_written']} frames written, {r['frames_decoded']} decoded, "
              f"{r['duration_s']} s{'' if r['ok'] else ' — NOT OK: ' + str(r['error'])}")
    print(json.dumps(summary))
    for notice in report.notices:
        print(f"  notice {notice}")
    if args.json:
        args.json.write_text(json.dumps({**asdict(report), "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
