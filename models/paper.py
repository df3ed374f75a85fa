"""The paper's model (Jahoda & Čech): E_m + M + G, and the ReStyle inverter (E_i + G) for identities."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from models.encoders import MotionEncoder, ReStyleEncoder
from models.irse import IRSEConfig
from models.mapping import MappingNet
from models.stylegan2 import Generator, GeneratorConfig, NoiseMode


@dataclass(frozen=True)
class PaperConfig:
    generator: GeneratorConfig = GeneratorConfig()  # G (config-f FFHQ 1024 in the paper)
    encoder: IRSEConfig = IRSEConfig()  # the IR-SE body of E_m (E_i uses the same with 6 input channels)
    input_size: int = 256  # encoders' input resolution
    restyle_iters: int = 5  # ReStyle iterations per inversion

    @staticmethod
    def paper() -> "PaperConfig":
        return PaperConfig()

    @staticmethod
    def tiny() -> "PaperConfig":
        """A few-MB model with every part of the real one, for tests and the toy training world."""
        return PaperConfig(
            generator=GeneratorConfig(size=64, style_dim=64, n_mlp=2, channel_max=32),
            encoder=IRSEConfig(units=(1, 1, 1, 1), channels=(16, 16, 32, 32)),
            input_size=64,
            restyle_iters=3,
        )

    @property
    def identity_encoder(self) -> IRSEConfig:
        return dataclasses.replace(self.encoder, in_channels=6)


class PaperModel(nn.Module):
    """img = G(M(w_id ‖ E_m(driving))) with W+ fed straight to the synthesis network.

    State-dict keys equal the paper's `best_model.pt` (`encoder.*`, `mapping_net.*`, `decoder.*`).
    """

    def __init__(self, config: PaperConfig = PaperConfig()) -> None:
        super().__init__()
        self.config = config
        g = config.generator
        self.encoder = MotionEncoder(config.encoder, g.n_latent, g.style_dim)
        self.mapping_net = MappingNet(g.n_latent, g.style_dim)
        self.decoder = Generator(g)

    def forward(self, driving: torch.Tensor, w_id: torch.Tensor, noise: NoiseMode = NoiseMode.CONST) -> torch.Tensor:
        """driving [B, 3, S, S] in [-1, 1], w_id [B, n, D] → image [B, 3, size, size]."""
        return self.decoder.synthesize(self.mapping_net(w_id, self.encoder(driving)), noise)


class ReStyleInverter(nn.Module):
    """ReStyle-pSp inversion: start at latent_avg and its image; each step adds E_i's residual.

    State-dict keys: `encoder.*`, `decoder.*` (as `restyle_psp_ffhq_encode.pt`) and `latent_avg` [n, D].
    """

    def __init__(self, config: PaperConfig = PaperConfig()) -> None:
        super().__init__()
        self.config = config
        g = config.generator
        self.encoder = ReStyleEncoder(config.identity_encoder, g.n_latent, g.style_dim, config.input_size)
        self.decoder = Generator(g)
        self.register_buffer("latent_avg", torch.zeros(g.n_latent, g.style_dim))

    def render_pooled(self, w_plus: torch.Tensor) -> torch.Tensor:
        """G(W+) with the stored noise, average-pooled to the encoder's input size (ReStyle's face_pool)."""
        size = self.config.input_size
        return F.adaptive_avg_pool2d(self.decoder.synthesize(w_plus, NoiseMode.CONST), (size, size))

    def invert(self, x: torch.Tensor, n_iters: int | None = None,
               progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
        """x [B, 3, S, S] in [-1, 1] → W+ [B, n, D]; progress(i, n) is called after each iteration."""
        n_iters = self.config.restyle_iters if n_iters is None else n_iters
        latent = self.latent_avg.unsqueeze(0).expand(x.shape[0], -1, -1)
        image = self.render_pooled(latent)  # the average image
        for i in range(n_iters):
            latent = latent + self.encoder(torch.cat([x, image], dim=1))
            if i + 1 < n_iters:
                image = self.render_pooled(latent)
            if progress is not None:
                progress(i + 1, n_iters)
        return latent
