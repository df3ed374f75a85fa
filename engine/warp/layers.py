"""Person and background as two layers: the background stays still, the warped person is laid over it.

Prepared once per target: MediaPipe's selfie segmentation (in the wheel) gives the person's alpha,
joined with the face oval of the mesh (a painted face the segmenter misses stays in), hardened to
a thin soft edge and grown by a soft fringe band (the rim of hair it leaves out). Just outside the
segmented edge a colour matte adds what is still a mix of the person and the background around it
(the glow of blurred hair, colour_matte). The background plate B is the portrait with the person
(grown by PLATE_NEAR of the image) filled in from the background right around it, with the
background's own grain copied in (with_grain), so a head that moves away uncovers no flat patch in
its shape. On the soft edge the portrait I mixes both, so the
person's own colour is un-mixed there (matting, see prepare_layers). Per frame the person's alpha
goes through the same backward map as its colours, and out = α·warp(P) + (1 − α)·B: at rest exactly the
portrait, and nothing outside the person moves. (The alpha rides along as a 4th channel of the person,
so one remap draws both.)
Where the person is cut by the frame edge the cut stays there: the warp keeps the top and the sides fixed,
and below the frame (where its canvas reaches, mesh.CANVAS_MARGIN) the person continues as its bottom rows,
mirrored (cv2.BORDER_REFLECT_101).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from engine.warp.mesh import FACE_OVAL

Fill = Literal["pyramid", "telea"]
PLATE_RAMP = 0.1  # the plate turns from the portrait's own pixels into the fill as α rises from 0 to this
PLATE_GROW = 0.03  # the colour matte's background estimate: the person grown by this share of the side, filled
PLATE_NEAR = 0.01  # the plate's hole: the matted person grown by this share (past the photo's edge halo)
INPAINT_SIDE = 128  # cv2.inpaint runs at this size (it is slow on large holes); the fill is blurry anyway
EDGE = (0.1, 0.6)  # segmentation scores mapped to alpha 0 … 1 (a thin soft edge; fainter parts stay still)
FRINGE = 0.012  # the person's alpha is grown by a soft band this share of the image side (with_fringe)
MATTE_BAND = 0.03  # beyond the segmentation's edge, the colour matte looks this share of the image side out
MATTE_MIN_CONTRAST = 12.0  # person and background closer than this (RGB distance) say nothing about alpha
GRAIN_SCALE = 0.01  # the background's grain: what a blur of this share of the image side takes away
GRAIN_FADE = 0.01  # the copied grain fades in over this share of the side, from the hole's edge inward
GRAIN_LIMIT = 2.5  # copied grain is limited to this many times its median size (texture, not edges)
GRAIN_SHIFTS = (0.35, 0.6, 0.9)  # where grain is copied from: these shares of the hole's size away, 12 ways


@dataclass
class Layers:
    alpha: np.ndarray  # [h, w] float32 0 … 1, the person at rest
    plate: np.ndarray  # [h, w, 4] uint8 the background with the person filled in (4th channel unused)
    person: np.ndarray  # [h, w, 4] uint8 the person's colours (un-mixed on its soft edge) and alpha · 255

    def composite(self, warped: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(RGB [h, w, 3]: the warped person over the still plate, its alpha [h, w] float32); `warped` is
        `person` drawn by the frame's backward map (colours and alpha in one remap)."""
        alpha = warped[..., 3].astype(np.float32) * (1.0 / 255.0)
        out = cv2.blendLinear(warped, self.plate, alpha, 1.0 - alpha)
        return cv2.cvtColor(out, cv2.COLOR_RGBA2RGB), alpha


def person_alpha(image: np.ndarray, mesh: np.ndarray) -> np.ndarray:
    """[h, w] float32 alpha of the person: segmentation joined with the face oval, the part connected to it."""
    import mediapipe as mp

    with mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0) as segmenter:
        score = segmenter.process(np.ascontiguousarray(image)).segmentation_mask.astype(np.float32)
    lo, hi = EDGE
    alpha = np.clip((score - lo) / (hi - lo), 0.0, 1.0)
    face = np.zeros(alpha.shape, np.float32)
    cv2.fillPoly(face, [np.round(mesh[list(FACE_OVAL), :2] * 16).astype(np.int32)], 1.0, cv2.LINE_AA, shift=4)
    alpha = np.maximum(alpha, cv2.GaussianBlur(face, (0, 0), 1.5))
    # only what is connected to the face: stray specks of background the segmenter half-believes in stay still
    _, labels = cv2.connectedComponents((alpha > 0).astype(np.uint8), connectivity=8)
    keep = np.unique(labels[face > 0.5])
    return with_fringe(alpha * np.isin(labels, keep[keep > 0]))


