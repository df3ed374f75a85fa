"""The Mimic server's figures (docs/remote.md): batching, glass-to-glass latency, codec cost.

    python -m benchmarks.server_bench batching [--sessions 1 2 4 8] [--seconds 20] [--config 256]
    python -m benchmarks.server_bench interleaved [--sessions 2 4 8] [--repeats 3] [--config 256]
    python -m benchmarks.server_bench latency  [--seconds 300]
    python -m benchmarks.server_bench codecs
    (each takes --json FILE; `all` runs the three)

batching: the paper's model from a random paper-format pack (written once per config under the cache
    dir, like a user's import), N sessions each fed 30 frames/s of FFHQ-aligned fixture faces through
    the server's real Scheduler (its latest-wins slots, its backend): frames/s of the server and
    per-session latency (arrival → output ready), batched vs one at a time, same run, over the same
    number of frames of every session (timed scheduler rounds, so a slow CPU needs no long runs). Aligned input:
    the per-session MediaPipe alignment (outside the batch either way) is left out, so the figures are
    the model's. The same script runs on a GPU (--device cuda --precision fp16).
latency: a real server (landmark warp, 512² output) and a real aiortc client on this machine (through
    its non-loopback address): the client sends the fixture clip at 512², 30 frames/s, stamps each
    frame as it leaves, and matches each returning output to it through the stats messages
    (in_pts → out_pts). Median, p95, frames/s, drops, and the first vs last minute (thirds when shorter).
codecs: aiortc's VP8 and H.264 encoders and decoders at 512² and 1024² on the fixture clip: ms per frame
    and the bitrate the encoder reaches.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures"


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


# ----------------------------------------------------------------------------------------- batching


def random_pack(config_name: str, folder: Path) -> Path:
    """A pack of random weights in the paper's formats (best_model.pt + ReStyle → import-weights)."""
    import torch

    from benchmarks.pipeline_bench import paper_configs
    from engine.runtime.weights import import_weights
    from models.paper import PaperModel, ReStyleInverter

    out = folder / f"random-{config_name}.safetensors"
    if out.is_file():
        return out
    folder.mkdir(parents=True, exist_ok=True)
    (name, config), = paper_configs([config_name])
    torch.manual_seed(0)
    model, inverter = PaperModel(config), ReStyleInverter(config)
    inverter.decoder.load_state_dict(model.decoder.state_dict())
    log.info("writing a random %s pack to %s", name, out)
    torch.save({"state_dict": model.state_dict(), "opts": {"exp_dir": "bench"}}, folder / "best_model.pt")
    state = {k: v for k, v in inverter.state_dict().items() if k.startswith(("encoder.", "decoder."))}
    torch.save({"state_dict": state, "latent_avg": inverter.latent_avg.clone(),
                "opts": {"encoder_type": "BackboneEncoder", "input_nc": 6, "n_iters_per_batch": config.restyle_iters,
                         "output_size": config.generator.size, "start_from_latent_avg": True}},
               folder / "restyle.pt")
    del model, inverter
    import_weights(folder / "best_model.pt", folder / "restyle.pt", out=out)
    (folder / "best_model.pt").unlink()
    (folder / "restyle.pt").unlink()
    return out


@dataclass
class BenchClient:
    """A session as the Scheduler sees it (engine.server.scheduler.Client), fed by a 30 fps thread."""

    reenactor: object
    slot: object
    last_arrival: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    outputs: int = 0
    errors: int = 0

    def ready_reenactor(self):
        return self.reenactor

    def before_drive(self, reenactor) -> None:
        return None

    def deliver(self, job, result, error) -> None:
        if result is None:
            self.errors += 1
            return
        self.outputs += 1
        self.latencies_ms.append((time.monotonic() - job.arrival.arrived) * 1000)



