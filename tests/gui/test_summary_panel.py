"""The summary table mirrors doc.inference, tints problem rows, lists lints and selects on click."""
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor

from netbuilder.core.errors import ERROR, WARNING
from netbuilder.gui.summary_panel import BLOCK_ROLE, COLUMNS, SummaryPanel, format_bytes, severity_colors


@pytest.fixture
def panel(qtbot, doc):
    w = SummaryPanel(doc)
    qtbot.addWidget(w)
    w.resize(1000, 400)
    w.show()
    qtbot.waitExposed(w)
    return w


def cell(panel, row, column_name) -> str:
    return panel.table.item(row, COLUMNS.index(column_name)).text()


def problem_texts(panel) -> list[str]:
    return [panel.problems.item(i).text() for i in range(panel.problems.count())]


def test_one_row_per_block_with_the_inferred_figures(doc, panel):
    result = doc.inference
    assert panel.table.rowCount() == len(doc.project.blocks) == 8
    for info in result.blocks:
        assert cell(panel, info.index, "#") == str(info.index + 1)
        assert cell(panel, info.index, "Params") == f"{info.params:,}"
        assert cell(panel, info.index, "MACs") == f"{info.macs:,}"
        assert cell(panel, info.index, "Activations") == format_bytes(info.activation_bytes)
    assert cell(panel, 0, "Block") == "conv1  ·  conv 6 @ 5x5 · stride 1 · same · relu"
    assert cell(panel, 0, "Output shape") == "6 x 28 x 28"
    assert cell(panel, 5, "Params") == "48,120"
    totals = panel.totals.text()
    assert f"{result.total_params:,} parameters" in totals and "61,706" in totals
    assert f"{result.total_macs:,} multiply-adds" in totals
    assert format_bytes(result.total_activation_bytes) in totals
    assert problem_texts(panel) == [] and not panel.problems.isVisible()
    assert "no problems found" in panel.totals.text()


def test_rows_follow_edits_and_undo(doc, panel):
    doc.add_block("dropout", 5)
    assert panel.table.rowCount() == 9
    assert cell(panel, 5, "Block").startswith("dropout1")
    doc.set_block_field(0, "filters", 8)
    assert cell(panel, 0, "Params") == f"{8 * 25 + 8:,}"
    assert cell(panel, 0, "Output shape") == "8 x 28 x 28"
    doc.undo_stack.undo()
    doc.undo_stack.undo()
    assert panel.table.rowCount() == 8 and cell(panel, 0, "Params") == "156"


def test_error_rows_are_tinted_and_later_shapes_unknown(doc, panel):
    doc.set_block_field(2, "kernel_size", 30)
    fill = QColor(severity_colors(ERROR)[1])
    assert panel.table.item(2, 0).background().color() == fill
    assert "larger than its 14x14 input" in panel.table.item(2, 1).toolTip()
    assert panel.table.item(1, 0).background().color() != fill
    for row in range(3, 8):
        assert cell(panel, row, "Output shape") == "?" and cell(panel, row, "Params") == "?"
    assert any("larger than its 14x14 input" in t for t in problem_texts(panel))
    assert panel.problems.isVisible() and "1 error" in panel.totals.text()
    doc.set_block_field(2, "kernel_size", 5)
    assert panel.table.item(2, 0).background().color() != fill
    assert problem_texts(panel) == [] and not panel.problems.isVisible()
    assert "no problems found" in panel.totals.text()


