"""What training hands over: the paper's checkpoint format and a Mimic pack.

best_model.pt = {'state_dict': {encoder.*, mapping_net.*, decoder.*}, 'opts': {...}} (plain tensors and
values, as the paper's code writes it, so the paper's inference and `import-weights` read it);
the pack comes from `engine.runtime.weights.import_weights(best_model.pt, ReStyle checkpoint)`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.runtime.weights import import_weights
from models.paper import ReStyleInverter


def write_paper_checkpoint(path: Path, model: nn.Module, opts: dict[str, Any]) -> Path:
    """The paper's best_model.pt layout, written atomically."""
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return _save({"state_dict": state, "opts": dict(opts)}, Path(path))


def write_restyle_checkpoint(path: Path, inverter: ReStyleInverter, opts: dict[str, Any]) -> Path:
    """ReStyle-pSp's checkpoint layout ({state_dict: encoder.*, decoder.*; opts; latent_avg})."""
    state = {k: v.detach().cpu().clone() for k, v in inverter.state_dict().items() if k != "latent_avg"}
    return _save({"state_dict": state, "opts": dict(opts), "latent_avg": inverter.latent_avg.detach().cpu().clone()},
                 Path(path))


def write_pack(paper: Path, restyle: Path, arcface: Path | None, out: Path) -> Path:
    """A Mimic pack of the trained model with ReStyle's E_i (and ArcFace, when given)."""
    return import_weights(paper, restyle, arcface=arcface, out=out).path


def _save(content: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    torch.save(content, tmp)
    tmp.replace(path)
    return path
