"""Pick the reenactor: the StyleGAN pipeline when a model pack is given, else the weights-free warp."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import MimicError
from engine.reenactor import Reenactor

if TYPE_CHECKING:
    from engine.warp.retarget import Retargeting

log = logging.getLogger(__name__)


def create_reenactor(
    weights: Path | None = None,
    runtime: str = "auto",
    device: str = "auto",
    precision: str = "auto",
    aligned: bool = False,
    retargeting: Retargeting | None = None,
) -> Reenactor:
    """A ready reenactor (no target set yet).

    weights:   a Mimic model pack (``python -m app import-weights``); None → the landmark warp,
               which needs no downloaded weights.
    runtime:   StyleGAN pipeline only: auto, eager, compile, onnx, tensorrt (engine.runtimes).
    device:    StyleGAN pipeline only: auto, cpu, cuda. A missing GPU is an error, not a fallback.
    precision: StyleGAN pipeline only: auto, fp32, bf16 (CPU), fp16 (CUDA).
    aligned:   StyleGAN pipeline only: driving frames and target images are already FFHQ-aligned.
    retargeting: landmark warp only: expression / head / eyes / mouth controls and eye contact
               (None: the defaults).
    """
    if weights is None:
        from engine.warp import WarpConfig, WarpReenactor

        config = WarpConfig() if retargeting is None else WarpConfig(retargeting=retargeting)
        reenactor: Reenactor = WarpReenactor(config)
    elif retargeting is not None:
        raise MimicError("--expression, --head, --eyes, --mouth and --eye-contact apply to the landmark warp "
                         "only (render without --weights)")
    else:
        from engine.stylegan import StyleGANReenactor
        from engine.stylegan.reenactor import StyleGANOptions

        reenactor = StyleGANReenactor.from_pack(
            Path(weights), runtime=runtime, device=device, precision=precision,
            options=StyleGANOptions(aligned_input=aligned),
        )
    log.info("reenactor: %s", reenactor.describe())
    return reenactor
