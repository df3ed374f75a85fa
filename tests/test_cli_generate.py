"""`python -m app generate` / `import-weights` end to end, through app.cli.main."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from app.cli import main
from engine.media.video_io import read_image
from engine.stylegan.images import to_image
from models.stylegan2 import NoiseMode
from tests.checkpoint_writers import (
    one_thread, tiny_generator, tiny_inverter, tiny_paper, write_latent_npy, write_nvidia, write_paper, write_restyle,
    write_rosinality,
)

pytestmark = pytest.mark.usefixtures(one_thread.__name__)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_rosinality(tmp_path_factory.mktemp("w") / "stylegan2-ffhq-config-f.pt", tiny_generator(seed=0))


def run(*argv: str | Path) -> int:
    return main([str(a) for a in argv])


def test_seed_writes_a_deterministic_png(weights: Path, tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"
    assert run("generate", "--weights", weights, "--seed", 3, "--noise", "const", "-o", a) == 0
    assert run("generate", "--weights", weights, "--seed", 3, "--noise", "const", "-o", b) == 0
    assert run("generate", "--weights", weights, "--seed", 4, "-o", c) == 0
    image = read_image(a)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8 and image.std() > 5
    assert a.read_bytes() == b.read_bytes()
    assert not np.array_equal(image, read_image(c))


def test_truncation_zero_is_the_mean_face(weights: Path, tmp_path: Path) -> None:
    for seed in (1, 2):
        out = tmp_path / f"{seed}.png"
        assert run("generate", "--weights", weights, "--seed", seed, "--truncation", 0, "-o", out) == 0
    assert np.array_equal(read_image(tmp_path / "1.png"), read_image(tmp_path / "2.png"))


def test_random_noise_follows_the_seed(weights: Path, tmp_path: Path) -> None:
    for name in ("r1", "r2", "const"):
        noise = "const" if name == "const" else "random"
        assert run("generate", "--weights", weights, "--seed", 5, "--noise", noise, "-o", tmp_path / f"{name}.png") == 0
    assert np.array_equal(read_image(tmp_path / "r1.png"), read_image(tmp_path / "r2.png"))
    assert not np.array_equal(read_image(tmp_path / "r1.png"), read_image(tmp_path / "const.png"))


def test_latent_renders_exactly(tmp_path: Path) -> None:
    g = tiny_generator(seed=6, conv_clamp=256.0)
    pkl = write_nvidia(tmp_path / "stylegan2-ffhq-64x64.pkl", g)
    latent = np.random.RandomState(0).randn(1, g.config.n_latent, g.config.style_dim).astype(np.float32)
    path = write_latent_npy(tmp_path / "face.npy", latent)
    assert run("generate", "--weights", pkl, "--latent", path, "--noise", "none", "-o", tmp_path / "out.png") == 0
    with torch.no_grad():
        expected = to_image(g.synthesize(torch.from_numpy(latent), NoiseMode.NONE))
    assert np.array_equal(read_image(tmp_path / "out.png"), expected)


def test_import_weights_then_generate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tiny_paper()
    paper = write_paper(tmp_path / "best_model.pt", model)
    restyle = write_restyle(tmp_path / "restyle_psp_ffhq_encode.pt", tiny_inverter(model.decoder))
    pack = tmp_path / "mimic.safetensors"
    assert run("import-weights", "--paper", paper, "--restyle", restyle, "-o", pack) == 0
    out = capsys.readouterr().out
    assert f"wrote {pack} (" in out and "E_i, E_m, G, M, latent_avg" in out
    assert (tmp_path / "mimic.json").is_file()
    assert run("generate", "--weights", pack, "--seed", 0, "-o", tmp_path / "pack.png") == 0
    assert run("generate", "--weights", paper, "--seed", 0, "-o", tmp_path / "paper.png") == 0
    assert np.array_equal(read_image(tmp_path / "pack.png"), read_image(tmp_path / "paper.png"))
    gen_pack = tmp_path / "g.safetensors"
    assert run("import-weights", "--stylegan", paper, "-o", gen_pack) == 0
    assert "wrote" in capsys.readouterr().out


def test_bad_files_exit_2_with_one_error_line(weights: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x80\x04\x95 truncated")
    hostile = tmp_path / "hostile.pkl"
    hostile.write_bytes(f"cos\nsystem\n(S'touch {tmp_path / 'pwned'}'\ntR.".encode())
    wrong = write_latent_npy(tmp_path / "wrong.npy", np.zeros((18, 512), np.float32))
    cases = [
        (["--weights", garbage, "--seed", 1], "error: garbage.pt is truncated or corrupt ("),
        (["--weights", hostile, "--seed", 1], "error: refusing to load hostile.pkl: it asks to run os.system; "),
        (["--weights", tmp_path / "none.pt", "--seed", 1], "error: file not found: "),
        (["--weights", weights, "--latent", wrong],
         "error: wrong.npy holds a latent of shape [18, 512]; expected [10, 64]"),
    ]
    for argv, message in cases:
        assert run("generate", *argv, "-o", tmp_path / "out.png") == 2
        err = capsys.readouterr().err
        assert err.startswith(message) and err.count("\n") == 1, err
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "out.png").exists()


def test_usage_errors(weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        run("generate", "--weights", weights, "--latent", weights, "--truncation", 0.5, "-o", tmp_path / "x.png")
    assert info.value.code == 2 and "--truncation applies to --seed only" in capsys.readouterr().err
    assert run("generate", "--weights", weights, "--seed", 1, "-o", tmp_path / "x.mp4") == 2  # a bad value: no usage
    err = capsys.readouterr().err
    assert f"error: cannot write image {tmp_path / 'x.mp4'}: expected a .png / " in err and "usage:" not in err
    with pytest.raises(SystemExit):
        run("import-weights", "--paper", weights, "-o", tmp_path / "x.safetensors")
    assert "--paper and --restyle go together" in capsys.readouterr().err


def test_commands_import_no_torch() -> None:
    code = ("import sys, app.cli; app.cli.build_parser(); "
            "assert 'torch' not in sys.modules, 'torch imported by the app layer'")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