def _paper_setup(config: str, device: str, precision: str):
    """A random paper-format pack served eagerly (aligned inputs, absolute motion, no paste-back): the backend,
    its shared reenactor, the six aligned fixture faces at its input size, and a fork holding a random identity."""
    import cv2

    from engine.media.video_io import read_image
    from engine.runtime.runtimes import cache_dir
    from engine.server.backends import PaperBackend
    from engine.stylegan.reenactor import StyleGANOptions

    pack = random_pack(config, cache_dir() / "bench-packs")
    options = StyleGANOptions(aligned_input=True, paste_back=False, motion="absolute", smoothing=0.0)
    backend = PaperBackend(pack, runtime="eager", device=device, precision=precision, options=options)
    shared = backend.shared
    size = shared.input_size
    faces = [cv2.resize(read_image(FIXTURES / "aligned" / f"{i}.png"), (size, size), interpolation=cv2.INTER_AREA)
             for i in range(6)]
    template = shared.fork()
    template.set_identity(np.random.default_rng(0).normal(size=(shared.n_latent, shared.style_dim))
                          .astype(np.float32) * 0.5)
    return backend, shared, faces, template


def bench_batching(sessions: list[int], rounds: int, config: str, device: str, precision: str,
                   wait_ms: float, limit_s: float) -> list[dict]:
    """Each case: N sessions fed at 30 frames/s; after one warm-up round, `rounds` scheduler rounds are
    timed (the server is saturated: every round finds a frame in every session's slot). frames/s =
    frames output in those rounds / their time; latency = arrival → output ready, per frame."""

    from engine.server.config import BatchSettings
    from engine.server.scheduler import Arrival, Scheduler, Slot

    backend, shared, faces, template = _paper_setup(config, device, precision)
    print(f"  {shared.describe()}", flush=True)
    rows = []
    for n in sessions:
        for batched in (False, True):
            backend.batched = batched
            clients = [BenchClient(template.fork(same_target=True), Slot()) for _ in range(n)]
            scheduler = Scheduler(backend, BatchSettings(max_batch=n if batched else 1, wait_ms=wait_ms))
            for c in clients:
                scheduler.add(c)
            stop = threading.Event()

            def feed(client: BenchClient, offset: float) -> None:
                k, t0 = 0, time.monotonic() + offset
                while not stop.is_set():
                    stop.wait(max(0.0, t0 + k / 30.0 - time.monotonic()))
                    now = time.monotonic()
                    client.last_arrival = now
                    client.slot.put(Arrival(faces[k % len(faces)], k, now))
                    scheduler.notify()
                    k += 1

            feeders = [threading.Thread(target=feed, args=(c, i / (30.0 * n)), daemon=True)
                       for i, c in enumerate(clients)]
            for t in feeders:
                t.start()
            time.sleep(0.2)  # every slot holds a frame
            scheduler.start()
            warm = 1 if batched else n  # one frame of every session first
            deadline = time.monotonic() + limit_s
            while scheduler.rounds < warm and time.monotonic() < deadline:
                time.sleep(0.005)
            for c in clients:
                c.outputs, c.latencies_ms = 0, []
            t0, start_round = time.monotonic(), scheduler.rounds
            target_rounds = rounds * (1 if batched else n)  # the same frames of every session either way
            while scheduler.rounds < start_round + target_rounds and time.monotonic() < deadline:
                time.sleep(0.005)
            elapsed = time.monotonic() - t0
            outputs = sum(c.outputs for c in clients)
            latencies = [v for c in clients for v in c.latencies_ms]
            stop.set()
            scheduler.stop(timeout=600)
            for t in feeders:
                t.join()
            row = {"sessions": n, "mode": "batched" if batched else "one at a time", "frames": outputs,
                   "seconds": elapsed, "fps": outputs / elapsed if elapsed else 0.0,
                   "latency_median_ms": percentile(latencies, 50), "latency_p95_ms": percentile(latencies, 95),
                   "errors": sum(c.errors for c in clients)}
            row["fps_per_session"] = row["fps"] / n
            rows.append(row)
            print(f"  {n} session(s) {row['mode']:>13s}: {row['fps']:7.3f} frames/s ({row['fps_per_session']:.3f} "
                  f"each; {outputs} frames in {elapsed:.1f} s), latency median {row['latency_median_ms']:.0f} ms, "
                  f"p95 {row['latency_p95_ms']:.0f} ms", flush=True)
        one, both = rows[-2], rows[-1]
        both["speedup"] = both["fps"] / one["fps"] if one["fps"] else float("nan")
        print(f"  {n} session(s): batched / one at a time = {both['speedup']:.2f}x", flush=True)
    backend.close()
    return rows


