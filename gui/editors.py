"""Field editors built from a block kind's schema, one per field type (int, pair, padding, choice,
float, optional pair, bool), for the inspector.

Each ``accepts(value)`` says whether its widgets can show the value; ``show_value(value, info)``
shows it (signals blocked); user changes call ``commit(new_value)``. Editors hold no state of
their own: the document is the model.
"""
from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from netbuilder.core.blocks import Field
from netbuilder.core.inference import BlockInfo
from netbuilder.gui import theme

INT_MAXIMUM = 4096  # spin boxes stretch beyond it when a project holds a larger value

Commit = Callable[[Any], None]


def is_int(v: Any, minimum: int) -> bool:
    return type(v) is int and v >= minimum


def as_pair(v: Any, minimum: int) -> tuple[int, int] | None:
    """(h, w) for an int or a 2-list/tuple of ints >= minimum; None for anything else."""
    if is_int(v, minimum):
        return v, v
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(is_int(x, minimum) for x in v):
        return v[0], v[1]
    return None


def show_raw(v: Any) -> str:
    """A value as it is written in the project file."""
    try:
        return json.dumps(v)
    except (TypeError, ValueError):
        return repr(v)


def set_spin(spin: QSpinBox | QDoubleSpinBox, value) -> None:
    """Show ``value`` without emitting, and without touching a spin box that already shows it (the
    user may be typing in it)."""
    if spin.maximum() < value:
        spin.setMaximum(value)
    if spin.value() != value:
        with QSignalBlocker(spin):
            spin.setValue(value)


def spin_box(minimum: int, name: str, tip: str) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(minimum, INT_MAXIMUM)
    spin.setObjectName(name)
    spin.setToolTip(tip)
    spin.setAccelerated(True)
    return spin


# -- editors: one per field type ------------------------------------------------------------------
# Each ``accepts(value)`` says whether its widgets can show the value; ``show(value, info)`` shows it
# (signals blocked); user changes call ``commit(new_value)``.

class Editor(QWidget):
    def __init__(self, commit: Commit):
        super().__init__()
        self.commit = commit
        self.row = QHBoxLayout(self)
        self.row.setContentsMargins(0, 0, 0, 0)

    def accepts(self, value: Any) -> bool:
        raise NotImplementedError

    def show_value(self, value: Any, info: BlockInfo | None) -> None:
        raise NotImplementedError


class IntEditor(Editor):
    def __init__(self, field: Field, commit: Commit):
        super().__init__(commit)
        self.minimum = int(field.minimum if field.minimum is not None else 1)
        self.spin = spin_box(self.minimum, field.name, field.help)
        self.spin.valueChanged.connect(self.commit)
        self.row.addWidget(self.spin)
        self.row.addStretch(1)

    def accepts(self, value):
        return is_int(value, self.minimum)

    def show_value(self, value, info):
        set_spin(self.spin, value)


class PairEditor(Editor):
    """Height x width spin boxes with a "square" link; writes an int when square, [h, w] otherwise."""

    def __init__(self, name: str, tip: str, commit: Commit, minimum: int = 1):
        super().__init__(commit)
        self.minimum = minimum
        self.height = spin_box(minimum, f"{name}.height", f"{tip} (height)")
        self.width = spin_box(minimum, f"{name}.width", f"{tip} (width)")
        self.square = QCheckBox("square")
        self.square.setObjectName(f"{name}.square")
        self.square.setToolTip("same height and width (one number in the project file)")
        times = QLabel("×")
        self.row.addWidget(self.height)
        self.row.addWidget(times)
        self.row.addWidget(self.width)
        self.row.addWidget(self.square)
        self.row.addStretch(1)
        self.height.valueChanged.connect(self._edited)
        self.width.valueChanged.connect(self._edited)
        self.square.toggled.connect(self._edited)

    def _edited(self) -> None:
        h, w = self.height.value(), self.width.value()
        self.commit(h if self.square.isChecked() else [h, w])

    def accepts(self, value):
        return as_pair(value, self.minimum) is not None

    def show_value(self, value, info=None):
        h, w = as_pair(value, self.minimum)
        set_spin(self.height, h)
        set_spin(self.width, w)
        square = is_int(value, self.minimum)
        with QSignalBlocker(self.square):
            self.square.setChecked(square)
        self.width.setEnabled(not square)


