"""Pick the reenactor: the StyleGAN pipeline when a model pack is given, else the weights-free warp."""
from __future__ import annotations

import logging
from pathlib import Path

from engine.reenactor import Reenactor

log = logging.getLogger(__name__)


def create_reenactor(weights: Path | None = None, runtime: str = "auto") -> Reenactor:
    """A ready reenactor (no target set yet).

    weights: a Mimic model pack (``python -m app import-weights``); None → the landmark warp,
             which needs no downloaded weights.
    runtime: for the StyleGAN pipeline: "auto", "eager", "compile", "onnx", "tensorrt" (see engine.runtimes).
    """
    if weights is None:
        from engine.warp import WarpReenactor

        reenactor: Reenactor = WarpReenactor()
    else:
        from engine.stylegan import StyleGANReenactor

        reenactor = StyleGANReenactor.from_pack(Path(weights), runtime=runtime)
    log.info("reenactor: %s", reenactor.describe())
    return reenactor
