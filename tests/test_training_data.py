"""Data preparation on the real talking-head clip: aligned crops, resumable manifest, shards, skipped videos;
identity latents with ReStyle; a real `train run` on the prepared folder (tiny models, random loss backbones)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from app.cli import main
from engine.stylegan.images import to_tensor
from engine.media.video_io import H264Writer, read_image
from engine.runtime.weights import load_paper_pack
from models.paper import PaperModel
from tests.checkpoint_writers import TINY, tiny_generator, tiny_inverter, write_restyle
from training.cache import frame_path, latent_path, read_manifest
from training.data import StepSampler
from training.errors import TrainingError
from training.frames import FrameDataset, split_identities
from training.latents import compute_latents, load_inverter
from training.prepare import PrepareConfig, prepare

PEOPLE = ("alice/clip", "bob/yt01/00001", "carol/clip", "dave/clip")  # person/*.mp4 and VoxCeleb2 id/video/clip.mp4


@pytest.fixture(scope="module")
def videos(fixtures_dir, tmp_path_factory):
    """Four 'people' (links to the real clip), one file that is no video, one video without a face."""
    root = tmp_path_factory.mktemp("videos")
    clip = fixtures_dir / "video" / "carphone_pristine.mp4"
    for name in PEOPLE:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / f"{name}.mp4").symlink_to(clip)
    (root / "erin").mkdir()
    (root / "erin" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 but nothing else")
    (root / "frank").mkdir()
    with H264Writer.constant_rate(root / "frank" / "wall.mp4", 10, (96, 96)) as writer:
        for i in range(20):
            writer.write(np.full((96, 96, 3), 90 + i, np.uint8))
    return root


@pytest.fixture(scope="module")
def prepared(videos, tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    report = prepare(videos, data, PrepareConfig(sample_fps=2.0), workers=2, progress=False)
    return data, report


@pytest.fixture(scope="module")
def restyle(tmp_path_factory):
    return write_restyle(tmp_path_factory.mktemp("restyle") / "restyle_psp_ffhq_encode.pt",
                         tiny_inverter(tiny_generator(seed=4), seed=5))


def test_prepare_aligns_sampled_frames_and_reports_the_skipped(prepared):
    data, report = prepared
    assert report.clips == 6 and report.already_done == 0
    assert dict(report.skipped).keys() == {"erin/broken", "frank/wall"}
    assert "unreadable" in dict(report.skipped)["erin/broken"]
    assert dict(report.skipped)["frank/wall"] == "no face in any sampled frame"
    records = read_manifest(data)
    assert set(records) == {*PEOPLE, "erin/broken", "frank/wall"}
    first = records["bob/yt01/00001"]
    assert first.identity == "bob"
    # 120 frames at 29.97 fps sampled at 2 per second: every 15th frame (the clip's face is found in all)
    assert first.frames == list(range(0, 120, 15))
    assert report.frames == 4 * 8
    crop = read_image(frame_path(data, "bob/yt01/00001", 30))
    assert crop.shape == (256, 256, 3)
    assert 60 < crop.mean() < 200  # a face crop, not padding


def test_prepare_resumes_and_shards(prepared, videos, tmp_path, capsys):
    data, _ = prepared
    again = prepare(videos, data, progress=False)
    assert again.clips == 0 and again.already_done == 6
    assert main(["train", "prepare", str(videos), "-o", str(data)]) == 0
    assert "0 clips aligned (0 frames), 6 already done, 0 skipped" in capsys.readouterr().out
    shard = prepare(videos, tmp_path, rank=1, world=2, progress=False)  # clips 1, 3, 5 of the sorted six
    assert sorted(read_manifest(tmp_path)) == ["bob/yt01/00001", "dave/clip", "frank/wall"]
    assert (tmp_path / "manifest" / "shard-00001-of-00002.jsonl").is_file()
    assert shard.clips == 3
    with pytest.raises(TrainingError, match="videos folder not found"):
        prepare(tmp_path / "nowhere", tmp_path, progress=False)


def test_latents_invert_ten_frames_per_identity(prepared, restyle):
    data, _ = prepared
    report = compute_latents(data, restyle, progress=False)
    assert report.identities == 4 and report.frames == 4 * 8  # each identity has 8 frames (< 10)
    latents = np.load(latent_path(data, "alice"))
    assert latents.shape == (8, TINY.generator.n_latent, TINY.generator.style_dim)
    inverter = load_inverter(restyle)
    x = to_tensor(read_image(frame_path(data, "alice/clip", 0)), TINY.input_size)
    with torch.no_grad():
        np.testing.assert_allclose(latents[0], inverter.invert(x)[0].numpy(), rtol=1e-4, atol=1e-5)
    assert compute_latents(data, restyle, progress=False).already_done == 4
    with pytest.raises(TrainingError, match="give --restyle"):
        compute_latents(data, None, progress=False)


def test_frame_dataset_samples_are_functions_of_the_key(prepared, restyle):
    data, _ = prepared
    compute_latents(data, restyle, progress=False)
    train_ids, val_ids = split_identities(data, 2)
    assert len(train_ids) == 2 and len(val_ids) == 2 and not set(train_ids) & set(val_ids)
    g = TINY.generator
    ds = FrameDataset(data, train_ids, TINY.input_size, g.n_latent, g.style_dim, seed=0)
    assert len(ds) == 16
    a, b = ds[5], FrameDataset(data, train_ids, TINY.input_size, g.n_latent, g.style_dim, seed=0)[5]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert a["x"].shape == (3, 64, 64) and a["w_id"].shape == (g.n_latent, g.style_dim)
    assert not torch.equal(a["w_id"], a["w_id1"])  # B is another person
    epoch = sorted(int(ds.order(k)[0]) for k in range(16))
    assert epoch == list(range(16))  # one epoch visits every frame once
    batches = list(StepSampler(4, 0, 2, rank=1, world=2))
    assert batches == [[2, 3], [6, 7]]


def test_train_run_on_prepared_data(prepared, restyle, tmp_path, capsys):
    data, _ = prepared
    compute_latents(data, restyle, progress=False)
    out = tmp_path / "run"
    args = ["train", "run", str(data), "-o", str(out), "--restyle", str(restyle), "--val-identities", "2",
            "--workers", "0", "--log-every", "1", "--val-every", "2", "--checkpoint-every", "2"]
    assert main([*args, "--steps", "2"]) == 2
    assert "--lpips-alexnet" in capsys.readouterr().err  # real runs need the loss networks' weights
    assert main([*args, "--steps", "2", "--random-loss-backbones"]) == 0
    assert "trained 2 steps" in capsys.readouterr().out
    assert main([*args, "--steps", "4", "--random-loss-backbones"]) == 2
    assert "add --resume" in capsys.readouterr().err
    assert main([*args, "--steps", "4", "--random-loss-backbones", "--resume"]) == 0
    model, inverter, manifest = load_paper_pack(out / "model.safetensors")
    assert isinstance(model, PaperModel) and manifest["configs"]["generator"]["size"] == 64
    for name, value in load_inverter(restyle).encoder.state_dict().items():  # E_i comes from ReStyle's file
        assert torch.equal(inverter.encoder.state_dict()[name], value), name
    assert sorted(p.name for p in (out / "checkpoints").glob("*.pt")) == ["step_0000002.pt", "step_0000004.pt"]
