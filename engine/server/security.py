"""Who may connect: the bearer token, the bind policy and the per-address rate of new sessions.

The token is compared in constant time and never logged; it travels in the `Authorization: Bearer`
header only (the browser page reads it from the URL fragment, which browsers never send).
"""
from __future__ import annotations

import collections
import hmac
import os
import secrets
import time
from pathlib import Path

from engine.errors import MimicError
from engine.server.config import ServerConfig

TOKEN_ENV = "MIMIC_SERVER_TOKEN"
MIN_TOKEN_CHARS = 16
MAX_TOKEN_CHARS = 512


def new_token() -> str:
    """A fresh random token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def read_token(path: Path | None, environ: dict[str, str] | None = None) -> tuple[str, bool]:
    """(token, generated): from `path`, else from $MIMIC_SERVER_TOKEN, else a new one (generated=True)."""
    environ = os.environ if environ is None else environ
    if path is not None:
        try:
            if Path(path).stat().st_size > MAX_TOKEN_CHARS * 4:
                raise MimicError(f"token file {path} is too large to hold a token")
            text = Path(path).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise MimicError(f"token file not found: {path}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise MimicError(f"cannot read token file {path}: {getattr(exc, 'strerror', None) or exc}") from None
        return _checked(text, f"the token in {path}"), False
    if environ.get(TOKEN_ENV):
        return _checked(environ[TOKEN_ENV].strip(), f"${TOKEN_ENV}"), False
    return new_token(), True


def _checked(token: str, where: str) -> str:
    if not MIN_TOKEN_CHARS <= len(token) <= MAX_TOKEN_CHARS or any(c.isspace() or not c.isprintable() for c in token):
        raise MimicError(f"{where} must be {MIN_TOKEN_CHARS}–{MAX_TOKEN_CHARS} printable characters without spaces")
    return token


def authorized(header: str | None, token: str) -> bool:
    """Whether an `Authorization` header carries `token` (constant-time comparison)."""
    if not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[len("Bearer "):].strip().encode(), token.encode())


def check_bind(config: ServerConfig) -> None:
    """Refuse to listen beyond this machine without TLS (the token always exists)."""
    if (config.tls_cert is None) != (config.tls_key is None):
        raise MimicError("--tls-cert and --tls-key go together")
    if not config.loopback and not config.tls:
        raise MimicError(f"refusing to listen on {config.host} without TLS: give --tls-cert and --tls-key, "
                         "or keep the default 127.0.0.1 and reach it through an SSH tunnel")
    for path in (config.tls_cert, config.tls_key):
        if path is not None and not Path(path).is_file():
            raise MimicError(f"TLS file not found: {path}")


class RateLimiter:
    """At most `per_minute` events per key within any 60 s window."""

    def __init__(self, per_minute: int, clock=time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._events: dict[str, collections.deque[float]] = {}

    def allow(self, key: str) -> bool:
        now = self._clock()
        events = self._events.setdefault(key, collections.deque())
        while events and now - events[0] > 60.0:
            events.popleft()
        if len(events) >= self.per_minute:
            return False
        events.append(now)
        if len(self._events) > 10_000:  # forget quiet addresses: memory stays bounded
            for stale in [k for k, v in self._events.items() if not v or now - v[-1] > 60.0]:
                del self._events[stale]
        return True
