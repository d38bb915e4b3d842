"""Confusion matrix of the validation split, redrawn at the end of every epoch.

Rows are true classes, columns predicted ones (the controller's "confusion" in ``epochEnded``).
Each cell shows its count; its colour is the share of its row (so small classes read as clearly
as large ones): blue on the diagonal (right), red off it (mistakes). The right-hand column is
each class's accuracy (recall).
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFontMetrics, QMouseEvent, QPainter, QPaintEvent
from PySide6.QtWidgets import QLabel, QSizePolicy, QToolTip, QVBoxLayout, QWidget

from netbuilder.core.run_events import DataReady, EpochsDone, RunBegan
from netbuilder.gui import theme


def _names(names: list[str] | None, k: int) -> list[str]:
    names = list(names or [])
    return names if len(names) == k else [str(i) for i in range(k)]


class ConfusionMatrix(QWidget):
    """Paints a (K, K) count matrix with class names on both axes and per-class accuracy."""

    MAX_CELL = 54
    PAD = 6

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._counts = np.zeros((0, 0), np.int64)
        self._names: list[str] = []
        self.names_shown = True  # class names beside the rows and columns (False in tiny cells)
        self.setMouseTracking(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(80, 80)  # small cells drop their names and counts; the hover still tells

    def set_matrix(self, counts: np.ndarray, names: list[str] | None) -> None:
        counts = np.asarray(counts, np.int64)
        if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
            raise ValueError(f"a confusion matrix must be (K, K), got shape {counts.shape}")
        self._counts = counts
        self._names = _names(names, len(counts))
        self.update()

    def clear(self) -> None:
        self._counts = np.zeros((0, 0), np.int64)
        self.update()

    @property
    def counts(self) -> np.ndarray:
        return self._counts.copy()

    def shares(self) -> np.ndarray:
        """Each row divided by its total (0 for a class with no validation samples)."""
        totals = self._counts.sum(axis=1, keepdims=True)
        return np.divide(self._counts, totals, out=np.zeros(self._counts.shape), where=totals > 0)

    def class_accuracy(self) -> np.ndarray:
        """Share of each true class predicted right (NaN where a class has no samples)."""
        totals = self._counts.sum(axis=1)
        diag = np.diag(self._counts).astype(float)
        return np.divide(diag, totals, out=np.full(len(totals), np.nan), where=totals > 0)

    def sizeHint(self) -> QSize:
        return QSize(520, 480)

    # --- geometry -------------------------------------------------------------------------------
    def _geometry(self) -> tuple[float, float, float, float]:
        """(left, top, cell, accuracy column width) for the current size and names. Cells too small
        for a line of text get no class names beside them (they would pile up; the hover names the
        cell), and the matrix takes that room instead."""
        k = len(self._counts)
        metrics = QFontMetrics(self.font())
        acc_w = metrics.horizontalAdvance("100%") + 2 * self.PAD
        name_w = max((metrics.horizontalAdvance(n) for n in self._names), default=0)
        for names in (name_w, 0):
            left = names + metrics.height() + 2 * self.PAD  # names plus the rotated "true class" title
            top = names + metrics.height() + 2 * self.PAD  # rotated column names plus the "predicted" title
            cell = min(self.MAX_CELL, (self.width() - left - acc_w - self.PAD) / max(k, 1),
                       (self.height() - top - self.PAD) / max(k, 1))
            self.names_shown = names > 0 and cell >= metrics.height() * 0.9
            if self.names_shown or names == 0:
                break
        return left, top, max(cell, 2.0), acc_w

    def cell_at(self, pos: QPoint) -> tuple[int, int] | None:
        k = len(self._counts)
        left, top, cell, _ = self._geometry()
        i, j = int((pos.y() - top) // cell), int((pos.x() - left) // cell)
        if pos.x() < left or pos.y() < top or not (0 <= i < k and 0 <= j < k):
            return None
        return i, j

    def cell_text(self, i: int, j: int) -> str:
        """The hover text of cell (true i, predicted j)."""
        n = int(self._counts[i, j])
        total = int(self._counts[i].sum())
        share = f" ({n / total:.0%} of {total})" if total else ""
        return f"true {self._names[i]} → predicted {self._names[j]}: {n}{share}"

    # --- painting -------------------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:
        k = len(self._counts)
        if not k:
            return
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        metrics = QFontMetrics(self.font())
        left, top, cell, acc_w = self._geometry()
        shares = self.shares()
        show_counts = cell >= metrics.horizontalAdvance(str(int(self._counts.max()))) + 6 and cell >= metrics.height()
        align_c = Qt.AlignmentFlag.AlignCenter
        for i in range(k):
            for j in range(k):
                rect = QRectF(left + j * cell, top + i * cell, cell, cell)
                s = float(shares[i, j])
                hue = theme.SELECTION if i == j else theme.ERROR
                painter.fillRect(rect, theme.tint(hue, 0.08 + 0.92 * s, theme.SURFACE) if s > 0
                                 else QColor(theme.SURFACE))
                if show_counts:
                    painter.setPen(QColor("#ffffff" if s > 0.55 else (theme.TEXT if s > 0 else theme.FAINT)))
                    painter.drawText(rect, align_c, str(int(self._counts[i, j])))
        painter.setPen(QColor(theme.BORDER))
        painter.drawRect(QRectF(left, top, k * cell, k * cell))

        # row names (true) on the left, column names (predicted) rotated along the top; in cells
        # narrower than a line they would pile onto each other, so then only the hover names them
        painter.setPen(QColor(theme.TEXT))
        text_h = metrics.height()
        for i, name in enumerate(self._names if self.names_shown else ()):
            painter.drawText(QRectF(text_h + self.PAD, top + i * cell, left - text_h - 2 * self.PAD, cell),
                             Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, name)
        for j, name in enumerate(self._names if self.names_shown else ()):
            painter.save()
            painter.translate(left + (j + 0.5) * cell, top - self.PAD)
            painter.rotate(-90)
            painter.drawText(QRectF(0, -text_h / 2, top - text_h - 2 * self.PAD, text_h),
                             Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, name)
            painter.restore()
        painter.setPen(QColor(theme.MUTED))
        caption_w = metrics.horizontalAdvance("predicted class") + 2
        if caption_w <= k * cell:
            painter.drawText(QRectF(left, 0, k * cell, text_h), align_c, "predicted class")
        else:  # wider than the matrix: from its left edge, not clipped on both sides
            painter.drawText(QRectF(left, 0, caption_w, text_h), Qt.AlignmentFlag.AlignLeft, "predicted class")
        painter.save()
        painter.translate(0, top + k * cell / 2)
        painter.rotate(-90)
        painter.drawText(QRectF(-k * cell / 2, 0, k * cell, text_h), align_c, "true class")
        painter.restore()

        # per-class accuracy
        x = left + k * cell + self.PAD
        painter.drawText(QRectF(x, top - text_h - self.PAD, acc_w, text_h), Qt.AlignmentFlag.AlignLeft, "acc.")
        for i, acc in enumerate(self.class_accuracy()):
            painter.setPen(QColor(theme.MUTED if np.isnan(acc) else (theme.ERROR if acc < 0.5 else theme.TEXT)))
            text = "–" if np.isnan(acc) else f"{acc:.0%}"
            if cell >= text_h * 0.8:
                painter.drawText(QRectF(x, top + i * cell, acc_w, cell),
                                 Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, text)
        painter.end()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        hit = self.cell_at(event.position().toPoint())
        if hit is None:
            QToolTip.hideText()
        else:
            QToolTip.showText(event.globalPosition().toPoint(), self.cell_text(*hit), self)
        super().mouseMoveEvent(event)


class ConfusionView(QWidget):
    """The validation confusion matrix of the latest epoch, with the epoch and overall accuracy."""

    def __init__(self, controller, parent: QWidget | None = None):
        super().__init__(parent)
        self.controller = controller
        self._class_names: list[str] = list(getattr(controller, "class_names", None) or [])
        self.epoch: int | None = None
        self.header = QLabel()
        self.header.setWordWrap(True)
        self.matrix_widget = ConfusionMatrix()
        self.note = QLabel("Rows: true class · columns: predicted class · colour: share of the row "
                           "(blue right, red wrong).")
        theme.style(self.note, "color: {MUTED};")
        self.note.setWordWrap(True)
        box = QVBoxLayout(self)
        box.setContentsMargins(6, 6, 6, 6)
        box.addWidget(self.header)
        box.addWidget(self.matrix_widget, 1)
        box.addWidget(self.note)
        self._waiting("The confusion matrix of the validation split appears after the first epoch.")

        controller.datasetReady.connect(self._dataset_ready)
        controller.runStarted.connect(self._run_started)
        controller.epochEnded.connect(self._epoch_ended)

    def heightForWidth(self, width: int) -> int:
        # Wrapped labels give the layout a height-for-width, which a scroll area takes as the
        # height to give (the preferred one: every part at full size, scrolled). Answering "no
        # preference" lets the view fill the space it is given instead, down to its minimum.
        return -1

    def minimumSizeHint(self) -> QSize:
        # The wrapped labels' heights at the width the view has now (the layout's own minimum
        # assumes them one line long, and then the note is drawn over the matrix's last rows).
        base = super().minimumSizeHint()
        margins = self.layout().contentsMargins()
        inner = max(1, self.width() - margins.left() - margins.right())
        labels = sum(max(label.heightForWidth(inner), label.sizeHint().height())
                     for label in (self.header, self.note) if label.isVisible())
        spacing = 2 * self.layout().spacing()
        height = labels + self.matrix_widget.minimumHeight() + spacing + margins.top() + margins.bottom()
        return QSize(base.width(), max(base.height(), height))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if event.size().width() != event.oldSize().width():
            self.updateGeometry()  # the labels wrap differently: a new minimum height

    def matrix(self) -> np.ndarray:
        return self.matrix_widget.counts

    def _dataset_ready(self, info: DataReady) -> None:
        self._class_names = list(info.class_names or self._class_names)

    def _run_started(self, began: RunBegan) -> None:
        if began.continued:
            return  # more epochs of the same run: the last matrix stays until the next epoch ends
        self.epoch = None
        self.matrix_widget.clear()
        self._waiting("Waiting for the end of the first epoch…")

    def _epoch_ended(self, done: EpochsDone) -> None:
        counts = done.confusion
        event = done.event
        if counts is None:
            self._waiting("No validation split (validation fraction 0): nothing to tabulate.")
            return
        counts = np.asarray(counts)
        names = self._class_names or list(getattr(self.controller, "class_names", None) or [])
        self.matrix_widget.set_matrix(counts, names)
        self.epoch = getattr(event, "epoch", None)
        total = int(counts.sum())
        accuracy = np.trace(counts) / total if total else float("nan")
        epoch = f"epoch {self.epoch}" if self.epoch is not None else "latest epoch"
        theme.set_text(
            self.header, f"<b>Validation confusion matrix</b> <span style='color:{{MUTED}}'>· {epoch} · "
            f"accuracy {accuracy:.1%} of {total:,} samples</span>")

    def _waiting(self, text: str) -> None:
        theme.set_text(self.header, f"<span style='color:{{MUTED}}'>{text}</span>")
