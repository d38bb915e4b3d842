"""The inspector: the selected block's settings as widgets, what is wrong with them and the arithmetic.

Widgets are built from the ``netbuilder.core.blocks.KINDS`` schema (one editor per field type, from
``netbuilder.gui.editors``) and hold no state of their own: every change goes to
``ProjectDocument.set_block_field`` at once, and every change of the document (an edit here or
elsewhere, undo, a new project) refreshes the widgets from the model with their signals blocked.
With no block selected it edits the project's name, input shape and number of classes instead.
"""
from __future__ import annotations

import copy
import html
import re
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from netbuilder.core.addresses import address_text
from netbuilder.core.blocks import KINDS
from netbuilder.core.errors import ERROR, WARNING, Problem
from netbuilder.core.formula import output_size_formula, params_formula
from netbuilder.core.inference import BlockInfo
from netbuilder.core.summary import format_shape
from netbuilder.gui import theme
from netbuilder.gui.document import ProjectDocument
from netbuilder.gui.editors import (
    ClassesEditor,
    Commit,
    Editor,
    NameEditor,
    ProjectTextEditor,
    ShapeEditor,
    make_editor,
    show_raw,
)
from netbuilder.gui.summary_panel import format_bytes, severity_colors

PROJECT_DEFAULTS = {"name": "Untitled", "input_shape": (1, 28, 28), "num_classes": 10}

class FieldRow(QWidget):
    """An editor, or (for a value it cannot hold) that value as written with a reset button, and the
    field's problems underneath."""

    def __init__(self, name: str, editor: Editor, default: Any, commit: Commit):
        super().__init__()
        self.editor = editor
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.setSpacing(2)
        box.addWidget(editor)
        self.raw = QWidget()
        raw_row = QHBoxLayout(self.raw)
        raw_row.setContentsMargins(0, 0, 0, 0)
        self.raw_label = QLabel()
        self.raw_label.setObjectName(f"{name}.raw")
        self.raw_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        theme.style(self.raw_label, "color: {ERROR}; font-family: monospace;")
        self.reset = QPushButton(f"Use {show_raw(default)}")
        self.reset.setObjectName(f"{name}.reset")
        self.reset.setToolTip("replace the value from the file with this default")
        self.reset.clicked.connect(lambda: commit(copy.deepcopy(default)))
        raw_row.addWidget(self.raw_label, 1)
        raw_row.addWidget(self.reset)
        box.addWidget(self.raw)
        self.problems = QLabel()
        self.problems.setObjectName(f"{name}.problems")
        self.problems.setWordWrap(True)
        self.problems.setTextFormat(Qt.RichText)
        box.addWidget(self.problems)
        # A problem that one value fixes (a conv's bias before batchnorm) offers that value.
        self.fix = QPushButton()
        self.fix.setObjectName(f"{name}.fix")
        self.fix.clicked.connect(lambda: commit(copy.deepcopy(self._fix_value)))
        self._fix_value: Any = None
        box.addWidget(self.fix, 0, Qt.AlignLeft)

    def show_value(self, value: Any, info: BlockInfo | None, problems: list[Problem]) -> None:
        holds = self.editor.accepts(value)
        self.editor.setVisible(holds)
        self.raw.setVisible(not holds)
        if holds:
            self.editor.show_value(value, info)
        else:
            self.raw_label.setText(show_raw(value))
        self.problems.setText(_problem_html(problems))
        self.problems.setVisible(bool(problems))
        fix = next((p.fix for p in problems if p.fix is not None), None)
        self.fix.setVisible(fix is not None)
        if fix is not None:
            self.fix.setText(fix[0])
            self._fix_value = fix[1]


def _problem_html(problems: list[Problem]) -> str:
    return "<br>".join(
        f'<span style="color:{severity_colors(p.severity)[0]}">{html.escape(p.message)}</span>' for p in problems)


# -- the inspector --------------------------------------------------------------------------------