@pytest.mark.parametrize("edit, words", [
    (lambda d: d.set_value("training.loss", "squared_error"), "softmax is usually trained with cross_entropy"),
    (lambda d: (d.set_value("training.loss", "squared_error"), d.set_block_field(7, "activation", "sigmoid")),
     "sigmoid outputs with squared_error on 10 classes"),
    (lambda d: d.set_block_field(5, "units", 4096), "parameters in one block"),
])
def test_lints_are_listed_as_warnings(doc, panel, edit, words):
    edit(doc)
    assert doc.inference.ok  # warnings, not errors
    found = [i for i in range(panel.problems.count()) if words in panel.problems.item(i).text()]
    assert len(found) == 1
    item = panel.problems.item(found[0])
    assert item.foreground().color() == QColor(severity_colors(WARNING)[0])
    row = item.data(BLOCK_ROLE)[0]  # LeNet-5 has no groups: the top-level index is the row
    assert panel.table.item(row, 0).background().color() == QColor(severity_colors(WARNING)[1])


def test_clicking_a_row_or_a_problem_selects_the_block(qtbot, doc, panel):
    rect = panel.table.visualRect(panel.table.model().index(3, 1))
    with qtbot.waitSignal(doc.selectionChanged):
        qtbot.mouseClick(panel.table.viewport(), Qt.LeftButton, pos=rect.center())
    assert doc.selected == 3
    doc.select(6)  # selected elsewhere (the canvas): the table follows without echoing back
    assert [i.row() for i in panel.table.selectionModel().selectedRows()] == [6]
    doc.set_block_field(5, "units", 4096)
    assert doc.selected == 6
    item = next(panel.problems.item(i) for i in range(panel.problems.count())
                if "parameters in one block" in panel.problems.item(i).text())
    rect = panel.problems.visualItemRect(item)
    qtbot.mouseClick(panel.problems.viewport(), Qt.LeftButton, pos=rect.center())
    assert doc.selected == 5


def test_new_project_rebuilds(qtbot, doc, panel):
    doc.new_project(None)
    assert panel.table.rowCount() == 0
    assert any("pipeline is empty" in t for t in problem_texts(panel))
    doc.new_project("lenet5")
    doc.select(2)
    doc.set_value("input_shape", (1, 0, 28))
    item = next(panel.problems.item(i) for i in range(panel.problems.count())
                if "input_shape must be" in panel.problems.item(i).text())
    qtbot.mouseClick(panel.problems.viewport(), Qt.LeftButton, pos=panel.problems.visualItemRect(item).center())
    assert doc.selected == -1  # a project-level problem: the inspector shows the project settings
    doc.undo_stack.undo()
    doc.new_project("lenet5")
    assert panel.table.rowCount() == 8


@pytest.mark.parametrize("n, text", [(40, "40 B"), (34000, "33.2 KB"), (3 * 1024 * 1024, "3.0 MB")])
def test_format_bytes(n, text):
    assert format_bytes(n) == text


def test_a_long_problem_wraps_and_is_shown_whole(qtbot, doc):
    panel = SummaryPanel(doc)
    qtbot.addWidget(panel)
    panel.resize(520, 400)
    panel.show()
    qtbot.waitExposed(panel)
    doc.set_block_field(len(doc.project.blocks) - 1, "activation", "relu")  # a two-line message at this width
    qtbot.wait(10)
    item = panel.problems.item(0)
    line = panel.problems.fontMetrics().height()
    rect = panel.problems.visualItemRect(item)
    assert rect.height() >= 2 * line  # wrapped, not one clipped line
    assert panel.problems.height() >= rect.height()


def test_a_groups_inner_blocks_have_indented_rows_that_select_the_group(doc, panel):
    doc.new_project("resnet_small")
    result = doc.inference
    inner = sum(len(b.children) for b in result.blocks)
    assert panel.table.rowCount() == len(result.blocks) + inner
    assert [cell(panel, r, "#") for r in range(2, 7)] == ["3", "3.1", "3.2", "3.3", "3.4"]
    assert cell(panel, 3, "Block").startswith("    conv1  ·  conv 8 @ 3x3")
    panel.table.selectRow(8)  # 4.1: the first block inside residual2
    assert doc.selected == 3
    doc.select(4)  # residual3 is the row after residual2's four inner rows
    assert panel.table.selectionModel().selectedRows()[0].row() == 12