class PaddingEditor(Editor):
    """"valid" / "same" / custom pixels (a pair editor)."""

    MODES = ("valid", "same", "custom")

    def __init__(self, field: Field, commit: Commit):
        super().__init__(commit)
        self.mode = QComboBox()
        self.mode.setObjectName(f"{field.name}.mode")
        self.mode.addItems(self.MODES)
        self.mode.setItemData(0, "no padding: the output shrinks by the kernel size - 1", Qt.ToolTipRole)
        self.mode.setItemData(1, "pads so that the output is ceil(input / stride)", Qt.ToolTipRole)
        self.mode.setItemData(2, "a number of zero pixels on each side", Qt.ToolTipRole)
        self.mode.setToolTip(field.help)
        self.pixels = PairEditor(field.name, "zero pixels added on each side", commit, minimum=0)
        column = QVBoxLayout()  # the pixels under the mode: side by side they overflow a narrow dock
        column.setSpacing(2)
        column.addWidget(self.mode, 0, Qt.AlignLeft)
        column.addWidget(self.pixels)
        self.row.addLayout(column, 1)
        self.mode.activated.connect(self._mode_chosen)
        self._info: BlockInfo | None = None

    def _mode_chosen(self, index: int) -> None:
        mode = self.MODES[index]
        if mode != "custom":
            self.commit(mode)
            return
        # Start from the pads in use (what "same" chose), so switching changes nothing yet.
        pads = (self._info.geometry.pads if self._info else None) or (0, 0, 0, 0)
        top, bottom, left, right = pads
        if top != bottom or left != right:
            top = left = 0
        self.commit(top if top == left else [top, left])

    def accepts(self, value):
        return value in ("valid", "same") or as_pair(value, 0) is not None

    def show_value(self, value, info):
        self._info = info
        custom = value not in ("valid", "same")
        with QSignalBlocker(self.mode):
            self.mode.setCurrentIndex(2 if custom else self.MODES.index(value))
        self.pixels.setVisible(custom)
        if custom:
            self.pixels.show_value(value)


class ChoiceEditor(Editor):
    def __init__(self, field: Field, commit: Commit):
        super().__init__(commit)
        self.choices = field.choices
        self.combo = QComboBox()
        self.combo.setObjectName(field.name)
        self.combo.addItems(list(field.choices))
        self.combo.setToolTip(field.help)
        self.combo.activated.connect(lambda i: self.commit(self.choices[i]))
        self.row.addWidget(self.combo)
        self.row.addStretch(1)

    def accepts(self, value):
        return isinstance(value, str) and value in self.choices

    def show_value(self, value, info):
        with QSignalBlocker(self.combo):
            self.combo.setCurrentIndex(self.choices.index(value))


class OptionalPairEditor(Editor):
    """Pool stride: "same as size" (null) or its own pair."""

    def __init__(self, field: Field, commit: Commit):
        super().__init__(commit)
        self.same = QCheckBox("same as size")
        self.same.setObjectName(f"{field.name}.same")
        self.same.setToolTip(field.help)
        self.pair = PairEditor(field.name, field.help, commit)
        # Two lines: the checkbox, then the pair (side by side they overflow a narrow dock).
        column = QVBoxLayout()
        column.setSpacing(2)
        column.addWidget(self.same)
        column.addWidget(self.pair)
        self.row.addLayout(column, 1)
        self.same.toggled.connect(self._toggled)
        self._info: BlockInfo | None = None

    def _toggled(self, same: bool) -> None:
        if same:
            self.commit(None)
            return
        size = self._info.block.get("size") if self._info else None
        size = size if as_pair(size, 1) is not None else 2
        self.commit(copy.deepcopy(size))  # the stride in use, so unticking changes no shape

    def accepts(self, value):
        return value is None or as_pair(value, 1) is not None

    def show_value(self, value, info):
        self._info = info
        with QSignalBlocker(self.same):
            self.same.setChecked(value is None)
        self.pair.setVisible(value is not None)
        if value is not None:
            self.pair.show_value(value)


class FloatEditor(Editor):
    def __init__(self, field: Field, commit: Commit):
        super().__init__(commit)
        self.minimum = field.minimum if field.minimum is not None else -1e9
        self.maximum = field.maximum if field.maximum is not None else 1e9
        self.spin = QDoubleSpinBox()
        self.spin.setObjectName(field.name)
        self.spin.setDecimals(3)
        self.spin.setSingleStep(0.05)
        self.spin.setRange(self.minimum, self.maximum)
        self.spin.setToolTip(field.help)
        self.spin.valueChanged.connect(self.commit)
        self.row.addWidget(self.spin)
        self.row.addStretch(1)

    def accepts(self, value):
        return (type(value) in (int, float) and math.isfinite(value)
                and self.minimum <= value <= self.maximum)

    def show_value(self, value, info):
        if not math.isclose(self.spin.value(), value, abs_tol=1e-9):
            with QSignalBlocker(self.spin):
                self.spin.setValue(value)


