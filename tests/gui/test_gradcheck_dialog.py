"""Train > Verify Gradients…: the dialog runs the check off the GUI thread and shows every block."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QSettings

from netbuilder.core.layers import Conv2D
from netbuilder.core.network import Network
from netbuilder.core.project import load_project
from netbuilder.core.resources import example_path
from netbuilder.gui.gradcheck_dialog import FAIL_COLOR, GradCheckDialog
from netbuilder.gui.main_window import MainWindow
from netbuilder.gui.project_files import DISCARD


@pytest.fixture
def window(doc, qtbot, tmp_path):
    w = MainWindow(doc, QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    w.files.ask_save_changes = lambda name: DISCARD
    return w


def run_dialog(qtbot, dialog: GradCheckDialog) -> GradCheckDialog:
    qtbot.addWidget(dialog)
    dialog.start()
    qtbot.waitUntil(lambda: dialog.report is not None or dialog.error is not None, timeout=60000)
    assert dialog.error is None
    return dialog


def rows(dialog: GradCheckDialog) -> list[list[str]]:
    t = dialog.table
    return [[t.item(r, c).text() for c in range(t.columnCount())] for r in range(t.rowCount())]


def test_the_menu_action_checks_the_documents_network_at_fresh_weights(window, doc, qtbot):
    action = window.verify_gradients_action
    assert action in window.train_menu.actions() and action.text() == "Verify Gradients…"
    action.trigger()
    dialog = window.gradcheck_dialog
    qtbot.waitUntil(lambda: dialog.report is not None, timeout=60000)
    assert dialog.progress.value() == dialog.progress.maximum() > 0
    names = [r[0].strip() for r in rows(dialog)]
    assert names == [s.path for s in Network(doc.project).walk_stages()]
    assert all(r[3] in ("pass", "no parameters") for r in rows(dialog))
    assert "fresh weights" in dialog.intro.text() and "gradients verified" in dialog.verdict.text()
    dialog.close()


def test_trained_weights_are_used_when_there_are_some(window, doc, qtbot, monkeypatch):
    trained = Network(doc.project.copy(), rng=np.random.default_rng(9))
    monkeypatch.setattr(window.controller, "trained_network", lambda: trained)
    window.verify_gradients_action.trigger()
    dialog = window.gradcheck_dialog
    qtbot.waitUntil(lambda: dialog.report is not None, timeout=60000)
    assert dialog.report.weights == "trained" and "trained weights" in dialog.intro.text()
    assert dialog.report.passed
    dialog.close()


def test_progress_reaches_the_end_and_the_groups_inner_blocks_are_listed(qtbot):
    project = load_project(example_path("resnet_small"))
    seen = []
    dialog = GradCheckDialog(project, samples=2, batch=2)
    dialog.progress.valueChanged.connect(seen.append)
    run_dialog(qtbot, dialog)
    assert seen and seen[-1] == dialog.progress.maximum() == sum(
        b.checked + b.inputs + b.skipped for b in dialog.report.blocks if b.depth == 0)
    assert [r[1] for r in rows(dialog) if r[0] == "residual1"] == ["8, 2 input values"]
    names = [r[0] for r in rows(dialog)]
    assert "residual1" in names and "    residual1.conv1" in names  # inner blocks indented under the group


def test_a_broken_backward_shows_fail_in_red(qtbot, monkeypatch):
    original = Conv2D.backward

    def broken(self, grad_out):
        dx = original(self, grad_out)
        self.grads["weight"] = self.grads["weight"] * 1.01
        return dx
    monkeypatch.setattr(Conv2D, "backward", broken)
    dialog = run_dialog(qtbot, GradCheckDialog(load_project(example_path("lenet5")), samples=4, batch=2))
    table = {r[0]: r for r in rows(dialog)}
    assert table["conv1"][3] == "FAIL" and table["dense1"][3] == "pass"
    row = [r[0] for r in rows(dialog)].index("conv1")
    assert dialog.table.item(row, 3).foreground().color() == FAIL_COLOR
    assert dialog.table.item(row + 2, 3).text() == "FAIL"  # conv2
    assert "WRONG" in dialog.verdict.text() and "conv1, conv2" in dialog.verdict.text()


def test_an_invalid_network_says_why_instead_of_a_table(qtbot):
    project = load_project(example_path("lenet5"))
    project.blocks[0].update(kernel_size=99, padding="valid")  # bigger than the image
    dialog = GradCheckDialog(project, samples=2, batch=2)
    qtbot.addWidget(dialog)
    dialog.start()
    qtbot.waitUntil(lambda: dialog.error is not None, timeout=30000)
    assert dialog.report is None and dialog.table.rowCount() == 0
    assert dialog.verdict.text().startswith("The gradient check could not run:")
