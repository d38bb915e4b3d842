"""The train panel's learning-rate schedule: the project's ``training.schedule`` (core/schedules.py)
as a kind, an optional warm-up and the kind's own settings, each change one undo step."""
from __future__ import annotations

from PySide6.QtCore import QSignalBlocker
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QFormLayout, QSpinBox, QWidget

from netbuilder.core.schedules import KINDS, Schedule

KEY = "training.schedule"
TIPS = {
    "constant": "the same rate throughout (a rate changed during the run is kept)",
    "step": "the rate × gamma every N epochs",
    "cosine": "the rate falls along half a cosine to floor × the rate by the last batch",
    "plateau": "the rate × factor when the validation loss has not improved for 'patience' epochs",
}
# kind -> (setting, label, kind of box, minimum, maximum, step, decimals, tip)
SETTINGS = {
    "step": (("every", "Every (epochs)", 1, 1000, 1, 0, "epochs between reductions"),
             ("gamma", "Gamma", 0.01, 0.99, 0.05, 2, "the rate is multiplied by this")),
    "cosine": (("floor", "Floor", 0.0, 1.0, 0.05, 2, "the last batch's rate, as a share of the rate"),),
    "plateau": (("patience", "Patience (epochs)", 0, 1000, 1, 0, "epochs without improvement before a reduction"),
                ("factor", "Factor", 0.01, 0.99, 0.05, 2, "the rate is multiplied by this")),
}


class ScheduleEditor(QWidget):
    """Rows for a QFormLayout: kind, warm-up, and the kind's settings (only those shown)."""

    def __init__(self, doc, form: QFormLayout, parent: QWidget | None = None):
        super().__init__(parent)
        self.doc = doc
        self.kind = QComboBox()
        self.kind.setObjectName("schedule.kind")
        for i, kind in enumerate(KINDS):
            self.kind.addItem(kind, kind)
            self.kind.setItemData(i, TIPS[kind], 3)  # Qt.ToolTipRole
        self.kind.setToolTip("how the learning rate changes over the run; a rate changed by hand during a run "
                             "becomes the rate then, and the schedule goes on from it")
        self.kind.activated.connect(lambda _i: self._commit())
        self.warmup = QSpinBox()
        self.warmup.setObjectName("schedule.warmup")
        self.warmup.setRange(0, 1000)
        self.warmup.setToolTip("epochs over which the rate grows linearly to its value first (0: none)")
        self.warmup.setKeyboardTracking(False)
        self.warmup.valueChanged.connect(lambda _v: self._commit())
        form.addRow("Schedule", self.kind)
        form.addRow("Warm-up (epochs)", self.warmup)
        self.boxes: dict[str, QSpinBox | QDoubleSpinBox] = {}
        self._rows = []
        for kind, settings in SETTINGS.items():
            for name, label, low, high, step, decimals, tip in settings:
                box = QSpinBox() if decimals == 0 else QDoubleSpinBox()
                if decimals:
                    box.setDecimals(decimals)
                box.setRange(low, high)
                box.setSingleStep(step)
                box.setToolTip(tip)
                box.setKeyboardTracking(False)
                box.setObjectName(f"schedule.{name}")
                box.valueChanged.connect(lambda _v: self._commit())
                self.boxes[f"{kind}.{name}"] = box
                form.addRow(label, box)
                self._rows.append((kind, form, box))
        doc.valueChanged.connect(lambda key: self.refresh() if key == KEY else None)
        doc.projectReplaced.connect(self.refresh)
        self.refresh()

    def schedule(self) -> Schedule:
        try:
            return Schedule.from_spec(self.doc.project.training.schedule)
        except ValueError:  # a hand-edited value out of range: the problem is listed with the project's
            return Schedule()

    def refresh(self) -> None:
        schedule = self.schedule()
        defaults = {k: Schedule.from_spec({"kind": k}).settings for k in SETTINGS}
        with QSignalBlocker(self.kind), QSignalBlocker(self.warmup):
            self.kind.setCurrentIndex(self.kind.findData(schedule.kind))
            self.warmup.setValue(schedule.warmup)
        for key, box in self.boxes.items():
            kind, name = key.split(".")
            value = schedule.settings.get(name) if kind == schedule.kind else defaults[kind][name]
            with QSignalBlocker(box):
                box.setValue(value)
        for kind, form, box in self._rows:
            form.setRowVisible(box, kind == schedule.kind)

    def set_enabled(self, enabled: bool) -> None:
        for w in (self.kind, self.warmup, *self.boxes.values()):
            w.setEnabled(enabled)

    def _commit(self) -> None:
        kind = self.kind.currentData()
        spec: dict = {"kind": kind}
        for name, *_ in SETTINGS.get(kind, ()):
            value = self.boxes[f"{kind}.{name}"].value()
            spec[name] = int(value) if isinstance(self.boxes[f"{kind}.{name}"], QSpinBox) else round(float(value), 6)
        if self.warmup.value():
            spec["warmup"] = self.warmup.value()
        self.doc.set_value(KEY, None if spec == {"kind": "constant"} else spec)
