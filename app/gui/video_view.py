"""A widget that shows RGB frames (numpy) scaled to fit, with a caption, a badge and an optional overlay."""
from __future__ import annotations

import numpy as np
from PyQt6.QtCore import QPointF, QRectF, Qt
from PyQt6.QtGui import QColor, QFont, QFontMetrics, QImage, QPainter, QPainterPath, QPen
from PyQt6.QtWidgets import QSizePolicy, QWidget

from app.gui import theme


def to_qimage(frame: np.ndarray) -> QImage:
    """RGB uint8 [H, W, 3] → a QImage that owns its pixels."""
    frame = np.ascontiguousarray(frame)
    h, w = frame.shape[:2]
    return QImage(frame.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


CAPTION_STRIP = 34  # px at the top kept free of the picture for the caption and badge pills


class VideoView(QWidget):
    """Letterboxed frame display below a strip for the caption and badge, which never cover the picture.
    Messages are painted over the picture, never replacing it; a footer line sits at the bottom."""

    def __init__(self, caption: str, placeholder: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.caption = caption  # small label in the top-left corner, e.g. "OUTPUT"
        self.placeholder = placeholder  # shown centred while there is no frame
        self.message = ""  # centred over the picture (e.g. "Camera 0 lost — reconnecting")
        self.badge = ""  # top-right pill (e.g. "No face")
        self.footer = ""  # bottom-centre line (e.g. "Esc leaves fullscreen")
        self.frames_shown = 0
        self._image: QImage | None = None
        self._points: np.ndarray | None = None  # [N, 2] overlay points in frame pixels
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(160, 120)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)

    @property
    def has_frame(self) -> bool:
        return self._image is not None

    def current_image(self) -> QImage | None:
        return self._image

    def set_frame(self, frame: np.ndarray, points: np.ndarray | None = None) -> None:
        self._image = to_qimage(frame)
        self._points = points
        self.frames_shown += 1
        self.update()

    def clear(self) -> None:
        self._image = None
        self._points = None
        self.update()

    def set_message(self, message: str) -> None:
        if message != self.message:
            self.message = message
            self.update()

    def set_badge(self, badge: str) -> None:
        if badge != self.badge:
            self.badge = badge
            self.update()

    def set_footer(self, text: str) -> None:
        if text != self.footer:
            self.footer = text
            self.update()

    def picture_area(self) -> QRectF:
        """Where pictures may go: below the caption strip (the whole widget without a caption)."""
        top = CAPTION_STRIP if self.caption else 0
        return QRectF(0, top, self.width(), max(1, self.height() - top))

    def caption_rect(self) -> QRectF:
        """The caption pill's rectangle."""
        return self._pill_rect(self.caption, left=True)

    def image_rect(self) -> QRectF:
        """Where the picture lands in widget coordinates (aspect kept, inside `picture_area`)."""
        area = self.picture_area()
        if self._image is None:
            return area
        w, h = self._image.width(), self._image.height()
        scale = min(area.width() / w, area.height() / h)
        dw, dh = w * scale, h * scale
        return QRectF(area.left() + (area.width() - dw) / 2, area.top() + (area.height() - dh) / 2, dw, dh)

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        p.fillRect(self.rect(), QColor("#0d0e12"))
        if self._image is not None:
            target = self.image_rect()
            p.drawImage(target, self._image)
            if self._points is not None and len(self._points):
                self._paint_points(p, target)
            if self.message:
                p.fillRect(target, QColor(0, 0, 0, 140))
        else:
            self._paint_centered(p, self.placeholder, theme.MUTED, 11)
        if self.message:
            self._paint_centered(p, self.message, theme.TEXT, 11, offset=0 if self._image is not None else 28)
        if self.caption:
            self._paint_pill(p, self.caption, QColor(0, 0, 0, 150), theme.MUTED, left=True)
        if self.badge:
            self._paint_pill(p, self.badge, QColor(theme.WARN), "#1b1b1b", left=False)
        if self.footer:
            self._paint_footer(p)
        p.end()

    def _paint_footer(self, p: QPainter) -> None:
        p.setFont(self._pill_font())
        metrics = p.fontMetrics()
        w, h = metrics.horizontalAdvance(self.footer) + 24, metrics.height() + 10
        rect = QRectF((self.width() - w) / 2, self.height() - h - 24, w, h)
        path = QPainterPath()
        path.addRoundedRect(rect, h / 2, h / 2)
        p.fillPath(path, QColor(0, 0, 0, 170))
        p.setPen(QColor(theme.TEXT))
        p.drawText(rect, Qt.AlignmentFlag.AlignCenter, self.footer)

    def _paint_points(self, p: QPainter, target: QRectF) -> None:
        assert self._image is not None and self._points is not None
        sx, sy = target.width() / self._image.width(), target.height() / self._image.height()
        p.setPen(QPen(QColor(80, 210, 255, 230), max(2.0, min(sx, sy) * 1.2)))
        pts = [QPointF(target.left() + x * sx, target.top() + y * sy) for x, y in self._points[:, :2]]
        p.drawPoints(pts)

    def _paint_centered(self, p: QPainter, text: str, color: str, size: int, offset: int = 0) -> None:
        font = QFont(self.font())
        font.setPointSize(size)
        p.setFont(font)
        p.setPen(QColor(color))
        rect = self.rect().adjusted(24, offset, -24, offset)
        p.drawText(rect, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, text)

    def _pill_font(self) -> QFont:
        font = QFont(self.font())
        font.setPointSize(8)
        font.setBold(True)
        return font

    def _pill_rect(self, text: str, left: bool) -> QRectF:
        metrics = QFontMetrics(self._pill_font())
        w, h = metrics.horizontalAdvance(text) + 16, metrics.height() + 6
        x = 10 if left else self.width() - w - 10
        return QRectF(x, (CAPTION_STRIP - h) / 2, w, h)

    def _paint_pill(self, p: QPainter, text: str, fill: QColor, color: str, left: bool) -> None:
        p.setFont(self._pill_font())
        rect = self._pill_rect(text, left)
        h = rect.height()
        path = QPainterPath()
        path.addRoundedRect(rect, h / 2, h / 2)
        p.fillPath(path, fill)
        p.setPen(QColor(color))
        p.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)
