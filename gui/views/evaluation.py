"""The Training view's "Evaluation" tab: after a run, the trained network on the validation images
the run held out — accuracy, precision, recall, F1 and support per class, and a gallery of the most
confidently wrong images, each of which opens in the Try view with its saliency and feature maps.

The figures are ``core.metrics``' (the same ``netbuilder evaluate`` prints), computed as a
background job on the network the controller hands out.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from netbuilder.core.metrics import ClassificationReport, evaluate_network
from netbuilder.core.run_events import DataReady, RunEnded
from netbuilder.gui import theme
from netbuilder.gui.background import Jobs
from netbuilder.gui.views.tiles import GREY, TileGrid

GALLERY = 12  # the most confidently wrong images shown
COLUMNS = ("class", "precision", "recall", "F1", "support")


class _Gallery(TileGrid):
    """Tiles that say which one was clicked."""

    clicked = Signal(int)

    def mousePressEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self.clicked.emit(self.tile_at(event.position().toPoint()))
        super().mousePressEvent(event)


class EvaluationView(QWidget):
    """Evaluation of the last run; ``open_image(array, label)`` shows one image in the Try view."""

    def __init__(self, controller, open_image: Callable[[np.ndarray, str], None] = lambda image, label: None,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.controller = controller
        self.open_image = open_image
        self._jobs = Jobs(self)
        self._data: DataReady | None = None
        self.report: ClassificationReport | None = None
        self._images: np.ndarray | None = None  # the gallery's images, in its order
        self._names: list[str] = []

        self.header = QLabel("Evaluation appears when a run ends.")
        self.header.setWordWrap(True)
        self.header.setTextFormat(Qt.TextFormat.RichText)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.gallery_label = QLabel()
        self.gallery_label.setWordWrap(True)
        self.gallery = _Gallery(tile_size=56)
        self.gallery.hover_text = self._tile_text
        self.gallery.clicked.connect(self.open_mistake)  # a click opens the image in the Try view
        box = QVBoxLayout(self)
        box.setContentsMargins(6, 6, 6, 6)
        box.addWidget(self.header)
        box.addWidget(self.table, 1)
        box.addWidget(self.gallery_label)
        box.addWidget(self.gallery)
        controller.datasetReady.connect(self._dataset_ready)
        controller.runEnded.connect(self._run_ended)

    def _dataset_ready(self, data: DataReady) -> None:
        self._data = data

    def _run_ended(self, event: RunEnded) -> None:
        data, network = self._data, self.controller.trained_network()
        if data is None or network is None or not len(data.val_y):
            return
        x, y, names = data.val_x, data.val_y, list(data.class_names)
        what = "training samples (no validation split)" if data.val_is_train else "validation images"
        self.header.setText(f"Evaluating on {len(y):,} {what}…")
        self._jobs.start(lambda _report: evaluate_network(network, x, y, names, wrong=GALLERY),
                         done=lambda report: self._show(report, x, names, what),
                         failed=lambda exc: self.header.setText(f"The evaluation failed: {exc}"), name="evaluate")

    def _show(self, report: ClassificationReport, x: np.ndarray, names: list[str], what: str) -> None:
        self.report, self._names = report, names
        macro, weighted = report.macro, report.weighted
        theme.set_text(self.header, f"Accuracy <b>{100 * report.accuracy:.1f}%</b> ({report.correct:,} of "
                                    f"{report.total:,} {what}) · macro F1 {macro['f1']:.3f} · weighted F1 "
                                    f"{weighted['f1']:.3f}")
        self.table.setRowCount(len(report.support))
        for k in range(len(report.support)):
            cells = (names[k] if k < len(names) else f"class {k}", f"{report.precision[k]:.3f}",
                     f"{report.recall[k]:.3f}", f"{report.f1[k]:.3f}", f"{int(report.support[k]):,}")
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(k, c, item)
        mistakes = report.mistakes
        if not mistakes:
            self.gallery_label.setText("No image is misclassified.")
            self.gallery.clear()
            self._images = None
            return
        self._images = np.stack([x[m.index] for m in mistakes])
        self.gallery_label.setText(f"The {len(mistakes)} most confidently wrong: hover for what the network "
                                   "thought, click to open one in the Try view (saliency, feature maps).")
        images = np.clip(self._images, 0, 1)
        if images.shape[1] == 3:
            self.gallery.set_tiles(images.transpose(0, 2, 3, 1))
        else:
            self.gallery.set_tiles(images[:, 0], GREY)

    def _name(self, k: int) -> str:
        return self._names[k] if 0 <= k < len(self._names) else f"class {k}"

    def _tile_text(self, index: int) -> str:
        if self.report is None or not 0 <= index < len(self.report.mistakes):
            return ""
        m = self.report.mistakes[index]
        return f"true {self._name(m.true)} → predicted {self._name(m.predicted)} ({100 * m.confidence:.0f}%)"

    def open_mistake(self, index: int) -> None:
        """Show gallery image ``index`` in the Try view."""
        if self._images is not None and 0 <= index < len(self._images):
            self.open_image(self._images[index], f"a misclassified {self._name(self.report.mistakes[index].true)}")
