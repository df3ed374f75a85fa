"""File and folder pickers: Qt's own dialog (same look everywhere), its toolbar icons drawn for the dark theme.

The dialog's toolbar buttons are 23 px squares: with the theme's button padding no icon fitted,
and Qt's built-in icons are black line art, invisible on a dark background — they showed as blank
squares. Here the buttons keep a small padding (theme.py) and every toolbar icon is Qt's standard
one with its dark lines redrawn in the theme's text colour.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PyQt6.QtCore import QSize
from PyQt6.QtGui import QColor, QIcon, QImage, QPixmap
from PyQt6.QtWidgets import QFileDialog, QToolButton, QWidget

from app.gui import theme

ICON_SIZE = 16  # px, the toolbar's


def tinted(icon: QIcon, color: str = theme.TEXT, size: int = ICON_SIZE) -> QIcon:
    """Line art for a dark background: dark pixels of `icon` become `color`, light ones transparent."""
    image = icon.pixmap(QSize(size, size)).toImage().convertToFormat(QImage.Format.Format_RGBA8888)
    rgba = np.frombuffer(image.constBits().asstring(image.sizeInBytes()), np.uint8)
    rgba = rgba.reshape(image.height(), image.bytesPerLine() // 4, 4)[:, : image.width()].astype(np.float32)
    darkness = 1.0 - rgba[..., :3].mean(axis=2) / 255.0
    ink = QColor(color)
    out = np.empty(rgba.shape, np.uint8)
    out[..., :3] = (ink.red(), ink.green(), ink.blue())
    out[..., 3] = np.clip(rgba[..., 3] * darkness * 1.6, 0, 255)  # 1.6: anti-aliased edges stay visible
    result = QImage(out.tobytes(), image.width(), image.height(), 4 * image.width(), QImage.Format.Format_RGBA8888)
    return QIcon(QPixmap.fromImage(result.copy()))


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
