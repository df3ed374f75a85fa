"""Paper-model panel: how the StyleGAN reenactor animates the portrait (paste-back, motion, smoothing, expression).

Each control is a named option (persisted, sent with `Session.set_option`); only the paper's reenactor
reads them (`engine.stylegan.options.OPTION_FIELDS`), so they show while it runs and are hidden,
with one line saying why, while the landmark warp runs.
"""
from __future__ import annotations

from app.gui.panels.base import PanelContext, ReenactorOptionsPanel, option_checkbox, option_combo, option_slider
from engine import values
from engine.reenactor import ReenactorKind
from engine.stylegan.motion import DEFAULT_SMOOTHING


class PaperPanel(ReenactorOptionsPanel):
    reenactor_kind = ReenactorKind.STYLEGAN
    not_running = "For the paper's model: load a model pack (File → Load model pack…) to set these."

    def __init__(self, ctx: PanelContext) -> None:
        super().__init__(ctx, "Paper model")
        self.paste_back = option_checkbox(ctx, "paper_paste_back", "Paste the face back into the portrait", True,
                                          tip="Off: the generated, aligned face crop (the paper's own output)")
        self.motion = option_combo(ctx, "paper_motion", {"relative": "Relative to my neutral face",
                                                         "absolute": "Absolute (the paper's)"}, "relative",
                                   tip="Relative: your face at rest leaves the portrait at rest (N re-takes it)")
        self.smoothing = option_slider(ctx, "paper_smoothing", "Smoothing", values.SMOOTHING, DEFAULT_SMOOTHING,
                                       tip="Temporal smoothing of the motion code: 0 off … 1 strong")
        self.expression = option_slider(ctx, "paper_expression", "Expression", values.EXPRESSION, 1.0, steps=40,
                                        tip="Strength of the transferred expression: 0 the portrait at rest, "
                                        "1 as driven")
        for widget in (self.paste_back, self.motion, self.smoothing, self.expression):
            self.add_row(widget)
        self.render()
