"""A wrapped line of text that changes often (the run's speed and time left) without laying its
window out again each time.

A QLabel's every new text asks its layout for a new geometry, and a layout request in the train
panel lays out the whole scrolled column of settings (a few times a second while training, the
panel's largest cost). ``LiveLabel`` paints its text itself and asks for a new geometry only when
the new text takes another number of lines at its width; otherwise it just repaints itself.
"""
from __future__ import annotations

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

_FLAGS = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop | Qt.TextFlag.TextWordWrap


class LiveLabel(QWidget):
    """Plain text, word-wrapped, in ``color`` (a callable giving the colour name when painted, so it
    follows the colour scheme) or the palette's text colour."""

    def __init__(self, color=None, parent: QWidget | None = None):
        super().__init__(parent)
        self._text = ""
        self._color = color
        policy = QSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        policy.setHeightForWidth(True)
        self.setSizePolicy(policy)

    def text(self) -> str:
        return self._text

    def clear(self) -> None:
        self.setText("")

    def setText(self, text: str) -> None:
        if text == self._text:
            return
        width = self.width()
        lines_before = self._height(self._text, width)
        self._text = text
        if self._height(text, width) != lines_before:
            self.updateGeometry()
        self.update()

    def _height(self, text: str, width: int) -> int:
        if not text:
            return 0
        return self.fontMetrics().boundingRect(QRect(0, 0, max(width, 1), 1 << 20), _FLAGS, text).height()

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        return self._height(self._text, width)

    def sizeHint(self) -> QSize:
        width = min(self.fontMetrics().horizontalAdvance(self._text), 360) if self._text else 0
        return QSize(width, self._height(self._text, max(width, 1)))

    def minimumSizeHint(self) -> QSize:
        return QSize(0, self.fontMetrics().height() if self._text else 0)  # the height comes from heightForWidth

    def paintEvent(self, event: QPaintEvent) -> None:
        if not self._text:
            return
        painter = QPainter(self)
        painter.setPen(QColor(self._color()) if self._color is not None else self.palette().windowText().color())
        painter.drawText(self.rect(), _FLAGS, self._text)
        painter.end()
