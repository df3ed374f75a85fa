"""The paper's networks on a runtime, speaking tensors: E_m's features, the folded mapping M, and G.

    features(x)            driving crop [B, 3, S, S] in [-1, 1] → f [B, D]  (E_m up to its last layer)
    identity_constant(w)   identity W+ [1, n, D] → the mapping's constant c(target)
    map(f, c)              f [1, D] → W+ [1, n, D] = K·f + c
    generate(w)            W+ [1, n, D] → image [1, 3, H, W] in ≈[-1, 1]

The pipeline that speaks images (alignment, motion, paste-back) is engine/stylegan/pipeline.py.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.reenactor import ProgressFn
from engine.runtime.cuda_graphs import CapturedGraph
from engine.runtime.cuda_graphs import wanted as cuda_graphs_wanted
from engine.runtime.auto_choice import GraphSpec, build_timed
from engine.runtime.runtimes import RuntimeChoice, cache_dir, gate_fp16
from engine.stylegan.folding import FoldedMapping

NOISE_LEVELS = 6.0  # grey levels of sensor noise whose feature response sets the smoothing filter's units
NOISE_SAMPLES = 4  # noisy copies of the target crop that measure that response


class MotionFeatures(nn.Module):
    """E_m up to (not including) its last EqualLinear: [B, 3, S, S] → f [B, D]."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder.features(x)


class StyleGANWrapper:
    """E_m (features) and G built on `runtime` (cached graphs keyed by `weights_id`), and the folded mapping."""

    def __init__(self, model: nn.Module, weights_id: str, runtime: RuntimeChoice,
                 progress: ProgressFn | None = None, cuda_graphs: bool = True) -> None:
        """`progress` hears each build stage: the folded mapping, then E_m and G (loaded or built).
        `cuda_graphs`: capture the steady frame in CUDA graphs where that is the default (`compile` on
        CUDA, engine.runtime.cuda_graphs): E_m, and the folded mapping → G (the motion step between them
        runs on the CPU); False turns them off (--no-cuda-graphs)."""
        cfg = model.decoder.config
        runtime = gate_fp16(runtime, model.decoder, model.encoder, model.config.input_size)  # fp16 only if safe
        self.runtime = runtime
        self.input_size = model.config.input_size
        self.n_latent, self.style_dim, self.g_size = cfg.n_latent, cfg.style_dim, cfg.size
        model = model.eval().requires_grad_(False)
        report = progress or (lambda fraction, message: None)
        self.mapping = FoldedMapping(
            model.encoder.linear, model.mapping_net.linear, cfg.n_latent, cfg.style_dim, cache_dir() / "folded",
            lambda building: report(0.05, "folding the mapping (first use of this pack)" if building
                                    else "loading the folded mapping from cache")).to(runtime.device)
        x0 = torch.zeros(1, 3, self.input_size, self.input_size)
        w0 = torch.zeros(1, cfg.n_latent, cfg.style_dim)
        graphs = (GraphSpec(MotionFeatures(model.encoder), (x0,), f"{weights_id}:E_m",
                            lambda fraction, message: report(0.1, message)),
                  GraphSpec(model.decoder, (w0,), f"{weights_id}:G", lambda fraction, message: report(0.4, message)))
        # `auto` times the candidates on these very graphs (first use of the pack) and keeps the fastest
        self.runtime, (self._features, self._generate) = build_timed(graphs, runtime, report)
        runtime = self.runtime
        self.cuda_graphs = cuda_graphs_wanted(runtime.name, runtime.device, cuda_graphs)
        self._steady_features = CapturedGraph(self._features, name="E_m") if self.cuda_graphs else self._features
        self._steady_generate = (CapturedGraph(self._map_and_generate, name="map → G") if self.cuda_graphs
                                 else self._map_and_generate)

    @property
    def graphs(self) -> tuple:
        """(E_m features, G) as built, never a captured CUDA graph (batches of any size on eager)."""
        return self._features, self._generate

    @property
    def device(self) -> torch.device:
        return self.mapping.fold_weight.device

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, S, S] in [-1, 1] → f [B, D] (a CUDA graph replay where those are on)."""
        return self._steady_features(x)

    def identity_constant(self, w_id: torch.Tensor) -> torch.Tensor:
        """Identity W+ [1, n, D] → c(target), the mapping's per-identity constant."""
        return self.mapping.identity_constant(w_id.to(self.device))

    @torch.inference_mode()
    def map(self, f: torch.Tensor, constant: torch.Tensor) -> torch.Tensor:
        """f [1, D] → W+ [1, n, D]."""
        return self.mapping(f.to(constant.device), constant)

    def map_and_generate(self, f: torch.Tensor, constant: torch.Tensor) -> torch.Tensor:
        """f [1, D] → image [1, 3, H, W]: the folded mapping then G, one CUDA graph replay where those are on."""
        return self._steady_generate(f.to(constant.device), constant)

    def _map_and_generate(self, f: torch.Tensor, constant: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            w = self.mapping(f, constant)
        return self._generate(w)

    def generate(self, w: torch.Tensor) -> torch.Tensor:
        """W+ [1, n, D] → image [1, 3, H, W] in ≈[-1, 1]."""
        return self._generate(w)

    @torch.no_grad()
    def generated_crop(self, w: torch.Tensor) -> torch.Tensor:
        """G(w) pooled to E_m's input size [1, 3, S, S]: the target's face where there is no portrait."""
        img = self._generate(w.to(self.device)).float().cpu().clamp(-1, 1)
        return F.adaptive_avg_pool2d(img, self.input_size)

    @torch.no_grad()
    def noise_response(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """f [D] of a crop [1, 3, S, S], and the per-dimension response [D] of f to ±NOISE_LEVELS grey levels
        of sensor noise (the smoothing filter's units)."""
        gen = torch.Generator().manual_seed(0)
        noise = (torch.rand((NOISE_SAMPLES, *x.shape[1:]), generator=gen) * 2 - 1) * (NOISE_LEVELS * 2 / 255)
        batch = torch.cat([x, (x + noise).clamp(-1, 1)])
        feats = torch.cat([self._features(b[None]).float().cpu() for b in batch]).double().numpy()
        spread = np.sqrt(((feats[1:] - feats[0]) ** 2).mean(0))
        return feats[0], np.maximum(spread, 0.1 * float(np.median(spread)) + 1e-12)
