"""Run by torchrun in tests/test_training_trainer.py: one process of a small toy-world training job.

    torchrun --standalone --nproc_per_node 2 tests/toy_ddp_worker.py OUT STEPS
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project root, as `python -m` would

from training.toy import ToyConfig, toy_train_config, train_toy  # noqa: E402

SMALL_WORLD = ToyConfig(people=4, frames=8, held_out=2)

if __name__ == "__main__":
    out, steps = Path(sys.argv[1]), int(sys.argv[2])
    train_toy(out, toy_train_config(steps, log_every=1), SMALL_WORLD, progress=False)
