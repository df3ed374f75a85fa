"""StyleGANReenactor: the paper's pipeline behind the Reenactor interface, speaking images.

Per frame:  driving frame → (align, 256²) → E_m features f [1, D] → relative motion and smoothing
            (engine/stylegan/motion.py) → folded mapping  w = K·f' + c(target)  [1, n, D] → G →
            the generated crop, pasted back into the target portrait (engine/face/paste_back.py) or cropped
            like the official code.
The networks (E_m up to its features, M folded, G on the chosen runtime) are engine/stylegan/wrapper.py,
which speaks tensors; this module turns images into its tensors and its tensors into images.
"""
from __future__ import annotations

import copy
import logging
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from engine.errors import Cancelled, MimicError
from engine.face.paste_back import PasteBack
from engine.reenactor import DriveResult, ProgressFn, ReenactorKind, TargetSpec
from engine.runtime.memory import GrowthGuard, release_freed_memory
from engine.runtime.runtimes import RuntimeChoice, select_runtime
from engine.stylegan.identity import IdentityEncoder, align_target
from engine.stylegan.images import to_image, to_tensor
from engine.stylegan.motion import MOTION_MODES, FeatureMotion
from engine.stylegan.options import OPTION_FIELDS, PAPER_CROP_TOP, StyleGANOptions
from engine.stylegan.wrapper import StyleGANWrapper

log = logging.getLogger(__name__)


