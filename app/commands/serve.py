"""`python -m app serve`: the reenactor as a WebRTC server for browsers and remote apps (engine/server)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine import values


def register(sub: argparse._SubParsersAction) -> None:
    from engine.server.config import CPU_BATCH, CUDA_BATCH, DEFAULT_PORT, BatchSettings, Limits

    limits, batch = Limits(), BatchSettings()
    p = sub.add_parser(
        "serve",
        help="serve the reenactor over WebRTC (browser page at /, or the app with --remote)",
        description="Animate a portrait for remote clients: each sends its camera over WebRTC and gets the "
        "animated portrait back. Without --weights the landmark warp runs. Listens on 127.0.0.1 unless "
        "--host says otherwise (then TLS is required). Every client needs the token.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; any other "
                   "needs --tls-cert and --tls-key)")
    p.add_argument("--port", type=values.PORT, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free one)")
    p.add_argument("--token-file", type=Path, metavar="FILE", help="read the token from FILE (default: "
                   "$MIMIC_SERVER_TOKEN, else a new one printed once)")
    p.add_argument("--tls-cert", type=Path, metavar="PEM", help="TLS certificate chain (HTTPS signalling)")
    p.add_argument("--tls-key", type=Path, metavar="PEM", help="TLS private key")
    p.add_argument("--target", metavar="PORTRAIT", help="portrait (or, with --weights, a latent file or "
                   "'random') every new session animates until its client picks another")
    p.add_argument("--weights", type=Path, help="Mimic model pack (python -m app import-weights); default: the "
                   "landmark warp")
    p.add_argument("--runtime", default="auto", help="auto, eager, compile, onnx, tensorrt (model packs only)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda (model packs only)")
    p.add_argument("--precision", default="auto", help="auto, fp32, bf16 (CPU), fp16 (CUDA)")
    p.add_argument("--size", type=values.STREAM_SIZE, default=512, help="landmark warp: output side in pixels (default 512)")
    p.add_argument("--max-sessions", type=values.SESSIONS, default=limits.max_sessions,
                   help=f"clients at once; more are refused with 503 (default {limits.max_sessions})")
    p.add_argument("--batch", type=values.BATCH, metavar="N",
                   help=f"model packs: sessions' frames run together, at most N (default {CPU_BATCH} on a CPU, where "
                   f"batching measured no faster; {CUDA_BATCH} on a GPU; 1: none; batches need --runtime eager)")
    p.add_argument("--batch-wait-ms", type=values.BATCH_WAIT_MS, default=batch.wait_ms, metavar="MS",
                   help=f"model packs: wait at most MS for more sessions' frames (default {batch.wait_ms:g})")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.runtime.threads import reserve_cpu_for_live

    reserve_cpu_for_live()  # before torch loads: the codecs and signalling keep a CPU (engine/runtime/threads.py)
    import asyncio
    from dataclasses import replace

    from engine.errors import MimicError
    from engine.render import parse_target
    from engine.server.backends import PaperBackend, WarpBackend
    from engine.server.config import CPU_BATCH, BatchSettings, Limits, ServerConfig
    from engine.server.security import check_bind, read_token
    from engine.server.signalling import MimicServer

    config = ServerConfig(host=args.host, port=args.port, tls_cert=args.tls_cert, tls_key=args.tls_key,
                          limits=replace(Limits(), max_sessions=args.max_sessions),
                          batch=BatchSettings(max_batch=args.batch or CPU_BATCH, wait_ms=args.batch_wait_ms))
    check_bind(config)  # before loading anything
    token, generated = read_token(args.token_file)
    target = parse_target(args.target) if args.target else None
    if target is not None and target.kind != "image" and args.weights is None:
        raise MimicError("latent and random targets need a model pack (--weights)")
    if args.weights is None:
        backend = WarpBackend(output_size=args.size)
    else:
        backend = PaperBackend(args.weights, runtime=args.runtime, device=args.device, precision=args.precision,
                               batch=args.batch, progress=_progress())
        config = replace(config, batch=replace(config.batch, max_batch=backend.batch))
    server = MimicServer(config, token, backend, target)
    return asyncio.run(_serve(server, token if generated else None))


async def _serve(server, token: str | None) -> int:
    import asyncio
    import signal

    await server.start()
    print(f"reenactor: {server.backend.describe()}")
    if token is not None:  # printed once, here only (never logged)
        print(f"open {server.url}#token={token}")
    else:
        print(f"listening on {server.url} (token from the token file / $MIMIC_SERVER_TOKEN)")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()
    print("server stopped")
    return 0


def _progress():
    from tqdm import tqdm

    bar = tqdm(total=100, desc="model", unit="%", leave=False)

    def report(fraction: float, message: str) -> None:
        bar.set_postfix_str(message)
        bar.update(max(round(fraction * 100) - bar.n, 0))

    return report
