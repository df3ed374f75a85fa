"""Batching across sessions: forks of one loaded model, E_m → folded map → G once for several
sessions' frames, each session's own target and motion state kept outside the batch."""
from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from tests.checkpoint_writers import tiny_inverter, tiny_paper, write_paper, write_restyle

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def pack(tmp_path_factory) -> Path:
    """A Mimic pack of tiny random weights written in the published formats."""
    from engine.runtime.weights import import_weights

    d = tmp_path_factory.mktemp("weights")
    model = tiny_paper()
    inverter = tiny_inverter(model.decoder)
    return import_weights(write_paper(d / "best_model.pt", model), write_restyle(d / "restyle.pt", inverter),
                          out=d / "tiny.safetensors") and d / "tiny.safetensors"


def test_a_batch_equals_each_session_alone(pack: Path, fixtures_dir: Path) -> None:
    """Three sessions with three targets: the batched outputs are each session's own output."""
    import cv2

    from engine.media.video_io import read_image
    from engine.stylegan import StyleGANReenactor
    from engine.stylegan.batch import drive_batch
    from engine.stylegan.reenactor import StyleGANOptions

    shared = StyleGANReenactor.from_pack(pack, runtime="eager", precision="fp32", options=StyleGANOptions.paper())
    size = shared.input_size
    frames = [cv2.resize(read_image(fixtures_dir / "aligned" / f"{i}.png"), (size, size)) for i in range(3)]
    alone, batched = [shared.fork() for _ in range(3)], [shared.fork() for _ in range(3)]
    rng = np.random.default_rng(0)
    for a, b in zip(alone, batched):
        w_id = rng.normal(size=(shared.n_latent, shared.style_dim)).astype(np.float32)  # three identities
        a.set_identity(w_id)
        b.set_identity(w_id)
    expected = [a.drive(f).image for a, f in zip(alone, frames)]
    results = drive_batch(batched, frames)
    for got, want in zip(results, expected):
        assert got.face_found and got.timings_ms["batch"] == 3.0
        assert np.abs(got.image.astype(int) - want).max() <= 1  # the same output (float rounding at most)
    assert np.abs(expected[0].astype(int) - expected[1]).mean() > 1  # and the targets differ
    twin = alone[0].fork(same_target=True)  # a new session of the same target: no second inversion
    assert np.abs(twin.drive(frames[0]).image.astype(int) - expected[0]).max() <= 1
    assert twin.motion is not alone[0].motion


def test_server_batches_streaming_sessions_and_a_stalled_one_holds_nobody(pack: Path, clip: Path) -> None:
    """Two real clients on one server with a model pack: their frames run as batches of 2; while one
    client stops sending, the other keeps streaming."""
    from tests.server_support import Collector, clip_frames, looping, need_network, running_server

    need_network()
    from engine.reenactor import TargetSpec
    from engine.server.backends import PaperBackend
    from engine.server.client import FrameTrack, RemoteClient

    frames = clip_frames(clip)

    async def main():
        backend = PaperBackend(pack, runtime="eager", precision="fp32", batch=4)
        async with running_server(None, backend=backend) as server:
            server.default_target = TargetSpec.random(3)
            server.scheduler.batch = type(server.scheduler.batch)(max_batch=4, wait_ms=200)
            got = [Collector(), Collector()]
            clients, tracks = [], []
            for c in got:
                client = RemoteClient(server.url, "test-token-0123456789abcdef", on_output=c.output,
                                      on_message=c.message)
                track = FrameTrack(looping(frames), fps=30)
                await client.connect(track)
                clients.append(client)
                tracks.append(track)
            await got[0].until(lambda: len(got[0].outputs) >= 20 and len(got[1].outputs) >= 20, 120,
                               "outputs of both sessions")
            tracks[1].paused = True
            await asyncio.sleep(0.5)
            before = len(got[0].outputs)
            await got[0].until(lambda: len(got[0].outputs) >= before + 20, 120, "outputs while the other stalls")
            sizes = dict(server.scheduler.batch_sizes)
            for client in clients:
                await client.close()
            return got, sizes

    got, sizes = asyncio.run(main())
    assert sizes.get(2, 0) > 0, sizes  # frames of both sessions went through the model together
    batch_stats = [m["stages_ms"].get("batch") for m in got[1].of("stats")]
    assert 2.0 in batch_stats
    assert got[0].outputs[-1].image.shape == got[1].outputs[-1].image.shape


def test_batching_is_off_by_default_on_a_cpu(pack: Path) -> None:
    """On a CPU batches measured no faster and made every session wait longer (docs/remote.md): `serve`
    runs one frame at a time there unless --batch says otherwise; a GPU batches by default."""
    from engine.server.backends import PaperBackend
    from engine.server.config import default_batch

    assert default_batch("cpu") == 1 and default_batch("cuda") > 1
    backend = PaperBackend(pack, runtime="eager", precision="fp32")
    try:
        assert (backend.batch, backend.batched) == (1, False)
    finally:
        backend.close()
    backend = PaperBackend(pack, runtime="eager", precision="fp32", batch=3)
    try:
        assert (backend.batch, backend.batched) == (3, True)
    finally:
        backend.close()
