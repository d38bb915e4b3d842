"""The train panel's early stopping: the project's ``training.early_stopping`` (core/early_stopping.py)
as a watched figure ("off" for none) and a patience, each change one undo step."""
from __future__ import annotations

from PySide6.QtCore import QSignalBlocker
from PySide6.QtWidgets import QComboBox, QFormLayout, QSpinBox, QWidget

from netbuilder.core.early_stopping import EarlyStopping

KEY = "training.early_stopping"
CHOICES = (("off", None), ("validation loss", "val_loss"), ("validation accuracy", "val_accuracy"))


class EarlyStoppingEditor(QWidget):
    """Rows for a QFormLayout: what to watch and for how many epochs without improvement."""

    def __init__(self, doc, form: QFormLayout, parent: QWidget | None = None):
        super().__init__(parent)
        self.doc = doc
        self.monitor = QComboBox()
        self.monitor.setObjectName("early_stopping.monitor")
        for label, monitor in CHOICES:
            self.monitor.addItem(label, monitor)
        self.monitor.setToolTip("end the run once this stops improving, and keep the best epoch's weights")
        self.monitor.activated.connect(lambda _i: self._commit())
        self.patience = QSpinBox()
        self.patience.setObjectName("early_stopping.patience")
        self.patience.setRange(0, 1000)
        self.patience.setToolTip("epochs without improvement before the run ends")
        self.patience.setKeyboardTracking(False)
        self.patience.valueChanged.connect(lambda _v: self._commit())
        form.addRow("Early stopping", self.monitor)
        form.addRow("Patience (epochs)", self.patience)
        self._form = form
        doc.valueChanged.connect(lambda key: self.refresh() if key == KEY else None)
        doc.projectReplaced.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        try:
            early = EarlyStopping.from_spec(self.doc.project.training.early_stopping)
        except ValueError:  # a hand-edited value out of range: listed with the project's problems
            early = None
        with QSignalBlocker(self.monitor), QSignalBlocker(self.patience):
            self.monitor.setCurrentIndex(self.monitor.findData(early.monitor) if early else 0)
            self.patience.setValue(early.patience if early else 3)
        self._form.setRowVisible(self.patience, early is not None)

    def set_enabled(self, enabled: bool) -> None:
        self.monitor.setEnabled(enabled)
        self.patience.setEnabled(enabled)

    def _commit(self) -> None:
        monitor = self.monitor.currentData()
        spec = dict(self.doc.project.training.early_stopping or {})
        if monitor is None:
            self.doc.set_value(KEY, None)
            return
        spec.update(monitor=monitor, patience=self.patience.value())
        self.doc.set_value(KEY, spec)
