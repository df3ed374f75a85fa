"""Retargeting panel: how much of the driver the portrait follows (landmark warp; docs/warp.md, "Retargeting controls").

Only the landmark warp reads these options: they show while it runs and are hidden, with one line
saying why, while the paper's model runs (its own Expression control is in the paper-model panel).
"""
from __future__ import annotations

from PyQt6.QtWidgets import QCheckBox, QPushButton, QSlider

from app.gui.panels.base import PanelContext, ReenactorOptionsPanel, option_checkbox, option_slider
from engine import values
from engine.reenactor import ReenactorKind

# option name → (label, range, default, tip); the ranges of engine.values.RETARGETING (the CLI's too)
SLIDERS = {
    "expression": ("Expression", values.EXPRESSION, 1.0,
                   "Expression strength: 0 keeps the portrait's rest face, 2 doubles it"),
    "head": ("Head motion", values.HEAD, 1.0, "Head-motion strength: 0 holds the portrait's pose, 2 doubles the turns"),
    "eyes": ("Eye openness", values.EYES, 0.0, "Eye openness offset: −1 shut, +1 wide, added to your own blinks"),
    "mouth": ("Mouth opening", values.MOUTH, 1.0, "Mouth openness gain: 0 never opens, 2 opens twice as wide"),
}
STEPS = 40  # notches: 0.05 per notch on the 0 … 2 sliders


class RetargetPanel(ReenactorOptionsPanel):
    """Four sliders, eye contact, and a reset to the defaults; each value is saved and restored."""

    reenactor_kind = ReenactorKind.WARP
    not_running = "For the landmark warp (File → Use landmark warp); the paper's model has its own Expression."

    def __init__(self, ctx: PanelContext) -> None:
        super().__init__(ctx, "Retargeting")
        self.sliders: dict[str, QSlider] = {}
        for name, (text, kind, default, tip) in SLIDERS.items():
            row = option_slider(ctx, name, text, kind, default=default, steps=STEPS, tip=tip)
            self.sliders[name] = row.findChild(QSlider, f"option:{name}")
            self.add_row(row)
        self.eye_contact: QCheckBox = option_checkbox(
            ctx, "eye_contact", "Eye contact", default=False,
            tip="The portrait keeps looking into the camera whatever your gaze")
        reset = QPushButton("Reset")
        reset.setToolTip("Back to the defaults: everything as the driver does it")
        reset.clicked.connect(self.reset)
        self.add_row(self.eye_contact, reset, stretch_first=True)
        self.render()

    def reset(self) -> None:
        """Every control back to its default (saved and sent like any other change)."""
        for name, (_, kind, default, _) in SLIDERS.items():
            self.sliders[name].setValue(round((default - kind.low) / (kind.high - kind.low) * STEPS))
        self.eye_contact.setChecked(False)
