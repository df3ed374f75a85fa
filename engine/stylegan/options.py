"""The StyleGAN reenactor's options. Torch-free: the app, the CLI and the factory read them without torch."""
from __future__ import annotations

from dataclasses import dataclass

from engine.face.framing import Framing
from engine.face.paste_back import PasteBackConfig
from engine.stylegan.motion import DEFAULT_SMOOTHING, MotionConfig, MotionMode

# The app's option names for this reenactor (Session.set_option) → StyleGANOptions fields.
OPTION_FIELDS = {"paper_paste_back": "paste_back", "paper_motion": "motion", "paper_smoothing": "smoothing",
                 "paper_expression": "expression"}
PAPER_CROP_TOP = 240  # the official inference crops rows 240..1024 of the 1024² output (→ 1024x784)


@dataclass(frozen=True)
class StyleGANOptions:
    aligned_input: bool = False  # driving frames and target images are already FFHQ-aligned (skip alignment)
    paste_back: bool = True  # image targets: the generated face pasted into the portrait (else: the crop)
    framing: Framing = "face"  # paste-back: a square around the face, or the whole portrait (as the warp)
    output_size: int = 512  # paste-back: the side of the square ("face") or the longer side ("portrait")
    paper_crop: bool = True  # the crop (no paste-back): drop the top 240/1024 rows like the official code
    output_width: int | None = None  # the crop: resize to this width (None: the generator's size)
    motion: MotionMode = "relative"  # relative to the driver's neutral frames, or the paper's absolute code
    expression: float = 1.0  # gain on the driver's motion
    smoothing: float = DEFAULT_SMOOTHING  # One-Euro strength on E_m's features, 0 (off) … 1

    @staticmethod
    def paper() -> "StyleGANOptions":
        """The paper's semantics exactly (`render --aligned`): aligned inputs, absolute motion, the
        official crop, no paste-back, no smoothing."""
        return StyleGANOptions(aligned_input=True, paste_back=False, motion="absolute", smoothing=0.0)

    @property
    def motion_config(self) -> MotionConfig:
        return MotionConfig(mode=self.motion, expression=self.expression, smoothing=self.smoothing)

    @property
    def paste_config(self) -> PasteBackConfig:
        return PasteBackConfig(framing=self.framing, output_size=self.output_size)
