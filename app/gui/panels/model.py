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
        ctx.actions.use_warp.triggered.connect(lambda: self._load_local(None))
        ctx.actions.remote.triggered.connect(self.remote_dialog)
        # the factory of local models (with --remote the window starts with a RemoteFactory holding it)
        self._local_factory = getattr(self.session.factory, "local", None) or self.session.factory
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
            self._load_local(path)

    def _load_local(self, pack) -> None:
        """A model of this machine (a pack, or None: the landmark warp), also after a remote server."""
        self.session.factory = self._local_factory
        self.session.load_model(pack)

    def remote_dialog(self) -> None:
        """Model → Remote server…: connect to a Mimic server (address and token remembered)."""
        from app.gui.remote_dialog import RemoteServerDialog

        settings = self.ctx.settings
        dialog = RemoteServerDialog(self, settings.remote_url, settings.remote_token)
        dialog.accepted.connect(lambda: self.use_remote(dialog.url, dialog.token))
        dialog.open()
        self.remote = dialog  # kept for tests and so it is not collected while open

    def use_remote(self, url: str, token: str) -> None:
        from engine.server.remote_reenactor import RemoteFactory

        self.ctx.settings.remote_url, self.ctx.settings.remote_token = url, token
        self.session.factory = RemoteFactory(url, token, local=self._local_factory)
        self.session.load_model(None)

    def import_dialog(self) -> None:
        from app.gui.import_dialog import ImportWeightsDialog

        dialog = ImportWeightsDialog(self)
        dialog.imported.connect(self._load_local)
        dialog.open()
