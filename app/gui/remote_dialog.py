"""File → Remote server…: the address and token of a Mimic server (python -m app serve), remembered."""
from __future__ import annotations

from PyQt6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit, QWidget


class RemoteServerDialog(QDialog):
    """Asks for the server's URL and token; `url` and `token` once accepted."""

    def __init__(self, parent: QWidget | None, url: str, token: str) -> None:
        super().__init__(parent)
        self.setWindowTitle("Remote server")
        form = QFormLayout(self)
        note = QLabel("The server prints its address and token when it starts (python -m app serve). "
                      "From another machine, tunnel it: ssh -L 8443:127.0.0.1:8443 gpu-box.")
        note.setWordWrap(True)
        form.addRow(note)
        self.url_edit = QLineEdit(url)
        self.url_edit.setPlaceholderText("http://127.0.0.1:8443")
        self.token_edit = QLineEdit(token)
        self.token_edit.setEchoMode(QLineEdit.EchoMode.Password)
        form.addRow("Address", self.url_edit)
        form.addRow("Token", self.token_edit)
        self.error = QLabel("")
        self.error.setWordWrap(True)
        form.addRow(self.error)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Connect")
        buttons.accepted.connect(self._check)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    @property
    def url(self) -> str:
        return self.url_edit.text().strip()

    @property
    def token(self) -> str:
        return self.token_edit.text().strip()

    def _check(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            self.error.setText("The address starts with http:// or https://")
        elif len(self.token) < 16:
            self.error.setText("The token is the long text after #token= in the server's address")
        else:
            self.accept()
