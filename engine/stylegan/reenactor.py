"""Kept for code written before the split: the pipeline (images) is engine/stylegan/pipeline.py, the
networks (tensors) engine/stylegan/wrapper.py, the options engine/stylegan/options.py."""
from __future__ import annotations

from engine.stylegan.options import OPTION_FIELDS, PAPER_CROP_TOP, StyleGANOptions  # noqa: F401
from engine.stylegan.pipeline import StyleGANReenactor  # noqa: F401
from engine.stylegan.wrapper import MotionFeatures, StyleGANWrapper  # noqa: F401
