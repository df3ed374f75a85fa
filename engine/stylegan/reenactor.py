"""StyleGANReenactor: the paper's pipeline behind the Reenactor interface.

Per frame:  driving frame → (align, 256²) → E_m features f [1, D]
            → folded mapping  w = K·f + c(target)  [1, n, D] → G → image.
The two heavy graphs (E_m up to its features, and G) run on the chosen runtime.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from engine.errors import MimicError
from engine.reenactor import DriveResult, ProgressFn, TargetSpec
from engine.runtimes import RuntimeChoice, build_graph, select_runtime
from engine.stylegan.folding import FoldedMapping
from engine.stylegan.identity import IdentityEncoder, to_image, to_tensor

log = logging.getLogger(__name__)

PAPER_CROP_TOP = 240  # the official inference crops rows 240..1024 of the 1024² output (→ 1024x784)


@dataclass(frozen=True)
class StyleGANOptions:
    aligned_input: bool = False  # driving frames are already FFHQ-aligned (skip alignment, as --aligned)
    paper_crop: bool = True  # crop the output like the official inference code (drop the top 240/1024 rows)
    output_width: int | None = None  # resize the output to this width (None: the generator's size)


class MotionFeatures(nn.Module):
    """E_m up to (not including) its last EqualLinear: [B, 3, S, S] → f [B, D]."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder.features(x)


class StyleGANReenactor:
    """The paper's reenactor (E_m + M + G, identities from ReStyle)."""

    name = "StyleGAN2 (paper)"

    def __init__(self, model: nn.Module, inverter: nn.Module, weights_id: str, runtime: RuntimeChoice,
                 options: StyleGANOptions = StyleGANOptions()) -> None:
        cfg = model.decoder.config
        self.options = options
        self.runtime = runtime
        self.input_size = model.config.input_size
        self.n_latent, self.style_dim, self.g_size = cfg.n_latent, cfg.style_dim, cfg.size
        model = model.eval().requires_grad_(False)
        self.mapping = FoldedMapping(model.encoder.linear, model.mapping_net.linear, cfg.n_latent, cfg.style_dim).to(runtime.device)
        x0 = torch.zeros(1, 3, self.input_size, self.input_size)
        w0 = torch.zeros(1, cfg.n_latent, cfg.style_dim)
        self._features = build_graph(MotionFeatures(model.encoder), (x0,), runtime, cache_key=f"{weights_id}:E_m")
        self._generate = build_graph(model.decoder, (w0,), runtime, cache_key=f"{weights_id}:G")
        self.identity = IdentityEncoder(inverter.eval().requires_grad_(False), weights_id,
                                        model.config.restyle_iters, self.input_size)
        self._aligner = None
        self._constant: torch.Tensor | None = None
        self._last: np.ndarray | None = None

    @classmethod
    def from_pack(cls, path: Path, runtime: str = "auto", device: str = "auto", precision: str = "auto",
                  options: StyleGANOptions = StyleGANOptions()) -> "StyleGANReenactor":
        from engine.weights import load_paper_pack

        choice = select_runtime(runtime, device, precision)
        model, inverter, manifest = load_paper_pack(Path(path))
        weights_id = str(manifest.get("content_hash") or manifest.get("hashes") or Path(path).name)
        return cls(model, inverter, weights_id, choice, options)

    # -- Reenactor interface -------------------------------------------------

    def describe(self) -> str:
        return f"{self.name} · {self.runtime.describe()}"

    @property
    def output_size(self) -> tuple[int, int]:
        width = self.options.output_width or self.g_size
        height = self.g_size - PAPER_CROP_TOP * self.g_size // 1024 if self.options.paper_crop else self.g_size
        return width, round(height * width / self.g_size)

    def set_target(self, target: TargetSpec, progress: ProgressFn | None = None,
                   cancel: threading.Event | None = None) -> None:
        w_id = self.identity.encode(target, aligned=self.options.aligned_input, progress=progress, cancel=cancel)
        if w_id.shape != (self.n_latent, self.style_dim):
            raise MimicError(f"identity latent has shape {w_id.shape}; this model needs {self.n_latent}x{self.style_dim}")
        self.set_identity(w_id)

    def set_identity(self, w_id: np.ndarray) -> None:
        """Use an identity W+ [n, D] directly."""
        w = torch.from_numpy(np.asarray(w_id, dtype=np.float32)).unsqueeze(0)
        self._constant = self.mapping.identity_constant(w.to(self.mapping.fold_weight.device))
        self.identity_latent = np.asarray(w_id, dtype=np.float32)

    def reset_neutral(self) -> None:
        """The paper's model is absolute (no neutral reference); smoothing state restarts."""
        self.close()

    def close(self) -> None:
        """Close the live aligner's MediaPipe graph (a new one opens with the next frame)."""
        aligner, self._aligner = self._aligner, None
        if aligner is not None:
            aligner.close()

    def drive(self, frame: np.ndarray) -> DriveResult:
        if self._constant is None:
            raise MimicError("no target set: choose a portrait, a latent or a random identity first")
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        landmarks = None
        if self.options.aligned_input:
            crop = frame
        else:
            aligned = self._live_aligner().align(frame)
            if aligned is None:
                timings["align"] = _ms(t0)
                return self._no_face(frame, timings)
            crop, landmarks = aligned.image, getattr(aligned, "landmarks", None)
        timings["align"] = _ms(t0)

        image = self.render(to_tensor(crop, self.input_size), timings)
        self._last = image
        return DriveResult(image=image, face_found=True, timings_ms=timings, driver_landmarks=landmarks)

    # -- the networks --------------------------------------------------------

    def render(self, driving: torch.Tensor, timings: dict[str, float] | None = None) -> np.ndarray:
        """Driving crop [1, 3, S, S] in [-1, 1] → output image (uint8), per-stage times into `timings`."""
        timings = {} if timings is None else timings
        t = time.perf_counter()
        features = self._features(driving)
        timings["E_m"] = _ms(t)
        t = time.perf_counter()
        with torch.inference_mode():
            w = self.mapping(features.to(self._constant.device), self._constant)
        timings["map"] = _ms(t)
        t = time.perf_counter()
        img = self._generate(w)
        timings["G"] = _ms(t)
        t = time.perf_counter()
        image = self._postprocess(img)
        timings["post"] = _ms(t)
        return image

    def _postprocess(self, img: torch.Tensor) -> np.ndarray:
        image = to_image(img)
        if self.options.paper_crop:
            image = image[PAPER_CROP_TOP * self.g_size // 1024:]
        width, height = self.output_size
        if image.shape[1] != width:
            import cv2

            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(image)

    def _live_aligner(self):
        if self._aligner is None:
            from engine.align import LiveAligner

            self._aligner = LiveAligner(size=self.input_size)
        return self._aligner

    def _no_face(self, frame: np.ndarray, timings: dict[str, float]) -> DriveResult:
        width, height = self.output_size
        image = self._last if self._last is not None else np.zeros((height, width, 3), np.uint8)
        return DriveResult(image=image, face_found=False, timings_ms=timings)


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0
