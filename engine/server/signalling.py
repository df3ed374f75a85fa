"""The HTTP(S) side: the page, the SDP offer/answer, target uploads; token, limits, no CORS.

    GET  /            the browser client (static/index.html; no token needed to fetch the page itself)
    GET  /client.js   its script
    POST /offer       {"sdp", "type"} → {"sdp", "type", "session"}       401 · 429 · 503 · 413 · 400
    POST /target?kind=image|latent   body: the file; header X-Mimic-Session: ID   401 · 404 · 413 · 400
    GET  /status      {"reenactor", "sessions", "max_sessions"}
Every request but the page needs `Authorization: Bearer TOKEN`. No Access-Control-* header is ever
sent, so other origins' pages cannot read any answer.
"""
from __future__ import annotations

import asyncio
import json
import logging
import secrets
import ssl
import tempfile
from importlib import resources
from pathlib import Path
from typing import Awaitable, Callable

from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from engine.errors import MimicError
from engine.reenactor import TargetSpec
from engine.server.backends import ServerBackend
from engine.server.client_session import ClientSession
from engine.server.config import ServerConfig
from engine.server.scheduler import Scheduler
from engine.server.security import RateLimiter, authorized, check_bind

log = logging.getLogger(__name__)

MAX_SDP_CHARS = 32 * 1024
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob: mediastream:; "
                               "connect-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class MimicServer:
    """The signalling endpoint, the sessions and the inference thread they share."""

    def __init__(self, config: ServerConfig, token: str, backend: ServerBackend,
                 default_target: TargetSpec | None = None) -> None:
        check_bind(config)
        self.config = config
        self._token = token  # never logged
        self.backend = backend
        self.default_target = default_target
        self.scheduler = Scheduler(backend, config.batch)
        self.sessions: dict[str, ClientSession] = {}
        self._pending = 0  # offers being answered (count against max_sessions too)
        self._rate = RateLimiter(config.limits.sessions_per_minute)
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self._default_ready = False  # new sessions' reenactors come with the default target

    # ------------------------------------------------------------------ lifecycle

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.config.limits.max_upload_bytes + 1024,
                              middlewares=[self._headers])
        app.router.add_get("/", self._page)
        app.router.add_get("/client.js", self._script)
        app.router.add_post("/offer", self._guard(self._offer))
        app.router.add_post("/target", self._guard(self._target))
        app.router.add_get("/status", self._guard(self._status))
        return app

    async def start(self) -> None:
        self._default_ready = False
        if self.default_target is not None:  # prepared once where the backend can share it (an inversion)
            self._default_ready = await asyncio.get_running_loop().run_in_executor(
                None, self.backend.prepare_default, self.default_target)
        self.scheduler.start()
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        context = None
        if self.config.tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            try:
                context.load_cert_chain(self.config.tls_cert, self.config.tls_key)
            except (ssl.SSLError, OSError) as exc:
                raise MimicError(f"cannot use the TLS certificate/key: {exc}") from None
        site = web.TCPSite(self._runner, self.config.host, self.config.port, ssl_context=context)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise MimicError(f"cannot listen on {self.config.host}:{self.config.port}: {exc.strerror or exc}") from None
        sockets = site._server.sockets if site._server else []  # the port chosen for --port 0
        self.port = sockets[0].getsockname()[1] if sockets else self.config.port

    async def stop(self) -> None:
        for session in list(self.sessions.values()):
            await session.close()
        if self._runner is not None:
            await self._runner.cleanup()
        await asyncio.get_running_loop().run_in_executor(None, self.scheduler.stop)
        self.backend.close()

    @property
    def url(self) -> str:
        scheme = "https" if self.config.tls else "http"
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        return f"{scheme}://{host}:{self.port}/"

    # ------------------------------------------------------------------ middleware

    @web.middleware
    async def _headers(self, request: web.Request, handler):
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # aiohttp's own (404, 405): the same headers, a JSON body
            response = _error(exc.status, exc.reason)
        response.headers.update(SECURITY_HEADERS)
        return response

    def _guard(self, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        async def guarded(request: web.Request) -> web.StreamResponse:
            if not authorized(request.headers.get("Authorization"), self._token):
                log.warning("refused %s %s from %s: wrong or missing token", request.method, request.path,
                            request.remote)
                return _error(401, "wrong or missing token", {"WWW-Authenticate": "Bearer"})
            try:
                return await handler(request)
            except Refused as exc:
                return exc.response
            except MimicError as exc:
                return _error(400, str(exc))
        return guarded

    # ------------------------------------------------------------------ routes

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(text=_static("index.html"), content_type="text/html")

    async def _script(self, request: web.Request) -> web.Response:
        return web.Response(text=_static("client.js"), content_type="application/javascript")

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response({"reenactor": self.backend.describe(), "sessions": len(self.sessions),
                                  "max_sessions": self.config.limits.max_sessions})

    async def _offer(self, request: web.Request) -> web.Response:
        limits = self.config.limits
        if len(self.sessions) + self._pending >= limits.max_sessions:
            return _error(503, f"the server is full ({limits.max_sessions} sessions); try again later",
                          {"Retry-After": "10"})
        if not self._rate.allow(request.remote or "?"):
            return _error(429, f"too many new sessions from this address (at most {limits.sessions_per_minute} "
                               "a minute)", {"Retry-After": "60"})
        body = await _read(request, limits.max_request_bytes)
        try:
            offer = json.loads(body)
            sdp, kind = offer["sdp"], offer["type"]
        except (ValueError, KeyError, TypeError):
            return _error(400, "expected a JSON object with \"sdp\" and \"type\"")
        if kind != "offer" or not isinstance(sdp, str) or len(sdp) > MAX_SDP_CHARS:
            return _error(400, "expected an SDP offer")
        self._pending += 1
        try:
            session = await self._answer(request.remote or "?", sdp)
        finally:
            self._pending -= 1
        if isinstance(session, str):
            return _error(400, session)
        local = session.pc.localDescription
        return web.json_response({"sdp": local.sdp, "type": local.type, "session": session.id})

    async def _answer(self, address: str, sdp: str) -> ClientSession | str:
        """A new session answering `sdp`, or why not."""
        loop = asyncio.get_running_loop()
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        session = ClientSession(secrets.token_hex(8), address, pc, self.backend, self.scheduler,
                                self.config.limits, loop, self._closed)
        pc.on("track", session.attach_track)
        pc.on("datachannel", session.attach_channel)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            if not any(t.kind == "video" for t in pc.getTransceivers()):
                raise ValueError("the offer has no video")
            pc.addTrack(session.output)  # answers on the client's video transceiver (sendrecv)
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:  # aiortc raises many kinds on a bad SDP
            log.info("offer from %s refused: %s", address, exc)
            await pc.close()
            await loop.run_in_executor(None, session.reenactor.close)
            return f"cannot use this offer: {str(exc)[:200] or type(exc).__name__}"
        self.sessions[session.id] = session
        self.scheduler.add(session)
        loop.create_task(session.watch())
        if self._default_ready:
            session.target_ready()
        elif self.default_target is not None:
            loop.create_task(session.set_target(self.default_target))
        log.info("session %s from %s (%d open)", session.id, address, len(self.sessions))
        return session

    def _closed(self, session: ClientSession) -> None:
        self.sessions.pop(session.id, None)

    async def _target(self, request: web.Request) -> web.Response:
        session = self.sessions.get(request.headers.get("X-Mimic-Session", ""))
        if session is None:
            return _error(404, "no such session (header X-Mimic-Session)")
        kind = request.query.get("kind", "image")
        if kind not in ("image", "latent"):
            return _error(400, "kind must be image or latent")
        data = await _read(request, self.config.limits.max_upload_bytes)
        if not data:
            return _error(400, "the upload is empty")
        folder = tempfile.TemporaryDirectory(prefix="mimic-target-")
        path = Path(folder.name) / ("target.png" if kind == "image" else "target.latent")
        path.write_bytes(data)
        try:
            if kind == "image":
                from engine.media.video_io import read_image

                target = TargetSpec.from_image(await asyncio.get_running_loop().run_in_executor(None, read_image, path))
            else:
                target = TargetSpec.from_latent(path)
        except MimicError as exc:
            folder.cleanup()
            return _error(400, str(exc).replace(str(path), "the upload"))
        failure = await session.set_target(target, cleanup=folder.cleanup)
        if failure is not None:
            return _error(400, failure.replace(str(path), "the upload"))
        return web.json_response({"ok": True, "kind": kind})


class Refused(Exception):
    """A request answered with an error status before its handler finished."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


async def _read(request: web.Request, limit: int) -> bytes:
    """The body, refused with 413 beyond `limit` bytes (reads no further than that)."""
    too_large = Refused(_error(413, f"request too large (at most {limit:,} bytes)"))
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    chunks, size = [], 0
    while True:
        chunk = await request.content.readany()
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON error answer: {"error": one line}."""
    return web.json_response({"error": message}, status=status, headers=headers)


def _static(name: str) -> str:
    return resources.files("engine.server").joinpath("static", name).read_text(encoding="utf-8")