class Inspector(QWidget):
    """Edits the selected block (or, with none selected, the project) of ``doc``."""

    def __init__(self, doc: ProjectDocument, parent: QWidget | None = None):
        super().__init__(parent)
        self.doc = doc
        self._key: tuple | None = None
        self._rows: dict[str, FieldRow] = {}

        self.title = QLabel()
        self.title.setObjectName("title")
        font = self.title.font()
        font.setPointSizeF(font.pointSizeF() * 1.25)
        font.setBold(True)
        self.title.setFont(font)
        self.subtitle = QLabel()
        self.subtitle.setWordWrap(True)
        theme.style(self.subtitle, "color: {MUTED};")
        self.lock = QLabel()
        self.lock.setObjectName("lock")
        self.lock.setWordWrap(True)
        self.lock.setTextFormat(Qt.PlainText)
        theme.style(self.lock, "background: {BANNER}; color: {BANNER_TEXT}; padding: 6px; "
                               "border: 1px solid {BANNER_BORDER}; border-radius: 4px;")
        self.form_host = QWidget()
        self.problems = self._section_label("problems")
        self.facts = self._section_label("facts")
        self.formula = self._section_label("formula")
        self.formula.setToolTip("out = floor((input - kernel + padding) / stride) + 1, for height and width")

        content = QWidget()
        self._content = QVBoxLayout(content)
        self._content.setContentsMargins(10, 10, 10, 10)
        for w in (self.title, self.subtitle, self.lock, self.form_host, self.problems, self.facts, self.formula):
            self._content.addWidget(w)
        self._content.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)  # rows wrap to the dock's width instead
        scroll.setFrameShape(QFrame.NoFrame)
        scroll.setWidget(content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)

        # inferenceChanged follows every model change (edits, undo, new project), so it covers
        # blocksChanged, blockChanged and valueChanged; the others change what is shown.
        doc.inferenceChanged.connect(self.refresh)
        theme.notifier().schemeChanged.connect(self.refresh)
        doc.selectionChanged.connect(self.refresh)
        doc.lockChanged.connect(self.refresh)
        doc.projectReplaced.connect(self._replaced)
        self.refresh()

    def add_section(self, widget: QWidget) -> None:
        """Show ``widget`` under the block's facts and formula (the window adds the sample preview)."""
        self._content.insertWidget(self._content.count() - 1, widget)  # before the stretch

    @staticmethod
    def _section_label(name: str) -> QLabel:
        label = QLabel()
        label.setObjectName(name)
        label.setWordWrap(True)
        label.setTextFormat(Qt.RichText)
        label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        label.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Minimum)
        return label

    def row(self, field: str) -> FieldRow | None:
        """The row editing ``field`` ("kernel_size", "name"; project page: "input_shape"...)."""
        return self._rows.get(field)

    # -- building -----------------------------------------------------------------------------
    def _replaced(self) -> None:
        self._key = None
        self.refresh()

    def _current(self) -> tuple[tuple, dict] | None:
        """(address, block) of the selected block, inside a group or not; None for none."""
        address = self.doc.selected_path
        block = self.doc.block_at(address)
        return (address, block) if block is not None else None

    def _rebuild(self, key: tuple) -> None:
        old = self.form_host
        old.setParent(None)  # out of the tree now, so findChild no longer sees its widgets
        old.deleteLater()
        self.form_host = QWidget()
        form = QFormLayout(self.form_host)
        form.setContentsMargins(0, 6, 0, 6)
        form.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        form.setLabelAlignment(Qt.AlignRight | Qt.AlignTop)
        form.setRowWrapPolicy(QFormLayout.WrapLongRows)  # a narrow dock puts wide editors under their label
        self._rows = {}
        if key[0] == "block":
            kind = KINDS.get(key[2])
            fields = kind.fields if kind else ()
            for f in fields:
                editor = make_editor(f, self._block_commit(f.name))
                self._add_row(form, f.name, f.name.replace("_", " "), f.help, editor, f.default,
                              self._block_commit(f.name))
            commit = self._block_commit("name")
            self._add_row(form, "name", "name", "a unique name for exports (letters, digits, _); empty: automatic",
                          NameEditor(commit, tip="a unique name for exports; empty: automatic"), None, commit)
        else:
            for key_name, label, tip, editor in (
                ("name", "project name", "shown in the title bar and in exports",
                 ProjectTextEditor(self._value_commit("name"), name="project.name", tip="the project's name")),
                ("input_shape", "input shape", "channels × height × width of one input image",
                 ShapeEditor(self._value_commit("input_shape"))),
                ("num_classes", "classes", "how many classes the network tells apart",
                 ClassesEditor(self._value_commit("num_classes"))),
            ):
                self._add_row(form, key_name, label, tip, editor, PROJECT_DEFAULTS[key_name],
                              self._value_commit(key_name))
        self._content.insertWidget(3, self.form_host)
        self.form_host.show()  # the layout would show it only on the next event loop pass
        self._key = key

    def _add_row(self, form: QFormLayout, name: str, label: str, tip: str, editor: Editor, default: Any,
                 commit: Commit) -> None:
        row = FieldRow(name, editor, default, commit)
        caption = QLabel(label)
        caption.setToolTip(tip)
        row.setToolTip(tip)
        form.addRow(caption, row)
        self._rows[name] = row

    def _block_commit(self, field: str) -> Commit:
        def commit(value: Any) -> None:
            current = self._current()
            if current is None:
                return
            address = current[0]
            if field == "name" and value is None:  # emptied: back to the automatic name
                self.doc.clear_block_field(address[-1], field, lane=address[:-1])
            else:
                self.doc.set_block_field(address[-1], field, value, lane=address[:-1])
        return commit

    def _value_commit(self, key: str) -> Commit:
        return lambda value: self.doc.set_value(key, value)

    # -- refreshing from the model ------------------------------------------------------------
    def refresh(self, *_: Any) -> None:
        current = self._current()
        if current is None:
            key = ("project",)
        else:
            kind = current[1].get("kind")
            key = ("block", current[0], kind if isinstance(kind, str) else None)
        if key != self._key:
            self._rebuild(key)
        if current is None:
            self._show_project()
        else:
            self._show_block(*current)
        locked = self.doc.locked
        self.lock.setText(f"Editing is locked: {self.doc.lock_reason}" if locked else "")
        self.lock.setVisible(locked)
        self.form_host.setEnabled(not locked)

    def _show_block(self, address: tuple, block: dict) -> None:
        inference = self.doc.inference
        info = inference.info_at(address)
        kind = KINDS.get(block.get("kind"))
        where = address_text(self.doc.project.blocks, address)
        self.title.setText(f"{where[0].upper()}{where[1:]} · {info.name if info else block.get('name', 'block')}")
        self.subtitle.setText(f"{kind.label}: {_help_with_values(kind, block)}" if kind else "unknown kind of block")
        # its own problems, and for a group those of the blocks inside it
        problems = [p for p in inference.problems if p.address[:len(address)] == address]
        shown = set()
        for field_name, row in self._rows.items():
            mine = [p for p in problems if p.field == field_name and p.address == address]
            shown.update(id(p) for p in mine)
            default = kind.field(field_name).default if kind and kind.field(field_name) else None
            row.show_value(block.get(field_name, default), info, mine)
        self._show_problems([p for p in problems if id(p) not in shown])
        self._show_facts(info)

    def _show_project(self) -> None:
        project = self.doc.project
        self.title.setText(project.name or "Untitled project")
        self.subtitle.setText("Project settings. Select a block in the pipeline to edit it.")
        problems = [p for p in self.doc.inference.problems if p.block is None]
        shown = set()
        for key, row in self._rows.items():
            mine = [p for p in problems if p.field == key]
            shown.update(id(p) for p in mine)
            row.show_value(self.doc.get_value(key), None, mine)
        self._show_problems([p for p in problems if id(p) not in shown])
        inference = self.doc.inference
        self.facts.setText(_facts_html([
            ("Blocks", f"{len(project.blocks)}"),
            ("Output", format_shape(inference.output_shape)),
            ("Parameters", f"{inference.total_params:,}"),
            ("Multiply-adds", f"{inference.total_macs:,} per sample"),
            ("Activations", f"{format_bytes(inference.total_activation_bytes)} per sample"),
        ]))
        self.formula.hide()

    def _show_problems(self, problems: list[Problem]) -> None:
        order = {ERROR: 0, WARNING: 1}
        problems = sorted(problems, key=lambda p: order.get(p.severity, 2))
        self.problems.setText(_problem_html(problems))
        self.problems.setVisible(bool(problems))

    def _show_facts(self, info: BlockInfo | None) -> None:
        if info is None:
            self.facts.setText("")
            self.formula.hide()
            return
        known = info.output_shape is not None
        unknown = "? (an earlier block has a problem)" if info.input_shape is None else "? (see the problem above)"
        rows = [
            ("Input", format_shape(info.input_shape)),
            ("Output", format_shape(info.output_shape) if known else unknown),
            ("Parameters", f"{info.params:,}" if known else "?"),
            ("Multiply-adds", f"{info.macs:,} per sample" if known else "?"),
            ("Activations", f"{format_bytes(info.activation_bytes)} per sample" if known else "?"),
        ]
        self.facts.setText(_facts_html(rows))
        lines = output_size_formula(info)
        params = params_formula(info) if known else None
        if params:
            lines.append(params)
        self.formula.setText("<br>".join(html.escape(line) for line in lines))
        self.formula.setVisible(bool(lines))


def _facts_html(rows: list[tuple[str, str]]) -> str:
    cells = "".join(f'<tr><td style="color:{theme.MUTED}; padding-right:12px">{html.escape(k)}</td>'
                    f"<td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<table>{cells}</table>"


def _demo() -> None:  # python -m netbuilder.gui.inspector: the inspector on LeNet-5, first conv selected
    import sys

    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv)
    doc = ProjectDocument()
    doc.new_project("lenet5")
    doc.select(0)
    w = Inspector(doc)
    w.resize(380, 700)
    w.show()
    sys.exit(app.exec())


if __name__ == "__main__":
    _demo()


def _help_with_values(kind, block: dict) -> str:
    """A kind's help with each `field` replaced by the block's value ("slides 6 learned kernels
    over the image"), or by the field's name where the value cannot be shown plainly."""
    def value(match: re.Match) -> str:
        field = kind.field(match.group(1))
        v = block.get(match.group(1), field.default if field else None)
        return f"{v:g}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else match.group(1)
    return re.sub(r"`(\w+)`", value, kind.help)
