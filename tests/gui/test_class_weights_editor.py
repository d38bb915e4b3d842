"""The train panel's class weights rows edit the project's training.class_weights, one undo step each."""
from PySide6.QtWidgets import QComboBox, QLabel, QLineEdit

from netbuilder.gui.class_weights_editor import parse_weights
from netbuilder.gui.train_panel import TrainPanel
from netbuilder.gui.training import TrainingController


def _panel(qtbot, doc):
    controller = TrainingController(doc)
    panel = TrainPanel(doc, controller)
    qtbot.addWidget(panel)
    panel.show()
    return panel, controller


def _choose(combo: QComboBox, value) -> None:
    combo.setCurrentIndex(combo.findData(value))
    combo.activated.emit(combo.currentIndex())


def _type(edit: QLineEdit, text: str) -> None:
    edit.setText(text)
    edit.editingFinished.emit()


def test_none_balanced_and_custom_edit_the_project_and_undo(qtbot, doc):
    panel, controller = _panel(qtbot, doc)
    mode = panel.findChild(QComboBox, "class_weights.mode")
    custom = panel.findChild(QLineEdit, "class_weights.custom")
    error = panel.findChild(QLabel, "class_weights.error")
    assert mode.currentData() is None and doc.project.training.class_weights is None
    assert not custom.isVisible()

    _choose(mode, "balanced")
    assert doc.project.training.class_weights == "balanced" and not custom.isVisible()
    _choose(mode, "custom")  # LeNet-5 has 10 classes: every one 1 to begin with
    assert doc.project.training.class_weights == [1.0] * 10 and custom.isVisible()
    assert custom.text() == ", ".join(["1"] * 10)

    _type(custom, "1, 2, 3")  # not one a class: refused, said why, nothing changed
    assert doc.project.training.class_weights == [1.0] * 10
    assert error.isVisible() and "3 weights typed; the network has 10 classes" in error.text()
    _type(custom, "1, 2, 1, 1, 1, 1, 1, 1, 1, -4")
    assert "weight 10 is -4" in error.text() and doc.project.training.class_weights == [1.0] * 10
    _type(custom, "1, 2, 1, 1, 1, 1, 1, 1, 1, 4")
    assert doc.project.training.class_weights == [1, 2, 1, 1, 1, 1, 1, 1, 1, 4] and not error.isVisible()
    _type(custom, "0.5 2 1 1 1 1 1 1 1 4")  # spaces separate as well as commas
    assert doc.project.training.class_weights[0] == 0.5
    assert doc.inference.ok

    stack = doc.undo_stack
    stack.undo()  # each typed list its own step, never merged into the one before
    assert doc.project.training.class_weights == [1, 2, 1, 1, 1, 1, 1, 1, 1, 4]
    assert custom.text() == "1, 2, 1, 1, 1, 1, 1, 1, 1, 4"
    stack.undo()
    assert doc.project.training.class_weights == [1.0] * 10
    stack.undo()
    assert doc.project.training.class_weights == "balanced" and mode.currentData() == "balanced"
    assert not custom.isVisible()
    stack.undo()
    assert doc.project.training.class_weights is None and mode.currentData() is None
    stack.redo()
    assert doc.project.training.class_weights == "balanced"
    _choose(mode, None)
    assert doc.project.training.class_weights is None
    controller.shutdown()


def test_the_rows_are_held_while_training_and_show_an_opened_projects_list(qtbot, doc):
    panel, controller = _panel(qtbot, doc)
    project = doc.project.copy()
    project.training.class_weights = [2.0] + [1.0] * 9
    doc._replace(project, None)
    assert panel.findChild(QComboBox, "class_weights.mode").currentData() == "custom"
    assert panel.findChild(QLineEdit, "class_weights.custom").text() == "2, " + ", ".join(["1"] * 9)
    panel.class_weights.set_enabled(False)
    assert not panel.findChild(QComboBox, "class_weights.mode").isEnabled()
    controller.shutdown()


def test_parse_weights():
    assert parse_weights("1, 2.5,3", 3) == ([1.0, 2.5, 3.0], "")
    assert parse_weights("1, x", None) == (None, "weight 2: 'x' is not a number")
    assert parse_weights("1, inf", None)[1] == "weight 2 is inf: each must be a number greater than 0"
    assert parse_weights("  ", 3)[1] == "type one weight a class, separated by commas"
    assert parse_weights("1", 2)[1] == "1 weight typed; the network has 2 classes: one a class, in class order"
