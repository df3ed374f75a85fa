"""Target panel: who the output looks like — recent targets, Open…, Random identity."""
from __future__ import annotations

from pathlib import Path

from PyQt6.QtWidgets import QPushButton

from app.gui.dialogs import open_file
from app.gui.gallery import TargetGallery
from app.gui.panels.base import Panel, PanelContext
from app.gui.widgets import hint
from engine.session import Event, Part, TargetApplied, TargetRef

TARGET_FILTER = "Portraits and latents (*.png *.jpg *.jpeg *.webp *.bmp *.tif *.tiff *.gif *.npy *.pkl);;All files (*)"
NEEDS_PACK = "Needs a model pack (File → Load model pack…)"


class TargetPanel(Panel):
    parts = frozenset({Part.MODEL, Part.TARGET})

    def __init__(self, ctx: PanelContext) -> None:
        super().__init__(ctx, "Target")
        self.gallery = TargetGallery()
        self.gallery.chosen.connect(self.choose)
        self.gallery.setMinimumHeight(112)  # one row of thumbnails: the window still fits 900x600
        self.rows.addWidget(self.gallery, 1)
        self.open_button = QPushButton("Open…", objectName="Primary")
        self.open_button.setToolTip("A portrait photo, or a latent file (.npy / .pkl) — or drop one on the window")
        self.open_button.clicked.connect(self.open_dialog)
        self.random_button = QPushButton("Random identity")
        self.random_button.clicked.connect(self.session.random_identity)
        self.add_row(self.open_button, self.random_button)
        self.add_row(hint("Tip: drop a portrait or a latent file anywhere on the window."))
        ctx.actions.open_target.triggered.connect(self.open_dialog)
        ctx.actions.random.triggered.connect(self.session.random_identity)
        self.gallery.set_targets(ctx.settings.recent_targets)
        self.render()

    def render(self) -> None:
        can_invent = self.session.state.can_invent
        self.random_button.setEnabled(can_invent)
        self.ctx.actions.random.setEnabled(can_invent)
        self.random_button.setToolTip("Invent a new face" if can_invent else NEEDS_PACK)

    def on_event(self, event: Event) -> None:
        if isinstance(event, TargetApplied) and event.ref is None:  # a random identity: no file of the gallery
            self.gallery.clearSelection()
        elif isinstance(event, TargetApplied):
            if event.image is not None:
                self.gallery.add_thumbnail(event.ref.path, event.image)
            self.gallery.set_targets(self.ctx.settings.remember_target(event.ref), event.ref.path)

    def choose(self, target: TargetRef) -> None:
        """A gallery click: animate it, or forget it when its file is gone."""
        if not Path(target.path).is_file():
            self.ctx.settings.forget_target(target.path)
            current = self.session.state.target
            self.gallery.set_targets(self.ctx.settings.recent_targets, current.path if current else None)
        self.session.choose_target(target)

    def open_dialog(self) -> None:
        path = open_file(self, "Open a target portrait or latent", TARGET_FILTER)
        if path is not None:
            self.session.choose_target_file(path)
