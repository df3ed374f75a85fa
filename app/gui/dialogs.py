"""File and folder pickers: Qt's own dialog (same look everywhere), its toolbar icons drawn for the dark theme.

The platform's dialog needs an icon theme that a bare Linux desktop (or Xvfb) lacks, and Qt's
built-in toolbar icons are black pixel art, invisible on a dark background: both showed as blank
squares. Here every toolbar icon is Qt's standard one, repainted in the theme's text colour.
"""
from __future__ import annotations

from pathlib import Path

from PyQt6.QtCore import QSize
from PyQt6.QtGui import QColor, QIcon, QPainter, QPixmap
from PyQt6.QtWidgets import QFileDialog, QToolButton, QWidget

from app.gui import theme

ICON_SIZE = 16  # px, the toolbar's


def tinted(icon: QIcon, color: str = theme.TEXT, size: int = ICON_SIZE) -> QIcon:
    """`icon`'s shape filled with `color` (keeps the alpha channel)."""
    pixmap = icon.pixmap(QSize(size, size))
    out = QPixmap(pixmap.size())
    out.fill(QColor(0, 0, 0, 0))
    p = QPainter(out)
    p.drawPixmap(0, 0, pixmap)
    p.setCompositionMode(QPainter.CompositionMode.CompositionMode_SourceIn)
    p.fillRect(out.rect(), QColor(color))
    p.end()
    return QIcon(out)


def file_dialog(parent: QWidget | None, title: str, folder: str = "", name_filter: str = "") -> QFileDialog:
    """A non-native QFileDialog with visible toolbar icons (not yet shown)."""
    dialog = QFileDialog(parent, title, folder, name_filter)
    dialog.setOption(QFileDialog.Option.DontUseNativeDialog, True)
    for button in dialog.findChildren(QToolButton):
        if not button.icon().isNull():
            button.setIcon(tinted(button.icon()))
    return dialog


def open_file(parent: QWidget | None, title: str, name_filter: str, folder: str = "") -> Path | None:
    dialog = file_dialog(parent, title, folder, name_filter)
    dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
    return Path(dialog.selectedFiles()[0]) if dialog.exec() and dialog.selectedFiles() else None


def save_file(parent: QWidget | None, title: str, name_filter: str, default_name: str) -> Path | None:
    dialog = file_dialog(parent, title, "", name_filter)
    dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
    dialog.selectFile(default_name)
    return Path(dialog.selectedFiles()[0]) if dialog.exec() and dialog.selectedFiles() else None


def pick_folder(parent: QWidget | None, title: str, folder: str) -> Path | None:
    dialog = file_dialog(parent, title, folder)
    dialog.setFileMode(QFileDialog.FileMode.Directory)
    dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)
    return Path(dialog.selectedFiles()[0]) if dialog.exec() and dialog.selectedFiles() else None
