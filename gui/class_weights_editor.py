"""The train panel's class weights: the project's ``training.class_weights`` (core/class_weights.py)
as none, balanced, or custom numbers typed comma-separated, one a class; each change one undo step."""
from __future__ import annotations

import math
import re

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtWidgets import QComboBox, QFormLayout, QLabel, QLineEdit, QWidget

from netbuilder.core.class_weights import BALANCED
from netbuilder.gui import theme

KEY = "training.class_weights"
CHOICES = (("none", None), ("balanced", BALANCED), ("custom", "custom"))
TIPS = {
    None: "every class weighs 1 in the loss",
    BALANCED: "each class weighs n / (k · n_c) from the training split's counts, so a small class counts in the "
              "loss as much as a large one",
    "custom": "one weight a class, in class order, typed as numbers separated by commas",
}


def parse_weights(text: str, classes: int | None) -> tuple[list[float] | None, str]:
    """(the weights typed, "") or (None, why not) for ``text``, numbers separated by commas (or
    spaces); ``classes`` the count wanted (None: not known yet)."""
    parts = [p for p in re.split(r"[,;\s]+", text.strip()) if p]
    if not parts:
        return None, "type one weight a class, separated by commas"
    weights = []
    for i, part in enumerate(parts):
        try:
            value = float(part)
        except ValueError:
            return None, f"weight {i + 1}: {part!r} is not a number"
        if not math.isfinite(value) or value <= 0:
            return None, f"weight {i + 1} is {part}: each must be a number greater than 0"
        weights.append(value)
    if classes is not None and len(weights) != classes:
        return None, f"{len(weights)} weight{'s' if len(weights) != 1 else ''} typed; the network has {classes} " \
                     "classes: one a class, in class order"
    return weights, ""


class ClassWeightsEditor(QWidget):
    """Rows for a QFormLayout: the kind of weighting, and the numbers of a custom one."""

    def __init__(self, doc, form: QFormLayout, parent: QWidget | None = None):
        super().__init__(parent)
        self.doc = doc
        self.mode = QComboBox()
        self.mode.setObjectName("class_weights.mode")
        for i, (label, value) in enumerate(CHOICES):
            self.mode.addItem(label, value)
            self.mode.setItemData(i, TIPS[value], Qt.ItemDataRole.ToolTipRole)
        self.mode.setToolTip("how much each class's images weigh in the loss (for imbalanced data: balanced); "
                             "accuracy is never weighted")
        self.mode.activated.connect(lambda _i: self._mode_chosen())
        self.custom = QLineEdit()
        self.custom.setObjectName("class_weights.custom")
        self.custom.setPlaceholderText("e.g. 1, 2.5, 1")
        self.custom.setToolTip(TIPS["custom"])
        self.custom.editingFinished.connect(self._typed)
        self.error = QLabel()
        self.error.setObjectName("class_weights.error")
        self.error.setWordWrap(True)
        theme.style(self.error, "color: {ERROR};")
        form.addRow("Class weights", self.mode)
        form.addRow("Weights", self.custom)
        form.addRow(self.error)
        self._form = form
        doc.valueChanged.connect(lambda key: self.refresh() if key == KEY else None)
        doc.projectReplaced.connect(self.refresh)
        doc.inferenceChanged.connect(lambda *_: self._show_rows())
        self.refresh()

    def classes(self) -> int | None:
        """The classes the network's output gives (two for one binary output), or None while unknown."""
        out = self.doc.inference.output_shape
        if out is None or len(out) != 1:
            return None
        return 2 if out[0] == 1 else int(out[0])

    def refresh(self) -> None:
        value = self.doc.project.training.class_weights
        mode = "custom" if isinstance(value, list) else value
        index = self.mode.findData(mode)
        with QSignalBlocker(self.mode), QSignalBlocker(self.custom):
            if index < 0:  # a value the file had that is no choice (the project's problems say why)
                self.mode.addItem(str(value), value)
                index = self.mode.count() - 1
            self.mode.setCurrentIndex(index)
            if isinstance(value, list):
                self.custom.setText(", ".join(f"{v:g}" if isinstance(v, (int, float)) else str(v) for v in value))
        self.error.clear()
        self._show_rows()

    def set_enabled(self, enabled: bool) -> None:
        self.mode.setEnabled(enabled)
        self.custom.setEnabled(enabled)

    def _show_rows(self) -> None:
        custom = self.mode.currentData() == "custom"
        self._form.setRowVisible(self.custom, custom)
        self._form.setRowVisible(self.error, custom and bool(self.error.text()))

    def _mode_chosen(self) -> None:
        choice = self.mode.currentData()
        self.error.clear()
        if choice != "custom":
            self.doc.set_value(KEY, choice)
        elif not isinstance(self.doc.project.training.class_weights, list):
            classes = self.classes()
            if classes is not None:  # every class 1 to begin with, for the user to change
                self.doc.set_value(KEY, [1.0] * classes)
            else:
                self.custom.clear()
        self._show_rows()
        if choice == "custom":
            self.custom.setFocus()

    def _typed(self) -> None:
        if self.mode.currentData() != "custom":
            return
        weights, why = parse_weights(self.custom.text(), self.classes())
        self.error.setText(why)
        self._show_rows()
        if weights is not None:
            self.doc.set_value(KEY, weights)
