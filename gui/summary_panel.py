"""The summary panel: a table like Keras's model.summary (per block and total parameters, multiply-adds
and activation memory) and the list of errors, warnings and notes from shape inference.

Everything shown comes from ``doc.inference``; the panel rebuilds on ``inferenceChanged``. Clicking
a row or a problem selects its block.
"""
from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from netbuilder.core.errors import ERROR, NOTE, WARNING
from netbuilder.core.inference import Inference
from netbuilder.core.speed import project_estimate
from netbuilder.core.summary import format_shape, nested_rows, short_settings
from netbuilder.gui import theme
from netbuilder.gui.document import ProjectDocument

# severity -> the theme's (text colour, light fill) names
_SEVERITY_COLORS = {ERROR: ("ERROR", "ERROR_FILL"), WARNING: ("WARNING_TEXT", "WARNING_FILL"),
                    NOTE: ("MUTED", "BACKGROUND")}


def severity_colors(severity: str) -> tuple[str, str]:
    """(text colour, light fill) of a problem's severity in the current colour scheme."""
    text, fill = _SEVERITY_COLORS[severity]
    return getattr(theme, text), getattr(theme, fill)
_MARKS = {ERROR: "✖", WARNING: "⚠", NOTE: "ℹ"}
_ORDER = {ERROR: 0, WARNING: 1, NOTE: 2}

COLUMNS = ("#", "Block", "Output shape", "Params", "MACs", "Activations")
BLOCK_ROLE = Qt.UserRole  # on problem list items: the block's address as a list, [] for the project


def format_bytes(n: int) -> str:
    """Bytes in KB/MB (1024-based, as netbuilder.core.summary), e.g. 34000 -> "33.2 KB"."""
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:,.1f} KB"
    return f"{n / (1024 * 1024):,.1f} MB"


