"""Paste a generated, FFHQ-aligned face back into the target portrait (docs/paper-model.md, "The paper's model, live").

Once per target: the portrait is framed like the landmark warp's output (engine/face/framing.py); a
feathered face mask is drawn from the target's mesh in aligned-crop coordinates (face oval, forehead
raised) and carried into the output through the inverse of the target's own alignment transform.
Per frame: the generated crop goes through the same transform, its colours are matched to the
portrait's in a ring along the seam (per-channel mean; matching the standard deviation too, or
Poisson blending, measured no better: benchmarks/paper_live_bench.py), and it is blended in under
the mask. Where the mask is 0 the output is the framed portrait, bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engine.face.align import AlignedFace, quad_matrix, quad_side
from engine.face.framing import Framing, framing_window
from engine.face.landmarks import FACE_OVAL

MASK_SIZE = 256  # the mask is drawn at this crop size, then carried into the output
RING = (0.05, 0.95)  # mask values that count as the seam ring for the colour statistics


@dataclass(frozen=True)
class PasteBackConfig:
    framing: Framing = "face"  # the output shows a square around the face, or the whole portrait
    output_size: int = 512  # pixels: the side of the square ("face") or the longer side ("portrait")
    face_fraction: float = 0.45  # "face" framing: face height over the output side (as the warp)
    feather: float = 0.04  # width of the mask's fade, as a fraction of the crop side
    forehead: float = 0.15  # the oval's upper half is raised by this fraction of its height (more forehead)
    colour_match: bool = True  # shift the generated face's colours to the portrait's mean in the seam ring


def face_mask(points_crop: np.ndarray, config: PasteBackConfig, size: int = MASK_SIZE) -> np.ndarray:
    """Feathered face mask [size, size] float32 in [0, 1] from mesh points [478, 2] in crop units (0..1).

    The oval (its upper half raised by `forehead`) is filled, shrunk by the feather width and blurred,
    so the fade ends at the oval: the portrait's own jaw line, hair and background stay.
    """
    oval = np.asarray(points_crop, np.float64)[list(FACE_OVAL), :2] * size
    centre = oval.mean(0)
    upper = oval[:, 1] < centre[1]
    oval[upper, 1] = centre[1] + (oval[upper, 1] - centre[1]) * (1.0 + config.forehead)
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [np.rint(oval * 16).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)
    edge = max(config.feather * size, 1.0)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * round(edge) + 1,) * 2)
    mask = cv2.erode(mask, kernel).astype(np.float32) / 255.0
    mask = cv2.GaussianBlur(mask, (0, 0), edge / 2)
    mask[mask < 1.0 / 255] = 0.0  # a clean outside: exactly the portrait there
    mask[mask > 1.0 - 1.0 / 255] = 1.0
    return mask


class PasteBack:
    """Blends generated aligned crops (any square size) into the framed target portrait."""

    def __init__(self, portrait: np.ndarray, aligned: AlignedFace, config: PasteBackConfig = PasteBackConfig()) -> None:
        if aligned.landmarks is None:
            raise ValueError("paste-back needs the target's mesh (AlignedFace.landmarks)")
        self.config = config
        h, w = portrait.shape[:2]
        window = framing_window((w, h), aligned.landmarks, config.framing, config.output_size, config.face_fraction)
        self.framed = window.apply(portrait)  # [oh, ow, 3] the portrait at rest, output framing
        self._to_output = _full(window.matrix)  # portrait → output pixels [3, 3]
        self._quad = np.asarray(aligned.quad, np.float64)
        self.face_side = quad_side(self._quad) * window.scale[0]  # the crop's side in output pixels
        # the target's mesh in crop units, through the target's own alignment
        crop_px = cv2.transform(aligned.landmarks[None, :, :2].astype(np.float64), aligned.matrix)[0]
        mask = face_mask((crop_px + 0.5) / aligned.size, config)
        alpha = self._warp(mask, cv2.INTER_LINEAR, (0, 0, self.framed.shape[1], self.framed.shape[0]))
        alpha[alpha < 1.0 / 255] = 0.0
        ys, xs = np.nonzero(alpha)
        if len(xs) == 0:
            raise ValueError("the face lies outside the output framing")
        self.box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)  # x0, y0, x1, y1
        x0, y0, x1, y1 = self.box
        self.alpha = alpha  # [oh, ow] float32, the mask in output pixels
        self._alpha_box = alpha[y0:y1, x0:x1, None]
        self._ring = (self._alpha_box[..., 0] > RING[0]) & (self._alpha_box[..., 0] < RING[1])
        self._framed_box = self.framed[y0:y1, x0:x1].astype(np.float32)
        self._ring_mean = self._framed_box[self._ring].mean(0) if self._ring.any() else None

    @property
    def output_size(self) -> tuple[int, int]:
        """(width, height) of the output."""
        return self.framed.shape[1], self.framed.shape[0]

    def __call__(self, generated: np.ndarray) -> np.ndarray:
        """The framed portrait with the generated aligned crop [S, S, 3] (RGB uint8) pasted in."""
        face = self.face_in_box(generated, self.config.colour_match)
        x0, y0, x1, y1 = self.box
        out = self.framed.copy()
        blended = self._framed_box + self._alpha_box * (face - self._framed_box)
        out[y0:y1, x0:x1] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
        return out

    def face_in_box(self, generated: np.ndarray, colour_match: bool) -> np.ndarray:
        """The generated crop in output pixels over `box` (float32 [h, w, 3]), colours matched or not."""
        while generated.shape[0] >= 2 * self.face_side:  # halve (2x2 means, fast) so the warp never shrinks 2x
            half = generated.shape[0] // 2
            generated = cv2.resize(generated[:2 * half, :2 * half], (half, half), interpolation=cv2.INTER_AREA)
        face = self._warp(generated, cv2.INTER_CUBIC, self.box).astype(np.float32)
        if colour_match and self._ring_mean is not None:
            face += self._ring_mean - face[self._ring].mean(0)
        return face

    def _warp(self, crop: np.ndarray, interpolation: int, box: tuple[int, int, int, int]) -> np.ndarray:
        """A square crop (any size) in output pixels over `box`, through crop → portrait → output."""
        x0, y0, x1, y1 = box
        to_crop = _full(quad_matrix(self._quad, crop.shape[0])) @ np.linalg.inv(self._to_output)
        to_crop = to_crop @ np.array([[1.0, 0, x0], [0, 1.0, y0], [0, 0, 1.0]])  # box pixel → output pixel
        return cv2.warpAffine(crop, to_crop[:2], (x1 - x0, y1 - y0), flags=interpolation | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE)


def _full(matrix: np.ndarray) -> np.ndarray:
    return np.vstack([matrix, [0.0, 0.0, 1.0]])
