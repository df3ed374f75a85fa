"""Pick the reenactor: the StyleGAN pipeline when a model pack is given, else the weights-free warp."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from engine.reenactor import ProgressFn, Reenactor

if TYPE_CHECKING:
    from engine.stylegan.reenactor import StyleGANOptions
    from engine.warp import WarpConfig

log = logging.getLogger(__name__)


def create_reenactor(
    weights: Path | None = None,
    runtime: str = "auto",
    device: str = "auto",
    precision: str = "auto",
    aligned: bool = False,
    stylegan: "StyleGANOptions | None" = None,
    warp: "WarpConfig | None" = None,
    progress: ProgressFn | None = None,
) -> Reenactor:
    """A ready reenactor (no target set yet).

    weights:   a Mimic model pack (``python -m app import-weights``); None → the landmark warp,
               which needs no downloaded weights.
    runtime:   StyleGAN pipeline only: auto, eager, compile, onnx, tensorrt (engine.runtime.runtimes).
    device:    StyleGAN pipeline only: auto, cpu, cuda. A missing GPU is an error, not a fallback.
    precision: StyleGAN pipeline only: auto, fp32, bf16 (CPU), fp16 (CUDA).
    aligned:   StyleGAN pipeline only: the paper's semantics exactly (inputs already FFHQ-aligned,
               absolute motion, the official crop, no paste-back, no smoothing); overrides `stylegan`.
    stylegan:  StyleGAN pipeline options (paste-back, framing, motion, smoothing, expression).
    warp:      landmark warp settings (framing, size, gains, smoothing).
    progress:  StyleGAN pipeline only: hears the build stages (reading the pack, the folded mapping,
               each graph loaded from the cache or built, with the build's estimated time).
    """
    if weights is None:
        from engine.warp import WarpConfig, WarpReenactor

        reenactor: Reenactor = WarpReenactor(warp or WarpConfig())
    else:
        from engine.stylegan import StyleGANReenactor
        from engine.stylegan.reenactor import StyleGANOptions

        options = StyleGANOptions.paper() if aligned else (stylegan or StyleGANOptions())
        reenactor = StyleGANReenactor.from_pack(Path(weights), runtime=runtime, device=device,
                                                precision=precision, options=options,
                                                progress=progress)
    log.debug("reenactor: %s", reenactor.describe())  # the command or the window shows it (once)
    return reenactor