class StyleGANReenactor:
    """The paper's reenactor (E_m + M + G, identities from ReStyle)."""

    kind = ReenactorKind.STYLEGAN
    name = "StyleGAN2 (paper)"

    def __init__(self, model: nn.Module, inverter: nn.Module, weights_id: str, runtime: RuntimeChoice,
                 options: StyleGANOptions = StyleGANOptions(), progress: ProgressFn | None = None,
                 cuda_graphs: bool = True) -> None:
        """`progress` hears each build stage: the folded mapping, then E_m and G (loaded or built);
        `cuda_graphs`: see StyleGANWrapper (--no-cuda-graphs turns them off)."""
        self.options = options
        self.networks = StyleGANWrapper(model, weights_id, runtime, progress, cuda_graphs)
        self.runtime = self.networks.runtime  # as built: `auto` timed it; the fp16 probe may have refused fp16
        self.input_size = self.networks.input_size
        self.n_latent, self.style_dim, self.g_size = self.networks.n_latent, self.networks.style_dim, self.networks.g_size
        self.identity = IdentityEncoder(inverter.eval().requires_grad_(False), weights_id,
                                        model.config.restyle_iters, self.input_size)
        self.motion = FeatureMotion(options.motion_config)
        self._heap = GrowthGuard()  # bounds the freed memory kept for the next frame (engine.runtime.memory)
        self._aligner = None
        self._constant: torch.Tensor | None = None
        self._paste: PasteBack | None = None
        self._portrait: tuple[np.ndarray, object] | None = None  # (image, AlignedFace) of an image target
        self._rest: np.ndarray | None = None  # the output before the first face: the target at rest
        self._last: np.ndarray | None = None

    @classmethod
    def from_pack(cls, path: Path, runtime: str = "auto", device: str = "auto", precision: str = "auto",
                  options: StyleGANOptions = StyleGANOptions(),
                  progress: ProgressFn | None = None, cuda_graphs: bool = True) -> "StyleGANReenactor":
        from engine.runtime.weights import load_paper_pack

        choice = select_runtime(runtime, device, precision)
        if progress is not None:
            progress(0.0, f"reading {Path(path).name}")
        model, inverter, manifest = load_paper_pack(Path(path))
        release_freed_memory()  # the reader's buffers
        weights_id = str(manifest.get("content_hash") or manifest.get("hashes") or Path(path).name)
        return cls(model, inverter, weights_id, choice, options, progress, cuda_graphs)

    def fork(self, same_target: bool = False) -> "StyleGANReenactor":
        """A reenactor sharing this one's networks (E_m, the folded mapping, G and the identity encoder)
        with a motion state and aligner of its own, and its own target: none yet, or with `same_target`
        this one's (no second inversion; its neutral is taken afresh). One per client of the server
        (engine/server), so one loaded model serves them all."""
        other = copy.copy(self)
        other._heap = GrowthGuard()
        other._aligner = other._last = None
        if same_target:
            other.motion = self.motion.reconfigured(self.options.motion_config)
            other.motion.reset_neutral()
        else:
            other.motion = FeatureMotion(self.options.motion_config)
            other._constant = other._paste = other._portrait = other._rest = None
        return other

    @property
    def batches(self) -> bool:
        """Whether E_m and G take several frames at once: the eager runtime's modules take any batch; the
        built graphs (compile, onnx, tensorrt) and captured CUDA graphs have static shapes of one frame."""
        return self.runtime.name == "eager" and not self.cuda_graphs

    def batch_graphs(self) -> tuple:
        """(E_m features, G) for [B, …] inputs, B any (needs `batches`)."""
        if not self.batches:
            raise MimicError(f"batches need the eager runtime (runtime {self.runtime.name} runs one frame at a time)")
        return self.networks.graphs

    @property
    def cuda_graphs(self) -> bool:
        """Whether the steady frame replays CUDA graphs (engine.runtime.cuda_graphs)."""
        return self.networks.cuda_graphs

    # -- Reenactor interface -------------------------------------------------

    def describe(self) -> str:
        return f"{self.name} · {self.runtime.describe()}{' · CUDA graphs' if self.cuda_graphs else ''}"

    @property
    def output_size(self) -> tuple[int, int]:
        paste = self._paste
        if paste is not None:
            return paste.output_size
        width = self.options.output_width or self.g_size
        height = self.g_size - PAPER_CROP_TOP * self.g_size // 1024 if self.options.paper_crop else self.g_size
        return width, round(height * width / self.g_size)

    def set_target(self, target: TargetSpec, progress: ProgressFn | None = None,
                   cancel: threading.Event | None = None) -> None:
        """Invert the target (cached); image targets are FFHQ-aligned first and, with paste-back, get
        their portrait framing and face mask. Raises NoFaceError / MimicError / Cancelled."""
        paste, crop, portrait = None, None, None
        if target.kind == "image" and target.image is not None and not self.options.aligned_input:
            aligned = align_target(target.image)
            crop, portrait = aligned.image, (target.image, aligned)
            if self.options.paste_back:
                paste = PasteBack(target.image, aligned, self.options.paste_config)
        elif target.kind == "image" and target.image is not None:
            crop = target.image
        w_id = (self.identity.invert(crop, progress, cancel) if crop is not None
                else self.identity.encode(target, progress=progress, cancel=cancel))
        if w_id.shape != (self.n_latent, self.style_dim):
            raise MimicError(f"identity latent has shape {w_id.shape}; this model needs {self.n_latent}x{self.style_dim}")
        if cancel is not None and cancel.is_set():
            raise Cancelled("setting the target was cancelled")
        self.set_identity(w_id, crop, paste)
        self._portrait = portrait

    def set_identity(self, w_id: np.ndarray, crop: np.ndarray | None = None, paste: PasteBack | None = None) -> None:
        """Use an identity W+ [n, D] directly. `crop`: the target's aligned face (None: G(w_id) stands in
        for it); `paste`: where the output goes back into the portrait (None: the generated crop)."""
        w = torch.from_numpy(np.asarray(w_id, dtype=np.float32)).unsqueeze(0)
        constant = self.networks.identity_constant(w)
        x = to_tensor(crop, self.input_size) if crop is not None else self.networks.generated_crop(w)
        f_target, scale = self.networks.noise_response(x)
        self.motion.set_target(f_target, scale)  # kept for every motion setting: the app may switch them live
        rest = paste.framed.copy() if paste is not None else None
        self._constant, self._paste, self._rest, self._last, self._portrait = constant, paste, rest, None, None
        self.identity_latent = np.asarray(w_id, dtype=np.float32)
        release_freed_memory()  # the inversion's and the target's one-off buffers (eager G, encoders)
        self._heap = GrowthGuard()  # settles again on the next frames

    def set_option(self, name: str, value: Any) -> bool:
        """The app's controls (OPTION_FIELDS): paste-back, motion mode, smoothing, expression strength.

        Called on the GUI thread while drive() runs: every change is one assignment of a new object."""
        field = OPTION_FIELDS.get(name)
        if field is None:
            return False
        kind = {"paste_back": bool, "motion": str, "smoothing": float, "expression": float}[field]
        if field == "motion" and value not in MOTION_MODES:
            log.warning("unknown motion mode %r ignored", value)
            return False
        self.options = replace(self.options, **{field: kind(value)})
        if field == "paste_back":
            portrait = self._portrait
            paste = PasteBack(*portrait, self.options.paste_config) if portrait is not None and kind(value) else None
            self._paste, self._rest, self._last = paste, None if paste is None else paste.framed.copy(), None
        else:
            self.motion = self.motion.reconfigured(self.options.motion_config)
        return True

    def reset_neutral(self) -> None:
        """The next driving frames with a face become the driver's neutral (relative motion)."""
        self.motion.reset_neutral()
        if self._aligner is not None:
            self._aligner.reset()

    def close(self) -> None:
        """Close the live aligner's MediaPipe graph (a new one opens with the next frame)."""
        aligner, self._aligner = self._aligner, None
        if aligner is not None:
            aligner.close()
        release_freed_memory()

    def drive(self, frame: np.ndarray) -> DriveResult:
        if self._constant is None:
            raise MimicError("no target set: choose a portrait, a latent or a random identity first")
        timings: dict[str, float] = {}
        driving, landmarks = self.align_driver(frame, timings)
        if driving is None:
            return self._no_face(timings)
        image = self.render(driving, timings)
        self._last = image
        return DriveResult(image=image, face_found=True, timings_ms=timings, driver_landmarks=landmarks)

    # -- the stages, one at a time (drive) or several sessions at once (engine.stylegan.batch) ----------

    def align_driver(self, frame: np.ndarray, timings: dict[str, float]) -> tuple[torch.Tensor | None, Any]:
        """The driving crop [1, 3, S, S] in [-1, 1] and its landmarks, or (None, None) when no face."""
        if self._constant is None:
            raise MimicError("no target set: choose a portrait, a latent or a random identity first")
        t0 = time.perf_counter()
        landmarks = None
        if self.options.aligned_input:
            crop = frame
        else:
            aligned = self._live_aligner().align(frame)
            if aligned is None:
                timings["align"] = _ms(t0)
                self.motion.reset_track()
                return None, None
            crop, landmarks = aligned.image, aligned.landmarks
        timings["align"] = _ms(t0)
        return to_tensor(crop, self.input_size), landmarks

    def moved_features(self, features: np.ndarray) -> np.ndarray:
        """E_m's features [D] of this session's frame → after relative motion, gain and smoothing [D]."""
        return self.motion(features)

    @property
    def mapping(self):
        """The folded mapping (shared by every fork): f [B, D], c [B, nD] → W+ [B, n, D]."""
        return self.networks.mapping

    @property
    def identity_constant(self) -> torch.Tensor:
        """c(target) [1, nD] of the folded mapping."""
        if self._constant is None:
            raise MimicError("no target set: choose a portrait, a latent or a random identity first")
        return self._constant

    def finish(self, img: torch.Tensor, timings: dict[str, float], landmarks: Any = None) -> DriveResult:
        """G's output [1, 3, H, W] → this session's output (pasted back or cropped)."""
        t = time.perf_counter()
        image = self._postprocess(img)
        timings["paste" if self._paste is not None else "post"] = _ms(t)
        self._last = image
        return DriveResult(image=image, face_found=True, timings_ms=timings, driver_landmarks=landmarks)

    def no_face(self, timings: dict[str, float]) -> DriveResult:
        """The output of a frame without a face: the last output (or the target at rest)."""
        return self._no_face(timings)

    # -- one frame through the networks -------------------------------------

    def render(self, driving: torch.Tensor, timings: dict[str, float] | None = None) -> np.ndarray:
        """Driving crop [1, 3, S, S] in [-1, 1] → output image (uint8), per-stage times into `timings`."""
        timings = {} if timings is None else timings
        t = time.perf_counter()
        features = self.networks.features(driving)
        timings["E_m"] = _ms(t)
        t = time.perf_counter()
        moved = self.motion(features[0].detach().float().cpu().numpy())
        f = torch.from_numpy(moved).float()[None]
        timings["motion"] = _ms(t)
        t = time.perf_counter()
        if self.cuda_graphs:  # one replay: the folded mapping (4.7 M MACs, < 1% of G) is inside G's time
            img = self.networks.map_and_generate(f, self._constant)
            timings["map"] = 0.0
        else:
            w = self.networks.map(f, self._constant)
            timings["map"] = _ms(t)
            t = time.perf_counter()
            img = self.networks.generate(w)
        timings["G"] = _ms(t)
        t = time.perf_counter()
        image = self._postprocess(img)
        timings["paste" if self._paste is not None else "post"] = _ms(t)
        self._heap.check()
        return image

    def _postprocess(self, img: torch.Tensor) -> np.ndarray:
        image = to_image(img)
        if self._paste is not None:
            return self._paste(image)
        if self.options.paper_crop:
            image = image[PAPER_CROP_TOP * self.g_size // 1024:]
        width, height = self.output_size
        if image.shape[1] != width:
            import cv2

            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(image)

    def _live_aligner(self):
        if self._aligner is None:
            from engine.face.align import LiveAligner

            self._aligner = LiveAligner(size=self.input_size)
        return self._aligner

    def _no_face(self, timings: dict[str, float]) -> DriveResult:
        width, height = self.output_size
        image = self._last if self._last is not None else self._rest
        if image is None:
            image = np.zeros((height, width, 3), np.uint8)
        return DriveResult(image=image, face_found=False, timings_ms=timings)


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0
