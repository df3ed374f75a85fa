"""Build the reenactor a setup describes: the weights-free warp (a WarpConfig) or the paper's StyleGAN
pipeline from a model pack (a StyleGANSetup). Torch is imported only when a StyleGAN pipeline is built."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Union

from engine.reenactor import ProgressFn, Reenactor, ReenactorKind
from engine.stylegan.options import StyleGANOptions

if TYPE_CHECKING:
    from engine.warp import WarpConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StyleGANSetup:
    """The paper's model from a Mimic pack (``python -m app import-weights``), on a runtime."""

    kind: ClassVar[ReenactorKind] = ReenactorKind.STYLEGAN
    weights: Path
    runtime: str = "auto"  # auto, eager, compile, onnx, tensorrt (engine.runtime.runtimes)
    device: str = "auto"  # auto, cpu, cuda: a missing GPU is an error, not a fallback
    precision: str = "auto"  # auto, fp32, bf16 (CPU), fp16 (CUDA)
    options: StyleGANOptions = field(default_factory=StyleGANOptions)  # StyleGANOptions.paper(): `render --aligned`
    cuda_graphs: bool = True  # CUDA graphs where they are the default (`compile` on CUDA); False: --no-cuda-graphs


ReenactorSetup = Union["WarpConfig", StyleGANSetup]  # the landmark warp's settings are its WarpConfig


def create_reenactor(setup: ReenactorSetup | None = None, progress: ProgressFn | None = None) -> Reenactor:
    """A ready reenactor (no target set yet); None: the landmark warp with its defaults (no weights needed).

    progress: a StyleGAN pipeline's build stages (reading the pack, the folded mapping, each graph loaded
    from the cache or built, with the build's estimated time).
    """
    if isinstance(setup, StyleGANSetup):
        from engine.stylegan import StyleGANReenactor

        reenactor: Reenactor = StyleGANReenactor.from_pack(Path(setup.weights), runtime=setup.runtime,
                                                           device=setup.device, precision=setup.precision,
                                                           options=setup.options, progress=progress,
                                                           cuda_graphs=setup.cuda_graphs)
    else:
        from engine.warp import WarpConfig, WarpReenactor

        reenactor = WarpReenactor(setup or WarpConfig())
    log.debug("reenactor: %s", reenactor.describe())  # the command or the window shows it (once)
    return reenactor


def setup_for(weights: Path | None, runtime: str = "auto", device: str = "auto", precision: str = "auto",
              cuda_graphs: bool = True) -> ReenactorSetup | None:
    """The setup the app starts with: the StyleGAN pipeline (default options) for a pack, else the warp (None)."""
    return None if weights is None else StyleGANSetup(Path(weights), runtime, device, precision,
                                                      cuda_graphs=cuda_graphs)
