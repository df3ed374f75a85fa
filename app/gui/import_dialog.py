"""File → Import original weights…: the paper's checkpoints → a Mimic model pack, in the background."""
from __future__ import annotations

from pathlib import Path

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.gui.dialogs import open_file, save_file
from app.gui.jobs import Job
from app.gui.widgets import hint

CHECKPOINTS = "Checkpoints (*.pt *.pth *.pkl);;All files (*)"


class _FileField(QWidget):
    """A path line edit with a Browse… button."""

    def __init__(self, placeholder: str, save: bool = False, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.save = save
        self.edit = QLineEdit()
        self.edit.setPlaceholderText(placeholder)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit, 1)
        layout.addWidget(browse)

    @property
    def path(self) -> Path | None:
        text = self.edit.text().strip()
        return Path(text) if text else None

    def _browse(self) -> None:
        if self.save:
            path = save_file(self, "Write the model pack", "Mimic model packs (*.safetensors)",
                             "mimic-paper.safetensors")
        else:
            path = open_file(self, "Choose a checkpoint", CHECKPOINTS)
        if path:
            self.edit.setText(str(path))


class ImportWeightsDialog(QDialog):
    """Pick the original checkpoints, write a pack; `imported` carries the pack's path."""

    imported = pyqtSignal(object)  # Path

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Import original weights")
        self.setMinimumWidth(620)
        self.paper = _FileField("best_model.pt — the paper's model (required)")
        self.restyle = _FileField("restyle_psp_ffhq_encode.pt — ReStyle encoder (required)")
        self.stylegan = _FileField("stylegan2-ffhq-config-f.pt or NVIDIA .pkl (optional)")
        self.arcface = _FileField("model_ir_se50.pth — identity metric (optional)")
        self.output = _FileField("where to write the pack (.safetensors)", save=True)
        form = QFormLayout()
        form.addRow("Paper model", self.paper)
        form.addRow("ReStyle encoder", self.restyle)
        form.addRow("StyleGAN2 generator", self.stylegan)
        form.addRow("ArcFace", self.arcface)
        form.addRow("Model pack", self.output)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.hide()
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.import_button = self.buttons.addButton("Import", QDialogButtonBox.ButtonRole.AcceptRole)
        self.import_button.setObjectName("Primary")
        self.import_button.clicked.connect(self.start_import)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(hint("Files are read safely: nothing inside them is executed. Every tensor is checked "
                              "against Mimic's networks before the pack is written."))
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.buttons)
        self._job: Job | None = None

    def start_import(self) -> None:
        paper, restyle, out = self.paper.path, self.restyle.path, self.output.path
        if paper is None or restyle is None or out is None:
            self._show("error", "Choose the paper model, the ReStyle encoder and where to write the pack.")
            return
        stylegan, arcface = self.stylegan.path, self.arcface.path

        def work(progress, cancel):
            from engine.runtime.weights import import_weights  # imports torch: on the worker thread only

            return import_weights(paper, restyle, stylegan, arcface, out=out, progress=progress).path

        job = Job("import weights", work)
        job.progress.connect(lambda fraction, message: (self.progress.setValue(round(fraction * 100)),
                                                        self.status.setText(message)))
        job.succeeded.connect(self._on_done)
        job.failed.connect(lambda message: self._show("error", message))
        job.finished.connect(lambda: self._set_busy(False))
        self._job = job
        self._set_busy(True)
        self._show("info", "Importing…")
        job.start()

    def _on_done(self, path: Path) -> None:
        self._show("success", f"Wrote {path}")
        self.imported.emit(Path(path))
        self.accept()

    def _set_busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.import_button.setEnabled(not busy)
        self.buttons.button(QDialogButtonBox.StandardButton.Close).setEnabled(not busy)

    def _show(self, kind: str, text: str) -> None:
        colors = {"error": "#ff8a8d", "info": "#9aa1ae", "success": "#7ee2a1"}
        self.status.setStyleSheet(f"color: {colors[kind]};")
        self.status.setText(text)

    def reject(self) -> None:
        if self._job is not None and not self._job.done:
            return  # an import cannot be interrupted half-written; Close is disabled meanwhile
        super().reject()
