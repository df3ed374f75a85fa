"""The proof that training learns, on this CPU: the toy world, 200 steps of the real Trainer (≤ 2 minutes)."""
from __future__ import annotations

from training.toy import run_toy


def test_training_learns_motion_in_the_toy_world(tmp_path):
    report = run_toy(tmp_path, steps=200, progress=False)
    print("\n".join(report.lines()))  # the figures, for `pytest -s`
    assert report.steps == 200
    assert report.reconstruction_gain >= 5.0  # the objective's reconstruction terms on held-out frames
    before, after = report.before, report.after
    assert after.reconstruction_mse < before.reconstruction_mse / 3  # also over the whole frame
    # motion moves from A to B: closer to the ground truth G(w_B + m_A) than B without motion, and than before
    assert report.transfer_gain >= 1.5
    assert after.transfer_mse_frame < after.baseline_mse_frame
    assert after.transfer_mse < before.transfer_mse / 2
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "best_model.pt").is_file()
