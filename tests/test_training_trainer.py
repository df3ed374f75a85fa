"""Trainer mechanics on the toy world: bit-exact resume, 2 processes under torchrun = 1 process, outputs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from app.cli import main
from engine.runtime.weights import load_paper_pack
from models.checkpoints.formats import Kind, read_checkpoint
from models.paper import PaperModel
from tests.checkpoint_writers import TINY, tiny_arcface
from training.losses import LossWeights
from training.sources import init_encoder_from_arcface
from training.toy import ToyConfig, ToyWorld, run_toy, toy_train_config

ROOT = Path(__file__).resolve().parents[1]
SMALL_WORLD = ToyConfig(people=4, frames=8, held_out=2)


def _checkpoint(run: Path, step: int) -> dict:
    return torch.load(run / "checkpoints" / f"step_{step:07d}.pt", weights_only=True)


def _metrics(run: Path, split: str = "train") -> list[dict]:
    return [row for row in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if row["split"] == split]


def test_resume_continues_bit_exactly(tmp_path):
    straight = tmp_path / "straight"
    run_toy(straight, world_config=SMALL_WORLD, train_config=toy_train_config(8, checkpoint_every=4, log_every=1),
            progress=False)
    split = tmp_path / "split"
    run_toy(split, world_config=SMALL_WORLD, train_config=toy_train_config(4, checkpoint_every=4, log_every=1),
            progress=False)  # stops between two Lookahead syncs (every 6 steps)
    run_toy(split, world_config=SMALL_WORLD, train_config=toy_train_config(8, checkpoint_every=4, log_every=1),
            resume=split / "checkpoints" / "step_0000004.pt", progress=False)
    a, b = _checkpoint(straight, 8), _checkpoint(split, 8)
    assert a["model"].keys() == b["model"].keys()
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    for mine, theirs in zip(a["optimizer"]["slow"], b["optimizer"]["slow"]):
        assert torch.equal(mine, theirs)
    assert [r["loss"] for r in _metrics(straight)] == [r["loss"] for r in _metrics(split)]


def test_a_checkpoint_only_resumes_the_same_settings(tmp_path):
    from training.errors import TrainingError

    run_toy(tmp_path, world_config=SMALL_WORLD, train_config=toy_train_config(2, log_every=1), progress=False)
    with pytest.raises(TrainingError, match="step_0000002.pt was trained with other batch_size"):
        run_toy(tmp_path, world_config=SMALL_WORLD, train_config=toy_train_config(4, batch_size=2), progress=False,
                resume=tmp_path / "checkpoints" / "step_0000002.pt")


def test_two_gloo_processes_follow_the_one_process_loss_curve(tmp_path):
    """torchrun, 2 CPU processes x batch 2 vs 1 process x batch 4: same global batches, same curve."""
    steps = 6  # one Lookahead sync
    one = tmp_path / "one"
    run_toy(one, world_config=SMALL_WORLD, train_config=toy_train_config(steps, log_every=1), progress=False)
    two = tmp_path / "two"
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(ROOT / "tests" / "toy_ddp_worker.py"), str(two), str(steps)],
        cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    curve_one, curve_two = _metrics(one), _metrics(two)
    assert [r["step"] for r in curve_two] == list(range(1, steps + 1))
    for a, b in zip(curve_one, curve_two):
        for term in set(a) - {"split"}:
            assert b[term] == pytest.approx(a[term], rel=1e-4, abs=1e-6), (a["step"], term)
    w1, w2 = _checkpoint(one, steps)["model"], _checkpoint(two, steps)["model"]
    for name in w1:
        torch.testing.assert_close(w2[name], w1[name], rtol=1e-3, atol=1e-5, msg=name)
    assert (two / "model.safetensors").is_file()


def test_run_folder_has_grids_tensorboard_paper_checkpoint_and_pack(tmp_path):
    run_toy(tmp_path, world_config=SMALL_WORLD, train_config=toy_train_config(4, log_every=2, val_every=2),
            progress=False)
    grids = sorted((tmp_path / "samples").glob("step_*.png"))
    assert [g.name for g in grids] == ["step_0000002.png", "step_0000004.png"]
    from engine.media.video_io import read_image

    grid = read_image(grids[-1])  # 4 rows x (driver | target | output | reconstruction), 64 px + 2 px gaps
    assert grid.shape == (4 * 66 - 2, 4 * 66 - 2, 3)
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert {r["step"] for r in _metrics(tmp_path, "val")} == {2, 4}
    ckpt = read_checkpoint(tmp_path / "best_model.pt")
    assert ckpt.kind is Kind.PAPER
    assert ckpt.content["opts"]["lpips_lambda_crop"] == 0.3 and ckpt.content["opts"]["optim_name"] == "ranger"
    model, inverter, manifest = load_paper_pack(tmp_path / "model.safetensors")
    state = ckpt.content["state_dict"]
    for name, value in model.state_dict().items():
        assert torch.equal(value, state[name]), name
    assert {s["role"] for s in manifest["sources"]} == {"paper", "restyle"}


def test_finetune_generator_and_cosface_train_their_parts(tmp_path):
    run_toy(tmp_path, world_config=SMALL_WORLD, progress=False,
            train_config=toy_train_config(2, finetune_generator=True, log_every=1,
                                          loss=LossWeights(cosface=1.0)))
    state = _checkpoint(tmp_path, 2)["model"]
    assert any(k.startswith("decoder.") for k in state)  # "Ours-Gen": G is trained and saved
    fresh = ToyWorld(SMALL_WORLD).generator.state_dict()
    assert not torch.equal(state["decoder.conv1.conv.weight"], fresh["conv1.conv.weight"])
    assert "cosface" in _metrics(tmp_path)[0]  # "Ours-Cos"
    assert read_checkpoint(tmp_path / "best_model.pt").content["opts"]["train_decoder"] is True


def test_encoder_starts_from_arcface_like_psp():
    model = PaperModel(TINY)
    arcface = tiny_arcface()
    copied = init_encoder_from_arcface(model, arcface)
    assert copied == len([k for k in arcface.state_dict() if k.startswith(("input_layer.", "body."))])
    assert torch.equal(model.encoder.body[0].res_layer[1].weight, arcface.body[0].res_layer[1].weight)


def test_toy_command_prints_the_figures(tmp_path, capsys):
    assert main(["train", "--toy", "--steps", "1", "--log-every", "1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "reconstruction loss" in out and "no-motion baseline" in out
    assert (tmp_path / "model.safetensors").is_file()
