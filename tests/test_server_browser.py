"""The server's page in a real headless Chromium (Debian's, driven by Playwright; no browser download)
with a fake camera playing the fixture clip: the page shows the animated portrait, not the camera."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("aiortc", reason="the server needs aiortc (requirements.txt)")
sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test drives Chromium with playwright "
                               "(requirements-test.txt)")

from tests.server_support import TOKEN, ServeProcess, clip_frames, free_port, need_network, write_y4m  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.timeout(300)

# what the page draws of a <video> into a canvas, as a PNG data URL
GRAB = """(id) => { const v = document.getElementById(id); const c = document.createElement('canvas');
  c.width = v.videoWidth; c.height = v.videoHeight; c.getContext('2d').drawImage(v, 0, 0);
  return c.toDataURL('image/png'); }"""


def grab(page, element: str) -> np.ndarray:
    """The pixels the page shows in `element` (a <video>), RGB [h, w, 3]."""
    import base64

    import cv2

    png = base64.b64decode(page.evaluate(GRAB, element).split(",", 1)[1])
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def test_page_streams_the_animated_portrait_from_the_fake_camera(clip: Path, portrait: Path,
                                                                 tmp_path: Path) -> None:
    if not Path(CHROMIUM).is_file():
        pytest.skip("Debian's chromium is not installed (scripts/setup.sh test installs it)")
    need_network()
    frames = clip_frames(clip, size=None)
    import cv2

    frames = [cv2.resize(f, (352, 288)) for f in frames]
    y4m = write_y4m(tmp_path / "camera.y4m", frames)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    port = free_port()
    server = ServeProcess(ROOT, "--port", str(port), "--token-file", str(token_file), "--target", str(portrait))
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                f"--use-file-for-fake-video-capture={y4m}", "--autoplay-policy=no-user-gesture-required"])
            try:
                page = browser.new_context(bypass_csp=True).new_page()  # the test's own probes are eval'd
                requests = []
                page.on("request", lambda r: requests.append(r.url))
                page.goto(f"http://127.0.0.1:{port}/#token={TOKEN}")
                page.wait_for_function("document.getElementById('output').videoWidth > 0 && "
                                       "document.getElementById('output').currentTime > 1", timeout=120_000)
                page.wait_for_function("document.getElementById('latency').textContent.includes('server')",
                                       timeout=30_000)
                first = grab(page, "output")
                page.wait_for_timeout(1500)
                output, camera = grab(page, "output"), grab(page, "camera")
                status, latency = page.text_content("#status"), page.text_content("#latency")
                page.screenshot(path=str(tmp_path / "page.png"))  # kept by pytest: what the user saw
            finally:
                browser.close()
    finally:
        log = server.stop()
    assert output.shape == (512, 512, 3), output.shape  # the served portrait at the server's size
    resized = cv2.resize(camera, (512, 512))
    assert np.abs(output.astype(int) - resized).mean() > 20  # the portrait, not the camera's pixels
    target = cv2.cvtColor(cv2.imread(str(portrait)), cv2.COLOR_BGR2RGB)
    assert output.std() > 20 and abs(output.mean() - target.mean()) < 40  # a real picture of the target's colours
    assert np.abs(output.astype(int) - first).mean() > 0.3  # animated: it changed within 1.5 s
    assert status.startswith("Streaming") and "round trip" in latency, (status, latency)
    assert all(TOKEN not in url for url in requests)  # the fragment never went to the server
    assert TOKEN not in log and "Traceback" not in log
