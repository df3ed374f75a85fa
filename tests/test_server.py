"""The Mimic server with real parts: a real aiohttp server on loopback, real aiortc peers sending the
fixture clip, real landmark warp; security (token, limits, bind policy) and malformed input."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("aiortc", reason="the server needs aiortc (requirements.txt)")

from tests.server_support import TOKEN, Collector, clip_frames, free_port, looping, need_network, \
    running_server  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(240)


async def stream(server_url: str, frames, collector: Collector, token: str = TOKEN):
    from engine.server.client import FrameTrack, RemoteClient

    client = RemoteClient(server_url, token, on_output=collector.output, on_message=collector.message)
    track = FrameTrack(looping(frames), fps=30)
    await client.connect(track)
    return client, track


def test_two_peers_stream_the_animated_portrait(clip: Path, portrait: Path) -> None:
    """A client peer sends the clip; the portrait comes back animated, with per-frame stats."""
    need_network()
    frames = clip_frames(clip)

    async def main():
        async with running_server(portrait) as server:
            got = Collector()
            client, track = await stream(server.url, frames, got)
            await got.until(lambda: len(got.outputs) >= 40 and got.of("stats"), 120, "40 outputs")
            await client.close()
            return got, track

    got, track = asyncio.run(main())
    hello = got.of("hello")[0]
    assert "Landmark warp" in hello["reenactor"] and "expression" in hello["options"]
    assert hello["targets"] == ["image"] and "paste_back" not in hello["options"]
    images = [o.image for o in got.outputs]
    assert images[-1].shape == (256, 256, 3)  # the framed portrait, not the 176x144 camera
    import cv2

    camera = cv2.resize(frames[0], (256, 256))
    assert np.abs(images[-1].astype(int) - camera).mean() > 20  # the portrait, not the camera's pixels
    assert max(np.abs(a.astype(int) - images[-1]).mean() for a in images[-20:]) > 0.5  # it moves
    stats = got.of("stats")
    assert any(s["face"] for s in stats)
    assert {"landmarks", "warp", "convert"} <= set(stats[-1]["stages_ms"])
    assert all(track.sent_at(s["in_pts"]) is not None for s in stats)  # every output names the camera frame it came from
    seen = [s["in_pts"] for s in stats]
    assert seen == sorted(seen)  # never an older frame after a newer one


def test_wrong_or_missing_token_is_401_and_the_token_is_never_logged(portrait: Path, caplog) -> None:
    from engine.errors import MimicError
    from engine.server.client import RefusedError, RemoteClient

    async def main():
        async with running_server(None) as server:
            statuses = []
            for token in ("wrong-token-0123456789", ""):
                try:
                    await RemoteClient(server.url, token).request("GET", "/status")
                except RefusedError as exc:
                    statuses.append(exc.status)
            ok = await RemoteClient(server.url, TOKEN).request("GET", "/status")
            import aiohttp

            async with aiohttp.ClientSession() as http:  # a page of another origin asking: no CORS answer
                async with http.post(server.url + "offer", data="{}", headers={
                        "Origin": "https://evil.example", "Authorization": f"Bearer {TOKEN}"}) as r:
                    cors = {k for k in r.headers if k.lower().startswith("access-control")}
                    bad_offer = r.status
                async with http.get(server.url) as r:
                    page = await r.text()
                    csp = r.headers.get("Content-Security-Policy", "")
            return statuses, ok, cors, bad_offer, page, csp

    caplog.set_level("DEBUG")
    statuses, ok, cors, bad_offer, page, csp = asyncio.run(main())
    assert statuses == [401, 401]
    assert ok["max_sessions"] == 4 and "Landmark warp" in ok["reenactor"]
    assert not cors and bad_offer == 400
    assert 'id="output"' in page and "default-src 'self'" in csp
    assert TOKEN not in caplog.text


def test_flood_of_sessions_gets_503_and_a_fast_address_429(portrait: Path) -> None:
    """Beyond max_sessions: 503; beyond the per-address rate of new sessions: 429. Refused offers
    cost no session, and the accepted ones are real peers."""
    need_network()
    from engine.server.client import FrameTrack, RefusedError, RemoteClient

    async def offers(url: str, n: int) -> list[int | str]:
        results, clients = [], []
        for _ in range(n):
            client = RemoteClient(url, TOKEN)
            try:
                await client.connect(FrameTrack(looping([np.zeros((64, 64, 3), np.uint8)])))
                results.append("ok")
                clients.append(client)
            except RefusedError as exc:
                results.append(exc.status)
                await client.close()
        for client in clients:
            await client.close()
        return results

    async def main():
        async with running_server(None, max_sessions=2) as server:
            full = await offers(server.url, 4)
        async with running_server(None, max_sessions=10, sessions_per_minute=2) as server:
            fast = await offers(server.url, 3)
        return full, fast

    full, fast = asyncio.run(main())
    assert full == ["ok", "ok", 503, 503]
    assert fast == ["ok", "ok", 429]


MALFORMED = [
    "", "not json", "{", "[]", "null", "42", '"set"', "{}", '{"type": 7}', '{"type": "explode"}',
    '{"type": "set"}', '{"type": "set", "name": "expression"}', '{"type": "set", "name": "nope", "value": 1}',
    '{"type": "set", "name": "expression", "value": "high"}', '{"type": "set", "name": "expression", "value": 9}',
    '{"type": "set", "name": "expression", "value": NaN}', '{"type": "set", "name": "expression", "value": true}',
    '{"type": "set", "name": "eye_contact", "value": 1}', '{"type": "set", "name": "motion", "value": "sideways"}',
    '{"type": "set", "name": "expression", "value": 1, "extra": 1}', '{"type": "ping"}', '{"type": "ping", "t": "x"}',
    '{"type": "target", "kind": "image"}', '{"type": "target", "kind": "random", "seed": -1}',
    '{"type": "neutral", "now": true}', "[" * 5000 + "]" * 5000, '{"type": "' + "x" * 5000 + '"}',
    '{"type": "set", "name": {"a": 1}, "value": 1}', '\x00\x01\x02', '{"type": "set", "name": "eyes", "value": 1e400}',
]


def test_500_malformed_control_messages_each_get_an_error_and_the_session_streams_on(
        clip: Path, portrait: Path, caplog) -> None:
    need_network()
    frames = clip_frames(clip)
    messages = [MALFORMED[i % len(MALFORMED)] for i in range(490)] + [bytes([i]) * 10 for i in range(10)]

    async def main():
        async with running_server(portrait) as server:
            got = Collector()
            client, _ = await stream(server.url, frames, got)
            await got.until(lambda: len(got.outputs) >= 5, 120, "the first outputs")
            for message in messages:
                client.channel.send(message)
            await got.until(lambda: len(got.of("error")) >= 500, 60, "500 error replies")
            before = len(got.outputs)
            client.send({"type": "set", "name": "expression", "value": 0.5})
            client.send({"type": "ping", "t": 1.5})
            client.send({"type": "neutral"})
            await got.until(lambda: len(got.outputs) >= before + 10 and got.of("pong") and len(got.of("ok")) >= 3,
                            60, "outputs and answers after the malformed messages")
            alive = server.sessions[client.session_id].pc.connectionState
            await client.close()
            return got, alive

    caplog.set_level("WARNING")
    got, alive = asyncio.run(main())
    errors = got.of("error")
    assert len(errors) == 500 and all(isinstance(e["message"], str) and "\n" not in e["message"] for e in errors)
    assert got.of("pong")[0]["t"] == 1.5
    assert alive == "connected"
    assert "Traceback" not in caplog.text


def test_target_uploads_are_bounded_and_read_safely(clip: Path, portrait: Path, tmp_path: Path) -> None:
    """Portrait upload → the session animates it; garbage, a latent for the warp, a pickle and an
    oversized body get one-line refusals; the session goes on."""
    need_network()
    import cv2

    from engine.server.client import RefusedError

    frames = clip_frames(clip)
    flipped = cv2.imencode(".png", cv2.imread(str(portrait))[:, ::-1])[1].tobytes()

    async def main():
        async with running_server(None, max_upload_bytes=2_000_000) as server:
            got = Collector()
            client, _ = await stream(server.url, frames, got)
            refusals = []
            for data, kind in ((b"not an image", "image"), (b"\x80\x04cos\nsystem\n.", "latent"),
                               (b"x" * 2_000_001, "image"), (flipped, "latent"), (flipped, "sideways")):
                try:
                    await client.upload_target(data, kind)
                except RefusedError as exc:
                    refusals.append((exc.status, str(exc)))
            await client.upload_target(flipped, "image")
            await got.until(lambda: len(got.outputs) >= 5, 120, "outputs of the uploaded portrait")
            await client.close()
            return refusals

    refusals = asyncio.run(main())
    assert [status for status, _ in refusals] == [400, 400, 413, 400, 400]
    assert all("\n" not in text and "Traceback" not in text for _, text in refusals)


def test_serve_contract_port_token_file_target(clip: Path, portrait: Path, tmp_path: Path) -> None:
    """`serve --port P --token-file F --target PORTRAIT`: listens on P, takes its token from F (never
    printed), animates PORTRAIT for a new session; a non-loopback host without TLS is one error line."""
    need_network()
    port = free_port()
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    refused = subprocess.run([sys.executable, "-m", "app", "serve", "--host", "0.0.0.0"], cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0
    assert refused.stderr.strip().count("\n") == 0 and refused.stderr.startswith("error: refusing to listen")
    import cv2

    cv2.imwrite(str(tmp_path / "wall.png"), np.full((256, 256, 3), 128, np.uint8))
    faceless = subprocess.run([sys.executable, "-m", "app", "serve", "--port", "0", "--target",
                               str(tmp_path / "wall.png")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert faceless.returncode != 0 and "error: no face found in the target image" in faceless.stderr
    server = subprocess.Popen([sys.executable, "-m", "app", "serve", "--port", str(port), "--token-file",
                               str(token_file), "--target", str(portrait)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = ""
        deadline = time.monotonic() + 120
        while "listening on" not in line and time.monotonic() < deadline and server.poll() is None:
            line = server.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in line, line
        frames = clip_frames(clip)

        async def main():
            got = Collector()
            client, _ = await stream(f"http://127.0.0.1:{port}", frames, got)
            await got.until(lambda: len(got.outputs) >= 10, 120, "outputs from the served portrait")
            await client.close()
            return got

        got = asyncio.run(main())
        assert got.outputs[-1].image.shape == (512, 512, 3)
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert server.returncode == 0, output[-2000:]
    assert TOKEN not in output and "Traceback" not in output


def test_tls_signalling_with_a_certificate(tmp_path: Path) -> None:
    """--tls-cert/--tls-key: the signalling is HTTPS; a client that trusts the certificate gets in, one
    that does not is refused by TLS itself; a non-loopback host is allowed only with TLS."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from engine.errors import MimicError
    from engine.server.backends import WarpBackend
    from engine.server.client import RemoteClient
    from engine.server.config import ServerConfig
    from engine.server.security import check_bind
    from engine.server.signalling import MimicServer

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    with pytest.raises(MimicError, match="without TLS"):
        check_bind(ServerConfig(host="0.0.0.0"))
    check_bind(ServerConfig(host="0.0.0.0", tls_cert=cert_file, tls_key=key_file))  # allowed with TLS

    async def main():
        server = MimicServer(ServerConfig(host="localhost", port=0, tls_cert=cert_file, tls_key=key_file), TOKEN,
                             WarpBackend())
        await server.start()
        try:
            url = server.url
            trusted = await RemoteClient(url, TOKEN, cafile=cert_file).request("GET", "/status")
            try:
                await RemoteClient(url, TOKEN).request("GET", "/status")  # the system's CAs: not this one
                untrusted = "accepted"
            except MimicError as exc:
                untrusted = str(exc)
        finally:
            await server.stop()
        return url, trusted, untrusted

    url, trusted, untrusted = asyncio.run(main())
    assert url.startswith("https://localhost:")
    assert trusted["sessions"] == 0
    assert "certificate" in untrusted.lower() or "ssl" in untrusted.lower(), untrusted


def test_an_idle_session_is_closed_and_its_place_freed() -> None:
    """A client that sends no frame and no message for idle_timeout_s loses its session (and its slot
    under max_sessions)."""
    need_network()
    from engine.server.client import FrameTrack, RemoteClient

    async def main():
        async with running_server(None, idle_timeout_s=1.0, max_sessions=1) as server:
            track = FrameTrack(looping([np.zeros((64, 64, 3), np.uint8)]))
            track.paused = True  # connected, then silent
            client = RemoteClient(server.url, TOKEN)
            await client.connect(track)
            opened = len(server.sessions)
            for _ in range(100):
                if not server.sessions:
                    break
                await asyncio.sleep(0.1)
            left = len(server.sessions)
            again = RemoteClient(server.url, TOKEN)  # the freed place takes a new client
            await again.connect(FrameTrack(looping([np.zeros((64, 64, 3), np.uint8)])))
            await again.close()
            await client.close()
            return opened, left

    opened, left = asyncio.run(main())
    assert (opened, left) == (1, 0)
