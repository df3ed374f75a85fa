"""`render` flags for paste-back, framing, size and motion (tiny random pack; the real portrait fixture)."""
from __future__ import annotations

import numpy as np
import pytest

from app.cli import main
from engine.face.framing import frame_target
from engine.face.landmarks import FaceMeshDetector, MeshConfig
from engine.media.video_io import read_image
from tests.support import tiny_pack


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    return tiny_pack(tmp_path_factory.mktemp("weights"))[0]


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MIMIC_CACHE_DIR", str(tmp_path / "cache"))


def render(fixtures_dir, out, *flags) -> int:
    return main(["render", "--driving", str(fixtures_dir / "aligned" / "1.png"), "--target",
                 str(fixtures_dir / "portraits" / "astronaut.png"), "--runtime", "eager", "-o", str(out), *flags])


def test_pack_render_pastes_back_into_the_portrait_by_default(pack, fixtures_dir, tmp_path):
    out = tmp_path / "out.png"
    assert render(fixtures_dir, out, "--weights", str(pack)) == 0
    got = read_image(out)
    portrait = read_image(fixtures_dir / "portraits" / "astronaut.png")
    with FaceMeshDetector(MeshConfig(static_images=True)) as detector:
        framed, mesh = frame_target(portrait, detector.detect(portrait).points, "face", 512, 0.45)
    assert got.shape == framed.shape == (512, 512, 3)
    np.testing.assert_array_equal(got[:40], framed[:40])  # hair and background: the portrait's own
    x, y = np.rint(mesh[1, :2]).astype(int)  # the nose: the generated face
    assert np.abs(got[y - 5:y + 5, x - 5:x + 5].astype(int) - framed[y - 5:y + 5, x - 5:x + 5]).mean() > 5


def test_framing_and_size_apply_to_both_reenactors(pack, fixtures_dir, tmp_path):
    for weights in ([], ["--weights", str(pack)]):
        out = tmp_path / f"p{len(weights)}.png"
        assert render(fixtures_dir, out, *weights, "--framing", "portrait", "--size", "256") == 0
        assert read_image(out).shape == (256, 256, 3)  # the portrait is square


def test_no_paste_back_gives_the_generated_crop(pack, fixtures_dir, tmp_path):
    out = tmp_path / "crop.png"
    assert render(fixtures_dir, out, "--weights", str(pack), "--no-paste-back", "--motion", "absolute",
                  "--smoothing", "0", "--expression", "0.5") == 0
    assert read_image(out).shape == (64 - 240 * 64 // 1024, 64, 3)  # the tiny G's 64², cropped officially
    assert render(fixtures_dir, out, "--weights", str(pack), "--no-paste-back", "--size", "128") == 0
    assert read_image(out).shape == (2 * (64 - 240 * 64 // 1024), 128, 3)  # --size: the crop's width


@pytest.mark.parametrize("flags,message", [
    (["--motion", "absolute"], "need a model pack"),
    (["--no-paste-back"], "need a model pack"),
    (["--weights", "{pack}", "--aligned", "--motion", "relative"], "drop --motion"),
])
def test_conflicting_flags_are_one_line_errors(pack, fixtures_dir, tmp_path, capsys, flags, message):
    assert render(fixtures_dir, tmp_path / "o.png", *[f.format(pack=pack) for f in flags]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "error:" in last and message in last
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("flags,message", [(["--smoothing", "2"], "smoothing strength"),
                                           (["--size", "10"], "output size, a whole number from 64 to 4096 pixels"),
                                           (["--expression", "x"], "expression strength")])
def test_out_of_range_values_are_refused(fixtures_dir, tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit):
        render(fixtures_dir, tmp_path / "o.png", *flags)
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "error:" in last and message in last
