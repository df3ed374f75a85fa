"""The gallery of recent targets: thumbnails of portraits and latent files, newest first."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PyQt6.QtCore import QSize, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QFont, QIcon, QPainter, QPixmap
from PyQt6.QtWidgets import QAbstractItemView, QListView, QListWidget, QListWidgetItem, QWidget

from app.gui import theme
from app.gui.jobs import Job
from app.gui.settings import RecentTarget
from app.gui.video_view import to_qimage
from engine.errors import MediaError
from engine.media.video_io import read_image

THUMB = 72  # px


def thumbnail(image: np.ndarray, size: int = THUMB) -> np.ndarray:
    """Square centre crop of an RGB image, resized to `size`."""
    h, w = image.shape[:2]
    side = min(h, w)
    y, x = (h - side) // 2, (w - side) // 2
    return cv2.resize(image[y:y + side, x:x + side], (size, size), interpolation=cv2.INTER_AREA)


def _latent_icon(size: int = THUMB) -> QPixmap:
    pixmap = QPixmap(size, size)
    pixmap.fill(QColor(theme.RAISED))
    p = QPainter(pixmap)
    font = QFont()
    font.setPointSize(14)
    font.setBold(True)
    p.setFont(font)
    p.setPen(QColor(theme.ACCENT))
    p.drawText(pixmap.rect(), Qt.AlignmentFlag.AlignCenter, "W+")
    p.end()
    return pixmap


class TargetGallery(QListWidget):
    """Recent targets as a grid of thumbnails; a click asks for that target."""

    chosen = pyqtSignal(object)  # RecentTarget

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setIconSize(QSize(THUMB, THUMB))
        self.setGridSize(QSize(THUMB + 14, THUMB + 26))
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setWrapping(True)
        self.setSpacing(2)
        self.setUniformItemSizes(True)
        self.setWordWrap(False)
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setDragDropMode(QAbstractItemView.DragDropMode.NoDragDrop)
        self.setAcceptDrops(False)  # drops go to the main window, which handles them for the whole app
        self.viewport().setAcceptDrops(False)
        self.itemClicked.connect(lambda item: self.chosen.emit(item.data(Qt.ItemDataRole.UserRole)))
        self._thumbs: dict[str, QIcon] = {}

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt naming)
        """One row of thumbnails: the sidebar then fits its every control at 1600x1000 without scrolling
        (Qt's default, 192 px, pushed the last row out of view); the gallery grows into any room left."""
        return QSize(super().sizeHint().width(), self.minimumHeight() or THUMB + 40)

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        super().paintEvent(event)
        if self.count() == 0:
            p = QPainter(self.viewport())
            p.setPen(QColor(theme.MUTED))
            p.drawText(self.viewport().rect().adjusted(16, 0, -16, 0),
                       Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                       "Your recent targets appear here.\n\nOpen a portrait, or drop one on the window.")
            p.end()

    def set_targets(self, targets: list[RecentTarget], current: str | None = None) -> None:
        """Show `targets` (thumbnails load in the background); highlight `current`."""
        self.clear()
        missing = []
        for target in targets:
            item = QListWidgetItem(Path(target.path).stem)
            item.setData(Qt.ItemDataRole.UserRole, target)
            item.setToolTip(target.path)
            item.setSizeHint(QSize(THUMB + 10, THUMB + 22))
            if target.kind == "latent":
                item.setIcon(QIcon(_latent_icon()))
            elif target.path in self._thumbs:
                item.setIcon(self._thumbs[target.path])
            else:
                missing.append(target.path)
            self.addItem(item)
            if target.path == current:
                item.setSelected(True)
        if missing:
            job = Job("thumbnails", lambda progress, cancel: _load_thumbnails(missing))
            job.succeeded.connect(self._add_thumbnails)
            job.start()

    def add_thumbnail(self, path: str, image: np.ndarray) -> None:
        """Use an image already in memory as `path`'s thumbnail."""
        self._add_thumbnails({path: thumbnail(image)})

    def _add_thumbnails(self, thumbs: dict[str, np.ndarray]) -> None:
        for path, thumb in thumbs.items():
            self._thumbs[path] = QIcon(QPixmap.fromImage(to_qimage(thumb)))
        for row in range(self.count()):
            item = self.item(row)
            target: RecentTarget = item.data(Qt.ItemDataRole.UserRole)
            if target.path in thumbs:
                item.setIcon(self._thumbs[target.path])


def _load_thumbnails(paths: list[str]) -> dict[str, np.ndarray]:
    thumbs = {}
    for path in paths:
        try:
            thumbs[path] = thumbnail(read_image(path))
        except MediaError:  # a vanished or broken file just has no thumbnail
            continue
    return thumbs