class SummaryPanel(QWidget):
    """Per-block table, totals and problems of ``doc``'s current inference."""

    def __init__(self, doc: ProjectDocument, parent: QWidget | None = None):
        super().__init__(parent)
        self.doc = doc

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("summary_table")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setWordWrap(False)
        self.table.setShowGrid(False)
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 8)
        header = self.table.horizontalHeader()
        header.setDefaultAlignment(Qt.AlignLeft | Qt.AlignVCenter)
        for c in range(len(COLUMNS)):
            header.setSectionResizeMode(c, QHeaderView.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.Stretch)
        for c in (3, 4, 5):
            self.table.horizontalHeaderItem(c).setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
        self.table.itemSelectionChanged.connect(self._row_selected)

        self.totals = QLabel()
        self.totals.setObjectName("totals")
        self.totals.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.totals.setWordWrap(True)  # never wider than the dock
        self.problems = QListWidget()
        self.problems.setObjectName("problems")
        self.problems.setWordWrap(True)
        # Wrapped rows are laid out again when the width changes (a one-line height clipped them).
        self.problems.setResizeMode(QListView.ResizeMode.Adjust)
        self.problems.setUniformItemSizes(False)
        self.problems.setTextElideMode(Qt.TextElideMode.ElideNone)
        self.problems.itemClicked.connect(self._problem_clicked)

        box = QVBoxLayout(self)
        box.setContentsMargins(4, 4, 4, 4)
        box.addWidget(self.table, 1)
        box.addWidget(self.totals)
        box.addWidget(self.problems)

        doc.inferenceChanged.connect(self.refresh)
        theme.notifier().schemeChanged.connect(self.refresh)
        doc.selectionChanged.connect(self._show_selection)
        self.refresh()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit_problems()

    def _fit_problems(self) -> None:
        """Size the problem list to its lines, up to 40% of the panel (then it scrolls); hide it when empty."""
        n = self.problems.count()
        self.problems.setVisible(n > 0)
        if n:
            self.problems.doItemsLayout()  # row heights for the list's current width, wrapped
            rows = sum(self.problems.visualItemRect(self.problems.item(i)).height() for i in range(n))
            limit = max(3 * self.fontMetrics().height(), int(0.4 * self.height()))
            self.problems.setFixedHeight(min(rows + 2 * self.problems.frameWidth() + 4, limit))

    # -- model -> view ------------------------------------------------------------------------
    def refresh(self, *_) -> None:
        result: Inference = self.doc.inference
        by_address: dict[tuple, list] = {}
        for p in result.problems:
            by_address.setdefault(p.address, []).append(p)
        # A group's inner blocks get rows of their own under it, indented (as the CLI's summary);
        # a click on one selects that block.
        rows = list(nested_rows(result.blocks))
        self._row_blocks = [address for *_, address in rows]
        with QSignalBlocker(self.table):
            self.table.setRowCount(len(rows))
            for row, (number, depth, info, address) in enumerate(rows):
                known = info.output_shape is not None
                cells = (
                    number,
                    f"{'    ' * depth}{info.name}  ·  {short_settings(info.block)}",
                    format_shape(info.output_shape),
                    f"{info.params:,}" if known else "?",
                    f"{info.macs:,}" if known else "?",
                    format_bytes(info.activation_bytes) if known else "?",
                )
                problems = sorted(by_address.get(address, []), key=lambda p: _ORDER[p.severity])
                worst = problems[0].severity if problems else None
                tip = "\n".join(f"{_MARKS[p.severity]} {p.message}" for p in problems)
                for c, text in enumerate(cells):
                    item = QTableWidgetItem(text)
                    if c == 1:
                        item.setIcon(theme.block_icon(info.block or info.kind))
                    if c >= 3 or c == 0:
                        item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                    if worst in (ERROR, WARNING):
                        item.setBackground(QBrush(QColor(severity_colors(worst)[1])))
                        if worst == ERROR:
                            item.setForeground(QBrush(QColor(severity_colors(ERROR)[0])))
                    if tip:
                        item.setToolTip(tip)
                    if depth:
                        item.setForeground(QBrush(QColor(theme.MUTED)))
                    self.table.setItem(row, c, item)
        self._show_selection(self.doc.selected)

        self.totals.setText(
            f"<b>Total</b>: {result.total_params:,} parameters · "
            + (f"{result.total_buffers:,} buffers (saved, not trained) · " if result.total_buffers else "")
            + f"{result.total_macs:,} multiply-adds · "
            f"{format_bytes(result.total_activation_bytes)} of activations per sample (float32) · "
            f"input {format_shape(result.input_shape)} → output {format_shape(result.output_shape)}"
            + (f" · training: {project_estimate(self.doc.project, result.total_macs).text()}"
               if result.output_shape is not None else ""))

        self.problems.clear()
        for p in sorted(result.problems, key=lambda p: _ORDER[p.severity]):
            item = QListWidgetItem(f"{_MARKS[p.severity]}  {p.message}")
            item.setForeground(QBrush(QColor(severity_colors(p.severity)[0])))
            item.setData(BLOCK_ROLE, list(p.address))
            item.setToolTip(p.message)
            self.problems.addItem(item)
        counts = {s: sum(p.severity == s for p in result.problems) for s in (ERROR, WARNING, NOTE)}
        words = {ERROR: "error", WARNING: "warning", NOTE: "note"}
        found = [f"{n} {words[s]}{'s' if n != 1 else ''}" for s, n in counts.items() if n]
        colour = (severity_colors(ERROR)[0] if counts[ERROR] else
                  severity_colors(WARNING)[0] if counts[WARNING] else theme.MUTED)
        status = f"<span style='color:{colour}'>{', '.join(found)}</span>" if found else "no problems found"
        self.totals.setText(self.totals.text() + " · " + status)
        self._fit_problems()

    def _show_selection(self, index: int) -> None:
        with QSignalBlocker(self.table):
            selected = self.doc.selected_path
            rows = [r for r, address in enumerate(getattr(self, "_row_blocks", [])) if address == selected]
            if index >= 0 and rows:
                self.table.selectRow(rows[0])
            else:
                self.table.clearSelection()

    # -- view -> model ------------------------------------------------------------------------
    def _row_selected(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        self.doc.select_path(self._row_blocks[rows[0].row()] if rows else ())

    def _problem_clicked(self, item: QListWidgetItem) -> None:
        address = item.data(BLOCK_ROLE)
        # A project-level problem selects nothing, which shows the project settings in the inspector.
        self.doc.select_path(tuple(address) if isinstance(address, list) else ())


def _demo() -> None:  # python -m netbuilder.gui.summary_panel
    import sys

    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv)
    doc = ProjectDocument()
    doc.new_project("lenet5")
    w = SummaryPanel(doc)
    w.resize(900, 420)
    w.show()
    sys.exit(app.exec())


if __name__ == "__main__":
    _demo()
