"""Small building blocks of the main window: section titles, status chips, the message banner."""
from __future__ import annotations

from PyQt6.QtCore import Qt, QTimer
from PyQt6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

from app.gui import theme


def section_title(text: str) -> QLabel:
    label = QLabel(text.upper())
    label.setObjectName("SectionTitle")
    return label


def hint(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setObjectName("Hint")
    label.setWordWrap(True)
    return label


def chip(text: str = "", tooltip: str = "") -> QLabel:
    label = QLabel(text)
    label.setObjectName("Chip")
    label.setToolTip(tooltip)
    return label


class Banner(QFrame):
    """A dismissable one-line message above the views; errors stay until closed, notes fade after a while."""

    STYLES = {
        "error": (theme.RECORD, "#2a1517"),
        "warning": (theme.WARN, "#2a2212"),
        "info": (theme.ACCENT, "#141d2c"),
        "success": (theme.OK, "#13231a"),
    }

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.kind = ""
        self._text = QLabel()
        self._text.setWordWrap(True)
        self._text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QPushButton("✕")
        close.setFlat(True)
        close.setFixedWidth(28)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 6, 6, 6)
        layout.addWidget(self._text, 1)
        layout.addWidget(close)
        self._timer = QTimer(self, singleShot=True, timeout=self.hide)
        self.hide()

    @property
    def text(self) -> str:
        return self._text.text()

    def show_message(self, kind: str, text: str, timeout_ms: int | None = None) -> None:
        """kind: error | warning | info | success. Errors default to staying, others to 8 s."""
        border, fill = self.STYLES[kind]
        self.kind = kind
        self.setStyleSheet(f"Banner {{ background: {fill}; border: 1px solid {border}; border-radius: 8px; }}")
        self._text.setText(text)
        self.show()
        timeout = timeout_ms if timeout_ms is not None else (0 if kind == "error" else 8000)
        self._timer.stop()
        if timeout:
            self._timer.start(timeout)
