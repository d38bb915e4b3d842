"""A drawing canvas at the network's input size: draw with the mouse, see it scaled up, pixel by pixel.

The picture is kept at exactly H x W (what the network takes), grey or RGB by the input's
channels, white strokes on black by default (as MNIST's digits are); ``invert`` swaps them. It is
shown scaled up by a whole number with crisp pixels. ``drawn`` is emitted when a stroke ends, a
clear or an invert changes the picture; ``array()`` gives it as (C, H, W) float32 in [0, 1].
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from netbuilder.gui import theme


class SketchPad(QWidget):
    """Draw an image of ``height`` x ``width`` pixels with ``channels`` (1 grey, 3 RGB)."""

    drawn = Signal()

    def __init__(self, channels: int = 1, height: int = 28, width: int = 28, parent: QWidget | None = None):
        super().__init__(parent)
        self.brush = 2.0  # in image pixels
        self.colour = QColor("white")
        self._last: QPointF | None = None
        self.set_shape(channels, height, width)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.setToolTip("Draw with the mouse; the network classifies the drawing when a stroke ends")

    # --- the picture -------------------------------------------------------------------------------
    def set_shape(self, channels: int, height: int, width: int) -> None:
        """A new blank picture of this size (the old one is dropped if the size changes)."""
        shape = (int(channels), int(height), int(width))
        if getattr(self, "shape", None) == shape:
            return
        self.shape = shape
        self.image = QImage(shape[2], shape[1], QImage.Format.Format_RGB32)
        self.image.fill(QColor("black"))
        if shape[0] == 1:
            self.colour = QColor("white")
        self.updateGeometry()
        self.update()

    @property
    def scale(self) -> int:
        _, h, w = self.shape
        return max(1, min(10, 280 // max(h, w)))

    def sizeHint(self) -> QSize:
        _, h, w = self.shape
        return QSize(w * self.scale + 2, h * self.scale + 2)

    def minimumSizeHint(self) -> QSize:
        return self.sizeHint()

    def array(self) -> np.ndarray:
        """The picture as the network takes it: (C, H, W) float32 in [0, 1]."""
        c, h, w = self.shape
        image = self.image.convertToFormat(QImage.Format.Format_RGB888)
        rgb = np.frombuffer(image.constBits(), np.uint8, image.bytesPerLine() * h)
        rgb = rgb.reshape(h, image.bytesPerLine())[:, :3 * w].reshape(h, w, 3).astype(np.float32) / 255
        if c == 1:  # drawn in grey, so every channel holds the same value
            return np.ascontiguousarray(rgb[None, :, :, 0])
        return np.ascontiguousarray(rgb.transpose(2, 0, 1))

    def is_blank(self) -> bool:
        return not self.array().any()

    def clear(self) -> None:
        self.image.fill(QColor("black"))
        self.update()
        self.drawn.emit()

    def invert(self) -> None:
        self.image.invertPixels()
        self.update()
        self.drawn.emit()

    def stroke(self, points: list[tuple[float, float]]) -> None:
        """Draw a line through ``points`` (x, y in image pixels) with the brush, then ``drawn``."""
        for i, (x, y) in enumerate(points):
            self._paint_to(QPointF(x, y), QPointF(*points[i - 1]) if i else None)
        self.update()
        self.drawn.emit()

    # --- the mouse ---------------------------------------------------------------------------------
    def _to_image(self, pos) -> QPointF:
        return QPointF((pos.x() - 1) / self.scale, (pos.y() - 1) / self.scale)

    def _paint_to(self, point: QPointF, previous: QPointF | None) -> None:
        painter = QPainter(self.image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        pen = QPen(self.colour, self.brush, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap,
                   Qt.PenJoinStyle.RoundJoin)
        painter.setPen(pen)
        if previous is None:
            painter.drawPoint(point)
        else:
            painter.drawLine(previous, point)
        painter.end()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self._last = self._to_image(event.position())
            self._paint_to(self._last, None)
            self.update()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._last is not None and event.buttons() & Qt.MouseButton.LeftButton:
            point = self._to_image(event.position())
            self._paint_to(point, self._last)
            self._last = point
            self.update()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._last is not None and event.button() == Qt.MouseButton.LeftButton:
            self._last = None
            self.drawn.emit()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        _, h, w = self.shape
        s = self.scale
        painter.setPen(QColor(theme.MUTED))
        painter.drawRect(0, 0, w * s + 1, h * s + 1)
        painter.drawImage(1, 1, self.image.scaled(w * s, h * s))  # nearest neighbour: crisp pixels
        painter.end()
