"""`python -m app render`: the weights-free default on the real clip, and the paper pipeline from a pack."""
from __future__ import annotations

import av
import numpy as np
import pytest
import torch

from app.cli import main
from engine.media.video_io import read_image, write_image
from tests.support import tiny_pack


@pytest.fixture(scope="module")
def pack_and_model(tmp_path_factory):
    """A Mimic pack made from tiny random weights written in the published formats, and their model."""
    return tiny_pack(tmp_path_factory.mktemp("weights"))


def test_default_render_of_the_fixture_clip_keeps_every_frame(fixtures_dir, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    code = main(["render", "--driving", str(fixtures_dir / "video" / "carphone_pristine.mp4"),
                 "--target", str(fixtures_dir / "portraits" / "astronaut.png"), "-o", str(out)])
    assert code == 0
    assert "Landmark warp (no weights)" in capsys.readouterr().out
    with av.open(str(out)) as video:
        stream = video.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = sum(1 for _ in video.decode(stream))
        assert abs(float(stream.average_rate) - 29.97) < 0.01
    assert frames == 120
    assert not list(tmp_path.glob("*.partial.mp4"))


def test_image_driver_writes_one_transferred_image(fixtures_dir, tmp_path):
    out = tmp_path / "one.png"
    assert main(["render", "--driving", str(fixtures_dir / "aligned" / "1.png"),
                 "--target", str(fixtures_dir / "portraits" / "astronaut.png"), "-o", str(out)]) == 0
    assert read_image(out).shape == (512, 512, 3)


def test_aligned_pack_render_equals_the_paper_forward(pack_and_model, tmp_path):
    pack, model = pack_and_model
    g = model.decoder.config
    rng = np.random.RandomState(0)
    driving = rng.randint(0, 256, (g.size, g.size, 3), dtype=np.uint8)
    write_image(tmp_path / "driving.png", driving)
    latent = rng.randn(g.n_latent, g.style_dim).astype(np.float32)
    np.save(tmp_path / "id.npy", latent)
    out = tmp_path / "out.png"
    assert main(["render", "--weights", str(pack), "--aligned", "--runtime", "eager", "--precision", "fp32", "--driving", str(tmp_path / "driving.png"),
                 "--target", str(tmp_path / "id.npy"), "-o", str(out)]) == 0
    from engine.stylegan.images import to_tensor

    with torch.no_grad():
        expected = model.eval()(to_tensor(driving, model.config.input_size), torch.from_numpy(latent)[None])
    expected = ((expected[0] + 1) / 2).clamp(0, 1).mul(255).permute(1, 2, 0).numpy().astype(np.uint8)
    expected = expected[240 * g.size // 1024:]  # the official crop
    got = read_image(out)
    assert got.shape == expected.shape
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


def test_random_identity_video_render_from_a_pack(pack_and_model, fixtures_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MIMIC_CACHE_DIR", str(tmp_path / "cache"))
    pack, _ = pack_and_model
    out = tmp_path / "random.mp4"
    assert main(["render", "--weights", str(pack), "--runtime", "eager", "--target", "random", "--seed", "3",
                 "--driving", str(fixtures_dir / "video" / "carphone_pristine.mp4"), "-o", str(out)]) == 0
    with av.open(str(out)) as video:
        assert sum(1 for _ in video.decode(video=0)) == 120


@pytest.mark.parametrize("args,message", [
    (["--driving", "missing.mp4", "--target", "random"], "missing.mp4"),
    (["--driving", "{clip}", "--target", "random"], "needs a model pack"),
    (["--driving", "{clip}", "--target", "nope.png"], "nope.png"),
])
def test_bad_inputs_are_one_line_errors(args, message, fixtures_dir, tmp_path, capsys):
    args = [a.format(clip=fixtures_dir / "video" / "carphone_pristine.mp4") for a in args]
    assert main(["render", *args, "-o", str(tmp_path / "o.mp4")]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "error:" in last and message in last
    assert not (tmp_path / "o.mp4").exists()
