"""Shared helpers of the server tests: a real server on loopback and a real aiortc client peer."""
from __future__ import annotations

import asyncio
import itertools
import socket
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, AsyncIterator

import numpy as np
import pytest

TOKEN = "test-token-0123456789abcdef"


def non_loopback_address() -> str | None:
    """An address of this host other than 127.0.0.1 (aioice offers no loopback candidates, RFC 8445)."""
    try:
        import ifaddr
    except ImportError:
        return None
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str) and not ip.ip.startswith("127."):
                return ip.ip
    return None


def need_network() -> None:
    if non_loopback_address() is None:
        pytest.skip("WebRTC between two local peers needs an interface besides lo (aioice never offers 127.0.0.1)")


def clip_frames(clip: Path, size: int | None = None) -> list[np.ndarray]:
    """Every frame of the fixture clip (RGB), optionally resized to size x size."""
    import cv2

    from engine.media.video_io import VideoReader

    with VideoReader(clip) as video:
        frames = list(video)
    if size is not None:
        frames = [cv2.resize(f, (size, size), interpolation=cv2.INTER_LINEAR) for f in frames]
    return frames


def looping(frames: list[np.ndarray]):
    return itertools.cycle(frames)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@asynccontextmanager
async def running_server(portrait: Path | None, backend=None, **limits: Any) -> AsyncIterator[Any]:
    """A MimicServer on 127.0.0.1 (a free port), the landmark warp unless `backend` is given."""
    from engine.media.video_io import read_image
    from engine.reenactor import TargetSpec
    from engine.server.backends import WarpBackend
    from engine.server.config import Limits, ServerConfig
    from engine.server.signalling import MimicServer

    target = TargetSpec.from_image(read_image(portrait), portrait) if portrait is not None else None
    config = ServerConfig(port=0, limits=replace(Limits(), **limits))
    server = MimicServer(config, TOKEN, backend or WarpBackend(output_size=256), target)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


class Collector:
    """What a client received: outputs and messages by type."""

    def __init__(self) -> None:
        self.outputs: list[Any] = []
        self.messages: list[dict[str, Any]] = []
        self.changed = asyncio.Event()

    def output(self, out) -> None:
        self.outputs.append(out)
        self.changed.set()

    def message(self, message: dict[str, Any]) -> None:
        self.messages.append(message)
        self.changed.set()

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == kind]

    async def until(self, condition, timeout: float, what: str) -> None:
        """Wait until condition() holds (a generous bound: a failure message, not a speed check)."""
        async def wait() -> None:
            while not condition():
                self.changed.clear()
                await self.changed.wait()
        try:
            await asyncio.wait_for(wait(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"gave up waiting for {what} after {timeout:g} s: {len(self.outputs)} outputs, "
                                 f"messages {[m.get('type') for m in self.messages[-5:]]}, "
                                 f"errors {[m.get('message') for m in self.of('error')[-3:]]}") from None


def write_y4m(path: Path, frames: list[np.ndarray], fps: int = 30) -> Path:
    """A raw YUV4MPEG2 (4:2:0) clip: Chromium's fake camera plays it in a loop."""
    import cv2

    h, w = frames[0].shape[:2]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            f.write(b"FRAME\n")
            f.write(cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420).tobytes())
    return path


class ServeProcess:
    """`python -m app serve …` as a subprocess, until the line that says where it listens."""

    def __init__(self, root: Path, *args: str) -> None:
        import os
        import subprocess
        import sys
        import time

        self.process = subprocess.Popen([sys.executable, "-m", "app", "serve", *args], cwd=root,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.lines: list[str] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and self.process.poll() is None:
            line = self.process.stdout.readline()
            self.lines.append(line)
            if line.startswith(("listening on", "open ")):
                return
        raise AssertionError("serve did not start: " + "".join(self.lines)[-2000:])

    def stop(self) -> str:
        """Stop it (SIGTERM) and return everything it printed."""
        self.process.terminate()
        rest, _ = self.process.communicate(timeout=30)
        return "".join(self.lines) + rest


class ServerThread:
    """A MimicServer on its own event loop thread (for clients that block, like RemoteReenactor)."""

    def __init__(self, portrait: Path | None, port: int = 0, **limits: Any) -> None:
        import threading

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.port = port
        self._portrait, self._limits = portrait, limits
        self.server = None
        self.start()

    def start(self) -> None:
        from engine.media.video_io import read_image
        from engine.reenactor import TargetSpec
        from engine.server.backends import WarpBackend
        from engine.server.config import Limits, ServerConfig
        from engine.server.signalling import MimicServer

        portrait = self._portrait
        target = TargetSpec.from_image(read_image(portrait), portrait) if portrait is not None else None
        config = ServerConfig(port=self.port, limits=replace(Limits(), **self._limits))

        async def start():
            server = MimicServer(config, TOKEN, WarpBackend(output_size=256), target)
            await server.start()
            return server

        self.server = asyncio.run_coroutine_threadsafe(start(), self.loop).result(60)
        self.port = self.server.port

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        if self.server is not None:
            asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(60)
            self.server = None

    def close(self) -> None:
        self.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
