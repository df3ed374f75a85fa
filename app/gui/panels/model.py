"""Model panel: the running reenactor, and loading or importing another one."""
from __future__ import annotations

from PyQt6.QtWidgets import QLabel, QPushButton

from app.gui.dialogs import open_file
from app.gui.panels.base import Panel, PanelContext
from engine.session import Part

PACK_FILTER = "Mimic model packs (*.safetensors);;All files (*)"


class ModelPanel(Panel):
    parts = frozenset({Part.MODEL})

    def __init__(self, ctx: PanelContext) -> None:
        super().__init__(ctx, "Model")
        self.label = QLabel("loading…")
        self.label.setWordWrap(True)
        self.add_row(self.label)
        load = QPushButton("Load pack…")
        load.clicked.connect(self.load_dialog)
        imp = QPushButton("Import weights…")
        imp.clicked.connect(self.import_dialog)
        self.add_row(load, imp)
        ctx.actions.load_pack.triggered.connect(self.load_dialog)
        ctx.actions.use_warp.triggered.connect(lambda: self.session.load_model(None))
        ctx.actions.import_weights.triggered.connect(self.import_dialog)

    def render(self) -> None:
        state = self.session.state
        if state.loading is not None:
            self.label.setText(f"Loading {state.loading}…")
        elif state.reenactor is not None:
            self.label.setText(state.reenactor.describe())
            if not self.session.pack_pending:  # the warp runs only until the launch's pack is built
                self.ctx.settings.model_pack = state.model_pack  # the next launch starts with the same choice
        else:
            self.label.setText("No model loaded")

    def load_dialog(self) -> None:
        path = open_file(self, "Load a Mimic model pack", PACK_FILTER)
        if path is not None:
            self.session.load_model(path)

    def import_dialog(self) -> None:
        from app.gui.import_dialog import ImportWeightsDialog

        dialog = ImportWeightsDialog(self)
        dialog.imported.connect(self.session.load_model)
        dialog.open()