def bench_interleaved(sessions: list[int], repeats: int, config: str, device: str, precision: str) -> list[dict]:
    """The batching gain on a machine whose speed drifts (shared cores): for each N, `repeats` times in
    a row, N sessions' frames one at a time, then the same N frames as one batch (engine.stylegan.batch);
    the ratio of each pair, so both sides of a ratio saw the same load. Reports the median ratio."""
    from engine.server.backends import drive_each
    from engine.server.scheduler import Arrival, Job
    from engine.stylegan.batch import drive_batch

    backend, shared, faces, template = _paper_setup(config, device, precision)
    rows = []
    for n in sessions:
        forks = [template.fork(same_target=True) for _ in range(n)]
        frames = [faces[i % len(faces)] for i in range(n)]
        jobs = [Job(None, r, f, Arrival(f, 0, 0.0), 0.0) for r, f in zip(forks, frames)]
        drive_batch(forks, frames)  # warm-up of this batch size
        singles, batches = [], []
        for _ in range(repeats):
            t = time.perf_counter()
            drive_each(jobs)
            singles.append(time.perf_counter() - t)
            t = time.perf_counter()
            drive_batch(forks, frames)
            batches.append(time.perf_counter() - t)
        ratios = [a / b for a, b in zip(singles, batches)]
        row = {"sessions": n, "one_at_a_time_s": singles, "batched_s": batches, "ratios": ratios,
               "speedup_median": statistics.median(ratios),
               "fps_one_at_a_time_median": n / statistics.median(singles),
               "fps_batched_median": n / statistics.median(batches)}
        rows.append(row)
        print(f"  {n} session(s): {n} frames one at a time {statistics.median(singles):.2f} s, as one batch "
              f"{statistics.median(batches):.2f} s (medians of {repeats}); batched / one at a time "
              f"{row['speedup_median']:.2f}x (pairs: {', '.join(f'{r:.2f}' for r in ratios)})", flush=True)
    backend.close()
    return rows


# ----------------------------------------------------------------------------------------- latency