def with_fringe(alpha: np.ndarray, share: float = FRINGE) -> np.ndarray:
    """`alpha` [h, w] with a soft band `share` of the image side wide added around the person (where it is
    at least half there): the dark rim of hair and shoulders that the segmentation leaves out then moves
    with the person instead of staying in the plate, where it was the old outline beside a turned head."""
    r = max(int(round(share * max(alpha.shape))), 1)
    core = (alpha >= 0.5).astype(np.uint8)
    band = cv2.dilate(core, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    band = cv2.GaussianBlur(band.astype(np.float32), (0, 0), r / 2)
    return np.maximum(alpha, np.clip(2 * band - 1, 0.0, 1.0))


def grown(mask: np.ndarray, grow: float = PLATE_GROW) -> np.ndarray:
    """[h, w] bool: `mask` grown by `grow` of the image side."""
    r = max(int(round(grow * max(mask.shape))), 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel) > 0


def fill_background(image: np.ndarray, hole: np.ndarray, method: Fill = "pyramid") -> np.ndarray:
    """`image` with the `hole` pixels filled from the rest: a blur-pyramid (push-pull) fill, or OpenCV's
    Telea inpainting at INPAINT_SIDE pixels, upsampled."""
    if method == "pyramid":
        filled = _pyramid_fill(image, hole)
    elif method == "telea":
        h, w = hole.shape
        s = INPAINT_SIDE / max(h, w)
        small = cv2.resize(image, (max(round(w * s), 1), max(round(h * s), 1)), interpolation=cv2.INTER_AREA)
        small_hole = cv2.resize(hole.astype(np.uint8), small.shape[1::-1], interpolation=cv2.INTER_NEAREST)
        small_hole = cv2.dilate(small_hole, np.ones((3, 3), np.uint8))
        painted = cv2.inpaint(small, small_hole, 5, cv2.INPAINT_TELEA)
        filled = cv2.resize(painted, (w, h), interpolation=cv2.INTER_CUBIC)
    else:
        raise ValueError(f"unknown fill {method!r} (expected 'pyramid' or 'telea')")
    out = image.copy()
    out[hole] = filled[hole]
    return out


def _pyramid_fill(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    return np.clip(push_pull(image.astype(np.float32), hole), 0, 255).astype(np.uint8)


def push_pull(values: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """[h, w, c] float32 `values` filled in the `hole` (and kept elsewhere, up to smoothing of the known
    values' own level): known pixels averaged down a Gaussian pyramid (weights alongside), then pulled back
    up, each level keeping what it knows and taking the coarser level's estimate where it does not."""
    weight = (~hole).astype(np.float32)
    colour = values * weight[..., None]
    levels = []
    while min(weight.shape) > 2:
        levels.append((colour, weight))
        colour, weight = cv2.pyrDown(colour), cv2.pyrDown(weight)
    known = weight.sum()
    fill = np.broadcast_to(colour.sum((0, 1)) / max(known, 1e-6), colour.shape).astype(np.float32)
    for colour, weight in reversed(levels):
        up = cv2.pyrUp(fill, dstsize=(weight.shape[1], weight.shape[0]))
        trust = np.clip(weight * 2.0, 0.0, 1.0)[..., None]
        fill = colour / np.maximum(weight, 1e-6)[..., None] * trust + up * (1 - trust)
    return fill


def with_grain(filled: np.ndarray, image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """`filled` [h, w, 3] float32 with the background's own grain added in the `hole`: a push-pull fill is
    smooth, and where the head moves away a flat patch in its shape would be its outline again. The grain
    (the known background minus its blur, GRAIN_SCALE) is copied from places of known background shifted
    by GRAIN_SHIFTS of the hole's size (nearest first, each taking the hole pixels the nearer ones could
    not, cross-faded), fading in from the hole's edge (GRAIN_FADE). Pixels no shift reaches stay smooth."""
    ys, xs = np.nonzero(hole)
    if len(ys) == 0:
        return filled
    h, w = hole.shape
    side = max(h, w)
    known = (~grown(hole, GRAIN_FADE)).astype(np.float32)  # clear of the person's edge
    own = image.astype(np.float32)
    sigma = max(GRAIN_SCALE * side, 1.0)
    smooth = cv2.GaussianBlur(own * known[..., None], (0, 0), sigma) / \
        np.maximum(cv2.GaussianBlur(known, (0, 0), sigma), 1e-3)[..., None]
    grain = (own - smooth) * known[..., None]
    # texture, not things: strong edges (a lamp, a door frame) copied elsewhere would be new objects
    size_of = np.linalg.norm(grain, axis=-1)
    limit = max(GRAIN_LIMIT * float(np.median(size_of[known > 0])) if known.any() else 0.0, 1e-6)
    grain *= (limit / np.maximum(size_of, limit, dtype=np.float32))[..., None]
    size = float(max(ys.max() - ys.min(), xs.max() - xs.min()) + 1)
    # which shift serves which pixel is worked out at a quarter of the size (the cross-fades are smooth)
    small = (max(w // 4, 1), max(h // 4, 1))
    known_small = cv2.resize(known, small, interpolation=cv2.INTER_AREA)
    hole_small = cv2.resize(hole.astype(np.float32), small, interpolation=cv2.INTER_AREA)
    left = np.ones(small[::-1], np.float32)  # how much of each pixel's grain is still to be found
    feather = max(0.002 * side, 0.5)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    added = np.zeros_like(own)
    for share, angle in itertools.product(GRAIN_SHIFTS, np.arange(12) * (np.pi / 6)):
        dx, dy = share * size * np.cos(angle), share * size * np.sin(angle)  # pixel p takes p + (dx, dy)
        valid = cv2.warpAffine(known_small, np.float32([[1, 0, dx / 4], [0, 1, dy / 4]]), small, flags=flags)
        valid = cv2.GaussianBlur(cv2.erode(valid, np.ones((3, 3), np.uint8)), (0, 0), feather) * left
        if (valid * hole_small).sum() < 0.002 * hole_small.sum():
            continue
        left -= valid
        weight = cv2.resize(valid, (w, h), interpolation=cv2.INTER_LINEAR)
        added += weight[..., None] * cv2.warpAffine(grain, np.float32([[1, 0, dx], [0, 1, dy]]), (w, h), flags=flags)
    # as much grain as the background right around the hole has (a plain wall beside the head stays plain)
    reach = max(GRAIN_SCALE * side, 1.0)
    energy = lambda x: cv2.GaussianBlur(x * x, (0, 0), reach)  # noqa: E731  local grain power per channel
    around = push_pull(energy(grain) / np.maximum(cv2.GaussianBlur(known, (0, 0), reach), 1e-3)[..., None],
                       known < 0.5)
    added *= np.sqrt(np.clip(around, 0.0, None) / np.maximum(energy(added), 1e-6)).clip(0.0, 1.5)
    depth = cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 5)
    fade = np.clip(depth / max(GRAIN_FADE * side, 1.0), 0.0, 1.0)
    return np.clip(filled + added * (fade * hole)[..., None], 0.0, 255.0)


def colour_matte(image: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """`alpha` [h, w] raised where the colours say the person is still partly there: in a band MATTE_BAND
    wide outside its segmented edge, each pixel is read as a mix of the person's colour there (the person's
    own colours pushed outward) and the filled background, I = a·P + (1 − a)·B, a the projection of I − B on
    P − B. A blurred portrait's glow of hair over the background then moves with the person instead of
    staying in the plate, where it was the old outline beside a turned head; plain background (I ≈ B) keeps
    a ≈ 0 and stays still."""
    core = alpha >= 0.5
    band = grown(core, MATTE_BAND) & ~core
    if not band.any():
        return alpha
    own = image.astype(np.float32)
    person = fill_background(image, ~(alpha >= 0.95), "pyramid").astype(np.float32)  # its colours, outward
    d, e = own - background, person - background
    contrast = (e * e).sum(-1)
    a = np.clip((d * e).sum(-1) / np.maximum(contrast, 1e-6), 0.0, 1.0)
    a[contrast < MATTE_MIN_CONTRAST ** 2] = 0.0
    a = np.where(band, a, 0.0).astype(np.float32)
    # only what touches the person: a background object of the hair's colour further out stays still
    _, labels = cv2.connectedComponents(((a > 0.05) | core).astype(np.uint8), connectivity=8)
    keep = np.unique(labels[core])
    a *= np.isin(labels, keep[keep > 0])
    return np.maximum(alpha, a)


def _enough_alpha(alpha: np.ndarray, own: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """`alpha` raised where the plate is the fill (α ≥ PLATE_RAMP) to the least α whose un-mixed person
    colour P = (I − (1 − α)·F) / α stays within 0 … 255: a pixel brighter (or darker) than any mix of a
    person colour and the fill is more person than the segmentation said. (Left as it was, P was clipped
    and the portrait at rest came back up to 70 grey levels off at the person's edge.)"""
    brighter = np.where(own > fill, (own - fill) / np.maximum(255.0 - fill, 1e-3), 0.0)
    darker = np.where(own < fill, 1.0 - own / np.maximum(fill, 1e-3), 0.0)
    need = np.maximum(brighter, darker).max(-1)
    return np.where(alpha >= PLATE_RAMP, np.maximum(alpha, np.minimum(need, 1.0)), alpha).astype(np.float32)


def prepare_layers(image: np.ndarray, mesh: np.ndarray, method: Fill = "pyramid") -> Layers:
    """The person's alpha, the plate B and the person's colours P.

    B = β·F + (1 − β)·I with F the filled background (grained), I the portrait and β = min(α / PLATE_RAMP, 1):
    the plate is the fill wherever the person is more than faint (no fringe of it, nor the photo's light
    halo around the hair, stays behind when it moves) and runs smoothly into the portrait's own background
    where α ends (no step). P un-mixes I against B, P = (I − (1 − α)·B) / α; where that would leave 0 … 255
    on the faint edge, B moves towards I just enough (the same share in every channel): α·P + (1 − α)·B = I
    at rest, and the plate holds no colour that is neither the fill's nor the portrait's.
    """
    alpha = person_alpha(image, mesh)
    filled = fill_background(image, grown(alpha > 0), method).astype(np.float32)
    alpha = colour_matte(image, alpha, filled)
    hole = grown(alpha > 0, PLATE_NEAR)
    filled = with_grain(fill_background(image, hole, method).astype(np.float32), image, hole)
    own = image.astype(np.float32)
    alpha = _enough_alpha(alpha, own, filled)
    alpha = np.round(alpha * 255).astype(np.float32) / 255.0  # as stored, so that the rest is exact
    a = alpha[..., None]
    beta = np.minimum(a / PLATE_RAMP, 1.0)
    plate = beta * filled + (1 - beta) * own
    # P(t) = P₀ − t·D for the plate B₀ + t·(I − B₀): where P₀ still leaves 0 … 255 (the faintest edge, where
    # the plate is partly the portrait anyway), the plate moves towards the portrait's own pixel just enough,
    # all channels alike (no new hue in the plate)
    unmixed = (own - (1 - a) * plate) / np.maximum(a, 1e-3)
    towards = (1 - a) * (own - plate) / np.maximum(a, 1e-3)
    need = np.where(unmixed > 255.0, (unmixed - 255.0) / np.maximum(towards, 1e-6), 0.0)
    need = np.maximum(need, np.where(unmixed < 0.0, unmixed / np.minimum(towards, -1e-6), 0.0))
    t = np.clip(need.max(-1, keepdims=True), 0.0, 1.0)
    plate = plate + t * (own - plate)
    person = np.clip(unmixed - t * towards, 0.0, 255.0)
    some = alpha > 0
    colours = image.copy()
    colours[some] = np.round(person[some]).astype(np.uint8)
    alpha8 = np.round(alpha * 255).astype(np.uint8)
    plate8 = np.clip(plate + 0.5, 0, 255).astype(np.uint8)
    return Layers(alpha8.astype(np.float32) / 255.0, np.dstack([plate8, alpha8]), np.dstack([colours, alpha8]))
