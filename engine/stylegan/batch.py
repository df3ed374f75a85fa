"""Several sessions' frames through one loaded model at once (the server's batching).

    per session:  frame → align (its own aligner) → crop                       ┐
    batched:      crops [B, 3, S, S] → E_m features f [B, D]                    │ one E_m and one G
    per session:  f_i → its relative motion, gain and smoothing → f'_i         │ for B sessions
    batched:      w = f' · Kᵀ + [c(target_1); …; c(target_B)]  [B, n, D] → G  │
    per session:  image_i → its paste-back (or the crop)                        ┘

Each session keeps its own target constant c, neutral and smoothing state (outside the batch); a
session whose frame shows no face gets its held output and leaves the batch. The reenactors are forks
of one StyleGANReenactor (`fork`), so they share E_m, the folded mapping and G.
"""
from __future__ import annotations

import logging
import time

import numpy as np
import torch

from engine.errors import MimicError
from engine.reenactor import DriveResult
from engine.stylegan.reenactor import StyleGANReenactor

log = logging.getLogger(__name__)


def drive_batch(reenactors: list[StyleGANReenactor], frames: list[np.ndarray]) -> list[DriveResult | MimicError]:
    """One output (or that session's error) per (reenactor, frame), E_m and G run once for all faces."""
    results: list[DriveResult | MimicError | None] = [None] * len(frames)
    timings = [dict() for _ in frames]
    crops, landmarks, rows = [], [], []  # the frames with a face, and where they came from
    for i, (reenactor, frame) in enumerate(zip(reenactors, frames)):
        try:
            crop, marks = reenactor.align_driver(frame, timings[i])
        except MimicError as exc:
            results[i] = exc
            continue
        if crop is None:
            results[i] = reenactor.no_face(timings[i])
        else:
            crops.append(crop)
            landmarks.append(marks)
            rows.append(i)
    if rows:
        try:
            _render(reenactors, rows, crops, landmarks, timings, results)
        except Exception as exc:  # a failure of the shared networks: every session of the batch hears it
            log.exception("batched render failed")
            for i in rows:
                results[i] = MimicError(f"reenactor failed: {exc}")
    return [r if r is not None else MimicError("no output") for r in results]


def _render(reenactors, rows, crops, landmarks, timings, results) -> None:
    first = reenactors[rows[0]]
    features_graph, generate = first.batch_graphs()
    b = len(rows)
    t = time.perf_counter()
    features = features_graph(torch.cat(crops))  # [B, D]
    _share(timings, rows, "E_m", t, b)
    t = time.perf_counter()
    feats = features.detach().float().cpu().numpy()
    moved = np.stack([reenactors[i].moved_features(feats[k]) for k, i in enumerate(rows)])
    constants = torch.cat([reenactors[i].identity_constant for i in rows])  # [B, nD]
    f = torch.from_numpy(moved).float().to(constants.device)
    _share(timings, rows, "motion", t, b)
    t = time.perf_counter()
    with torch.inference_mode():
        w = first.mapping(f, constants)  # [B, n, D]
    _share(timings, rows, "map", t, b)
    t = time.perf_counter()
    images = generate(w)  # [B, 3, H, W]
    _share(timings, rows, "G", t, b)
    for k, i in enumerate(rows):
        results[i] = reenactors[i].finish(images[k:k + 1], timings[i], landmarks[k])


def _share(timings: list[dict[str, float]], rows: list[int], stage: str, t0: float, batch: int) -> None:
    """Each session of the batch is charged the whole stage's time (what it waited), and the batch size."""
    ms = (time.perf_counter() - t0) * 1000.0
    for i in rows:
        timings[i][stage] = ms
        timings[i]["batch"] = float(batch)