def bench_latency(seconds: float, size: int = 512, fps: float = 30.0) -> dict:
    """The server as the user runs it (`python -m app serve`, its own process), the client here."""
    import itertools
    import os
    import socket
    import subprocess
    import sys
    import tempfile

    import cv2

    from engine.media.video_io import VideoReader
    from engine.server.client import FrameTrack, RemoteClient

    with VideoReader(FIXTURES / "video" / "carphone_pristine.mp4") as video:
        frames = [cv2.resize(f, (size, size), interpolation=cv2.INTER_LINEAR) for f in video]
    portrait = FIXTURES / "portraits" / "astronaut.png"
    token = "bench-token-0123456789abcdef"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token_file = Path(tempfile.mkdtemp(prefix="mimic-bench-")) / "token"
    token_file.write_text(token)
    server = subprocess.Popen([sys.executable, "-m", "app", "serve", "--port", str(port), "--token-file",
                               str(token_file), "--target", str(portrait), "--size", str(size)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    while "listening on" not in (line := server.stdout.readline()):
        if server.poll() is not None:
            raise RuntimeError("the server did not start")

    async def run() -> dict:
        stats: dict[int, dict] = {}
        outputs: dict[int, float] = {}
        client = RemoteClient(f"http://127.0.0.1:{port}", token,
                              on_output=lambda o: outputs.__setitem__(o.pts, o.received),
                              on_message=lambda m: stats.__setitem__(m["out_pts"], m) if m.get("type") == "stats"
                              else None)
        track = FrameTrack(itertools.cycle(frames), fps=fps)
        await client.connect(track)
        t_start = time.monotonic()
        await asyncio.sleep(seconds)
        sent_frames = len(track.sent)
        await client.close()
        return {"stats": stats, "outputs": outputs, "track": track, "t_start": t_start, "sent": sent_frames}

    try:
        got = asyncio.run(run())
    finally:
        server.terminate()
        server.wait(30)
    track, t_start = got["track"], got["t_start"]
    samples = []  # (time sent, glass-to-glass ms, server ms, queue ms, out wait ms)
    for out_pts, received in got["outputs"].items():
        s = next((got["stats"][p] for p in (out_pts, out_pts - 1, out_pts + 1, out_pts - 2, out_pts + 2)
                  if p in got["stats"]), None)  # the codec may round a pts by a tick
        sent = track.sent_at(s["in_pts"]) if s else None
        if sent is None:
            continue
        samples.append((sent - t_start, (received - sent) * 1000, s["server_ms"], s["queue_ms"],
                        s.get("out_wait_ms", 0.0), s["stages_ms"]))
    g2g = [x[1] for x in samples]
    span = max(x[0] for x in samples) if samples else 0
    window = 60.0 if span >= 120 else span / 3
    first = [x[1] for x in samples if x[0] < window]
    last = [x[1] for x in samples if x[0] >= span - window]
    stage_names = sorted({k for x in samples for k in x[5]})
    report = {
        "seconds": seconds, "size": size, "fps_in": fps, "frames_sent": got["sent"], "frames_out": len(got["outputs"]),
        "matched": len(samples), "fps_out": len(got["outputs"]) / seconds,
        "dropped": got["sent"] - len(samples),  # camera frames that never came back (skipped for newer ones)
        "glass_to_glass_median_ms": percentile(g2g, 50), "glass_to_glass_p95_ms": percentile(g2g, 95),
        "window_s": window, "first_window_median_ms": percentile(first, 50),
        "last_window_median_ms": percentile(last, 50),
        "server_median_ms": percentile([x[2] for x in samples], 50),
        "queue_median_ms": percentile([x[3] for x in samples], 50),
        "queue_max_ms": max([x[3] for x in samples], default=float("nan")),
        "out_wait_median_ms": percentile([x[4] for x in samples], 50),
        "stages_median_ms": {k: percentile([x[5][k] for x in samples if k in x[5]], 50) for k in stage_names},
    }
    report["transport_median_ms"] = report["glass_to_glass_median_ms"] - report["server_median_ms"] \
        - report["out_wait_median_ms"]
    print(f"  {seconds:.0f} s at {fps:g} frames/s in, {size}²: glass-to-glass median "
          f"{report['glass_to_glass_median_ms']:.0f} ms, p95 {report['glass_to_glass_p95_ms']:.0f} ms; "
          f"{report['fps_out']:.1f} frames/s out; {report['dropped']} of {got['sent']} frames dropped")
    print(f"  first {window:.0f} s median {report['first_window_median_ms']:.0f} ms, last {window:.0f} s "
          f"{report['last_window_median_ms']:.0f} ms; server {report['server_median_ms']:.0f} ms (queue "
          f"{report['queue_median_ms']:.0f}, max {report['queue_max_ms']:.0f}), transport both ways incl. codecs and "
          f"jitter buffers {report['transport_median_ms']:.0f} ms")
    print("  server stages (median ms): " + ", ".join(f"{k} {v:.1f}" for k, v in report["stages_median_ms"].items()))
    return report


# ----------------------------------------------------------------------------------------- codecs


def bench_codecs(sizes=(512, 1024), frames_n: int = 60) -> list[dict]:
    import fractions

    import av
    import cv2
    from aiortc.codecs import depayload, get_decoder, get_encoder
    from aiortc.jitterbuffer import JitterFrame
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters

    from engine.media.video_io import VideoReader

    with VideoReader(FIXTURES / "video" / "carphone_pristine.mp4") as video:
        clip = list(video)[:frames_n]
    rows = []
    for size in sizes:
        frames = [cv2.resize(f, (size, size), interpolation=cv2.INTER_LINEAR) for f in clip]
        for mime in ("video/VP8", "video/H264"):
            params = {"packetization-mode": "1", "level-asymmetry-allowed": "1", "profile-level-id": "42e01f"} \
                if mime.endswith("H264") else {}
            codec = RTCRtpCodecParameters(mimeType=mime, clockRate=90000, payloadType=96, parameters=params)
            encoder, decoder = get_encoder(codec), get_decoder(codec)
            encode_ms, decode_ms, sizes_bytes = [], [], []
            for k, image in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts, frame.time_base = k * 3000, fractions.Fraction(1, 90000)
                t = time.perf_counter()
                payloads, timestamp = encoder.encode(frame, force_keyframe=k == 0)
                encode_ms.append((time.perf_counter() - t) * 1000)
                data = b"".join(depayload(codec, p) for p in payloads)
                sizes_bytes.append(sum(len(p) for p in payloads))
                t = time.perf_counter()
                decoder.decode(JitterFrame(data, timestamp))
                decode_ms.append((time.perf_counter() - t) * 1000)
            row = {"codec": mime.split("/")[1], "size": size, "encode_ms": statistics.median(encode_ms[5:]),
                   "decode_ms": statistics.median(decode_ms[5:]),
                   "bitrate_mbit_s": statistics.mean(sizes_bytes[5:]) * 8 * 30 / 1e6}
            rows.append(row)
            print(f"  {row['codec']:>4s} {size}²: encode {row['encode_ms']:.1f} ms, decode {row['decode_ms']:.1f} ms "
                  f"per frame; {row['bitrate_mbit_s']:.2f} Mbit/s at 30 frames/s")
    return rows


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("batching", "interleaved", "latency", "codecs", "all"))
    parser.add_argument("--repeats", type=int, default=3, help="interleaved: pairs per session count")
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--seconds", type=float, help="latency: the whole run (default 300); batching: the "
                        "longest wait for one case (default 1200)")
    parser.add_argument("--rounds", type=int, default=3, help="batching: timed rounds per case (one frame of "
                        "every session each)")
    parser.add_argument("--config", default="256", help="batching: model config (256, paper-1024, tiny)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--wait-ms", type=float, default=4.0, help="batching: the scheduler's wait for more frames")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args()
    import os

    from engine.runtime.memory import keep_freed_memory

    keep_freed_memory()  # the allocator the app and the server run with (before any thread starts)
    print(f"CPU threads: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f} at start")
    report = {}
    if args.what in ("codecs", "all"):
        print("codec cost (aiortc's encoders/decoders, fixture clip):")
        report["codecs"] = bench_codecs()
    if args.what in ("batching", "all"):
        print(f"batching ({args.config} config, random paper-format pack, eager {args.precision}, "
              f"wait {args.wait_ms:g} ms):")
        report["batching"] = bench_batching(args.sessions, args.rounds, args.config, args.device,
                                            args.precision, args.wait_ms, args.seconds or 1200.0)
    if args.what in ("interleaved", "all"):
        print(f"batching, interleaved pairs ({args.config} config, random paper-format pack, eager {args.precision}):")
        report["interleaved"] = bench_interleaved(args.sessions, args.repeats, args.config, args.device,
                                                  args.precision)
    if args.what in ("latency", "all"):
        print("glass-to-glass on this machine (landmark warp):")
        report["latency"] = bench_latency(args.seconds or 300.0)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
