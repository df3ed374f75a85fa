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
from PyQt6.QtWidgets import QFileDialog, QHeaderView, QToolButton, QTreeView, QWidget

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


DIALOG_SIZE = (880, 540)  # px: the detail view's Size, Type and Date columns whole beside a readable Name
_last_folder: str = ""  # where the last file was picked (this run): the next dialog opens there


def file_dialog(parent: QWidget | None, title: str, folder: str = "", name_filter: str = "") -> QFileDialog:
    """A non-native QFileDialog with visible toolbar icons (not yet shown). It opens in `folder`, else where
    the last file was picked, else the home folder (never the program's own working folder), and its
    detail view shows every column whole."""
    dialog = QFileDialog(parent, title, folder or _last_folder or str(Path.home()), name_filter)
    dialog.setOption(QFileDialog.Option.DontUseNativeDialog, True)
    for button in dialog.findChildren(QToolButton):
        if not button.icon().isNull():
            button.setIcon(tinted(button.icon()))
    dialog.resize(*DIALOG_SIZE)
    details = dialog.findChild(QTreeView, "treeView")
    if details is not None:
        header = details.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)  # the name takes the room left
        for column in range(1, header.count()):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
    return dialog


def _remember(path: Path) -> Path:
    global _last_folder
    _last_folder = str(path.parent)
    return path


def open_file(parent: QWidget | None, title: str, name_filter: str, folder: str = "") -> Path | None:
    dialog = file_dialog(parent, title, folder, name_filter)
    dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
    return _remember(Path(dialog.selectedFiles()[0])) if dialog.exec() and dialog.selectedFiles() else None


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
