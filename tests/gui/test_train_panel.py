"""The train panel: settings bound to the document, run buttons and shortcuts, progress and status."""
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from netbuilder.gui.train_panel import LearningRateBox, TrainPanel
from netbuilder.gui.training import TrainingController
from tests.gui.test_training import RUN, tiny


@pytest.fixture
def panel(doc, qtbot):
    controller = TrainingController(doc)
    p = TrainPanel(doc, controller)
    qtbot.addWidget(p)
    yield p
    controller.shutdown()


def test_editing_a_setting_is_one_undoable_document_change(panel, doc):
    panel.editors["batch_size"].setValue(32)
    assert doc.project.training.batch_size == 32
    panel.editors["learning_rate"].setValue(0.01)
    assert doc.project.training.learning_rate == 0.01
    optimizer = panel.editors["optimizer"]
    optimizer.activated.emit(optimizer.findData("sgd"))
    assert doc.project.training.optimizer == "sgd"

    doc.undo_stack.undo()
    doc.undo_stack.undo()
    assert doc.project.training.learning_rate == 0.001 and panel.editors["learning_rate"].value() == 0.001
    assert optimizer.currentData() == "adam"
    doc.undo_stack.undo()
    assert panel.editors["batch_size"].value() == 64


def test_the_panel_shows_a_new_project_settings(panel, doc):
    doc.new_project("xor")
    assert panel.editors["loss"].currentData() == "squared_error"
    assert panel.editors["epochs"].value() == doc.project.training.epochs
    assert panel.editors["validation_fraction"].value() == 0.0


def test_momentum_is_only_editable_for_the_optimisers_that_use_it(panel, doc):
    assert not panel.editors["momentum"].isEnabled()  # adam
    doc.set_value("training.optimizer", "nesterov")
    assert panel.editors["momentum"].isEnabled()


def test_learning_rate_box_steps_along_1_2_5(qtbot):
    box = LearningRateBox()
    qtbot.addWidget(box)
    box.setValue(0.001)
    seen = []
    for _ in range(4):
        box.stepBy(1)
        seen.append(round(box.value(), 10))
    assert seen == [0.002, 0.005, 0.01, 0.02]
    box.setValue(0.003)
    box.stepBy(-1)
    assert box.value() == pytest.approx(0.002)
    box.setValue(0.003)
    box.stepBy(1)
    assert box.value() == pytest.approx(0.005)
    assert box.textFromValue(0.0001) == "0.0001"


def test_while_training_only_the_learning_rate_is_editable(panel, doc, qtbot):
    tiny(doc, epochs=200, batch_size=16)
    controller = panel.controller
    assert panel.train_action.isEnabled() and not panel.stop_action.isEnabled()
    with qtbot.waitSignal(controller.batchEnded, timeout=RUN):
        panel.train_action.trigger()
    editable = {field for field, widget in panel.editors.items() if widget.isEnabled()}
    assert editable == {"learning_rate"} and panel.live_hint.isVisibleTo(panel)
    assert not panel.train_action.isEnabled() and panel.pause_action.isEnabled() and panel.stop_action.isEnabled()
    assert panel.status_label.text().startswith("Training")
    qtbot.waitUntil(lambda: "images/s" in panel.speed_label.text(), timeout=RUN)

    panel.pause_action.trigger()
    assert panel.resume_action.isEnabled() and not panel.pause_action.isEnabled()
    assert panel.buttons["resume"].isVisibleTo(panel) and not panel.buttons["pause"].isVisibleTo(panel)
    assert panel.status_label.text().startswith("Paused")
    with qtbot.waitSignal(controller.runEnded, timeout=RUN):
        panel.stop_action.trigger()
    assert all(w.isEnabled() for f, w in panel.editors.items() if f != "momentum")
    assert panel.status_label.text().startswith("Stopped after")
    assert panel.continue_action.isEnabled() and panel.train_action.isEnabled()


def test_progress_counts_batches_of_the_run(panel, doc, qtbot):
    tiny(doc, epochs=2)
    with qtbot.waitSignal(panel.controller.runEnded, timeout=RUN):
        panel.train_action.trigger()
    bar = panel.progress
    assert bar.maximum() == 10 and bar.value() == 10
    assert bar.format() == "epoch 2/2 · batch 5/5"
    assert "validation accuracy" in panel.metrics_label.text()
    assert panel.status_label.text().startswith("Finished 2 epochs · validation accuracy")


def test_an_error_is_shown_in_red_until_the_next_run(panel, doc, qtbot):
    doc.set_value("dataset", {"kind": "npz", "path": "/nonexistent/data.npz"})
    with qtbot.waitSignal(panel.controller.runEnded, timeout=RUN):
        panel.train_action.trigger()
    assert panel.status_label.text().startswith("The dataset cannot be used")
    assert "background" in panel.status_label.styleSheet()
    tiny(doc, epochs=1)
    with qtbot.waitSignal(panel.controller.runEnded, timeout=RUN):
        panel.train_action.trigger()
    assert panel.status_label.text().startswith("Finished") and panel.status_label.styleSheet() == ""


def test_shortcuts_train_pause_resume_and_stop(window, doc, qtbot):  # noqa: F811 - the fixture
    tiny(doc, epochs=200, batch_size=16)
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window)
    controller = window.controller
    with qtbot.waitSignal(controller.batchEnded, timeout=RUN):
        qtbot.keyClick(window, Qt.Key.Key_F5)
    assert window.mode == "train"
    qtbot.keyClick(window, Qt.Key.Key_F6)
    assert controller.state == "paused"
    qtbot.keyClick(window, Qt.Key.Key_F6)
    assert controller.state == "running"
    with qtbot.waitSignal(controller.runEnded, timeout=RUN) as ended:
        qtbot.keyClick(window, Qt.Key.Key_F5, Qt.KeyboardModifier.ShiftModifier)
    assert ended.args[0].status == "stopped"
    qtbot.keyClick(window, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)
    assert window.mode == "build" and window.palette_dock.isVisible()


def test_the_train_menu_holds_the_run_actions(window):  # noqa: F811 - the fixture
    menus = {a.text(): a.menu() for a in window.menuBar().actions()}
    texts = [a.text() for a in menus["&Train"].actions() if not a.isSeparator()]
    assert texts == ["Train", "Continue Training", "Pause", "Resume", "Step", "Stop", "Save Checkpoint…",
                     "Train from Checkpoint…", "Verify Gradients…"]
    assert window.export_action in menus["&File"].actions()
    assert not window.save_checkpoint_action.isEnabled() and window.resume_checkpoint_action.isEnabled()
