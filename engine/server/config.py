"""The server's settings: where it listens, who may connect, and how much each client may ask for."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PORT = 8443
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True)
class Limits:
    max_sessions: int = 4  # clients streaming at once; one more gets 503
    sessions_per_minute: int = 10  # new sessions per client address per minute; more get 429
    max_request_bytes: int = 64 * 1024  # an SDP offer or a control request
    max_upload_bytes: int = 16 * 1024 * 1024  # a target portrait or latent file
    max_control_bytes: int = 4096  # one data-channel control message
    max_frame_pixels: int = 1920 * 1080  # incoming camera frames above this are dropped (and reported)
    max_frame_rate: float = 60.0  # incoming frames per second above this are dropped
    connect_timeout_s: float = 20.0  # a session whose peer never connects is closed
    idle_timeout_s: float = 30.0  # a connected session with no frame and no message for this long is closed


# Sessions' frames run through the paper model at once, by default, per device (docs/remote.md). On a CPU the
# 256 model's convolutions keep every core busy at one frame: batches of 2, 4 and 8 measured 0.73–1.19x the
# frames/s of one at a time on a quiet 2-CPU Zen 5 and made each session wait 2–8x longer. A GPU is far from
# busy at one 256² frame, which is what batching is for (not yet measured here: issue 24).
CPU_BATCH = 1
CUDA_BATCH = 4


def default_batch(device: str) -> int:
    """The batch size `serve` uses unless told (`--batch`): by the device the model runs on."""
    return CUDA_BATCH if device == "cuda" else CPU_BATCH


@dataclass(frozen=True)
class BatchSettings:
    max_batch: int = CPU_BATCH  # at most this many sessions' frames per model run (default_batch)
    # how long the scheduler waits for more sessions' frames once one is ready: at most about one
    # camera interval's worth of spread between sessions' frames matters, and only for fast models
    wait_ms: float = 4.0


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"  # loopback unless told otherwise; anything else needs TLS
    port: int = DEFAULT_PORT
    tls_cert: Path | None = None  # PEM certificate chain (HTTPS signalling)
    tls_key: Path | None = None  # its private key
    limits: Limits = field(default_factory=Limits)
    batch: BatchSettings = field(default_factory=BatchSettings)

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None and self.tls_key is not None

    @property
    def loopback(self) -> bool:
        return self.host in LOOPBACK_HOSTS