class SmallFloatEditor(Editor):
    """A number typed as text, for fields whose values are tiny (eps = 1e-5): a spin box would
    round them to 0."""

    def __init__(self, field: Field, commit: Commit):
        super().__init__(commit)
        self.minimum, self.maximum = field.minimum, field.maximum if field.maximum is not None else math.inf
        self.edit = QLineEdit()
        self.edit.setObjectName(field.name)
        self.edit.setToolTip(f"{field.help} ({self.minimum:g} to {self.maximum:g}, e.g. 1e-5)")
        self.edit.editingFinished.connect(self._edited)
        self.row.addWidget(self.edit)
        self.row.addStretch(1)

    def _edited(self) -> None:
        try:
            value = float(self.edit.text())
        except ValueError:
            value = None
        if value is None or not (math.isfinite(value) and self.minimum <= value <= self.maximum):
            theme.style(self.edit, "color: {ERROR};")  # kept as typed, marked; the model is unchanged
            self.edit.setToolTip(f"not a number from {self.minimum:g} to {self.maximum:g}: {self.edit.text()!r}")
            return
        theme.style(self.edit, "")
        self.commit(value)

    def accepts(self, value):
        return type(value) in (int, float) and math.isfinite(value) and self.minimum <= value <= self.maximum

    def show_value(self, value, info):
        text = f"{value:g}"
        if self.edit.text() != text and not self.edit.hasFocus():
            with QSignalBlocker(self.edit):
                self.edit.setText(text)


class NameEditor(Editor):
    """A line edit; empty means the automatic name, shown as the placeholder."""

    def __init__(self, commit: Commit, name: str = "name", tip: str = ""):
        super().__init__(commit)
        self.edit = QLineEdit()
        self.edit.setObjectName(name)
        self.edit.setToolTip(tip)
        self.edit.textEdited.connect(self._edited)
        self.row.addWidget(self.edit)

    def _edited(self, text: str) -> None:
        self.commit(text.strip() or None)

    def accepts(self, value):
        return value is None or isinstance(value, str)

    def show_value(self, value, info):
        if info is not None:
            self.edit.setPlaceholderText(f"{info.name} (automatic)")
        text = value or ""
        if self.edit.text().strip() != text.strip():  # the user may be typing a trailing space
            with QSignalBlocker(self.edit):
                self.edit.setText(text)


class ProjectTextEditor(NameEditor):
    def _edited(self, text: str) -> None:
        self.commit(text)


class ShapeEditor(Editor):
    """The project's input shape: channels, height, width."""

    def __init__(self, commit: Commit):
        super().__init__(commit)
        tips = ("channels: 1 for grey images, 3 for colour", "image height in pixels", "image width in pixels")
        axes = ("channels", "height", "width")
        self.spins = [spin_box(1, f"input_shape.{axis}", tip) for axis, tip in zip(axes, tips)]
        for i, spin in enumerate(self.spins):
            if i:
                self.row.addWidget(QLabel("×"))
            self.row.addWidget(spin)
            spin.valueChanged.connect(self._edited)
        self.row.addStretch(1)

    def _edited(self) -> None:
        self.commit(tuple(spin.value() for spin in self.spins))

    def accepts(self, value):
        return isinstance(value, (list, tuple)) and len(value) == 3 and all(is_int(v, 1) for v in value)

    def show_value(self, value, info):
        for spin, v in zip(self.spins, value):
            set_spin(spin, v)


class ClassesEditor(Editor):
    """Number of classes; 0 on the spin box means "from the dataset" (null)."""

    def __init__(self, commit: Commit):
        super().__init__(commit)
        self.spin = spin_box(0, "num_classes", "outputs of the last block; 1 means one binary output")
        self.spin.setSpecialValueText("from the dataset")
        self.spin.valueChanged.connect(lambda v: self.commit(v or None))
        self.row.addWidget(self.spin)
        self.row.addStretch(1)

    def accepts(self, value):
        return value is None or is_int(value, 1)

    def show_value(self, value, info):
        set_spin(self.spin, value or 0)


class BoolEditor(Editor):
    """A check box for a true/false field (conv's bias)."""

    def __init__(self, field: Field, commit: Commit):
        super().__init__(commit)
        self.box = QCheckBox()
        self.box.setObjectName(field.name)
        self.box.setToolTip(field.help)
        self.box.toggled.connect(self.commit)
        self.row.addWidget(self.box)
        self.row.addStretch(1)

    def accepts(self, value):
        return isinstance(value, bool)

    def show_value(self, value, info):
        if self.box.isChecked() != value:
            with QSignalBlocker(self.box):
                self.box.setChecked(value)


_EDITORS = {"int": IntEditor, "padding": PaddingEditor, "choice": ChoiceEditor,
            "optional_pair": OptionalPairEditor, "float": FloatEditor, "bool": BoolEditor}


def make_editor(field: Field, commit: Commit) -> Editor:
    if field.type == "float" and field.minimum is not None and 0 < field.minimum < 1e-3:
        return SmallFloatEditor(field, commit)
    if field.type == "pair":
        return PairEditor(field.name, field.help, commit, minimum=int(field.minimum or 1))
    return _EDITORS[field.type](field, commit)


