"""The inspector edits the model through the document, shows problems and formulas, and follows undo."""
from __future__ import annotations

import json

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QTextDocument
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QLabel, QLineEdit, QPushButton, QSpinBox

from netbuilder.gui.inspector import Inspector


@pytest.fixture
def inspector(qtbot, doc):
    w = Inspector(doc)
    qtbot.addWidget(w)
    w.resize(380, 700)
    w.show()
    qtbot.waitExposed(w)
    return w


def child(w, cls, name):
    found = w.findChild(cls, name)
    assert found is not None, f"no {cls.__name__} named {name!r}"
    return found


def text_of(w, name) -> str:
    """The plain text a visible label shows ("" when hidden)."""
    label = child(w, QLabel, name)
    if not label.isVisible():
        return ""
    page = QTextDocument()
    page.setHtml(label.text())
    return page.toPlainText()


def test_spin_box_edit_changes_the_block_and_reinfers(doc, inspector):
    doc.select(0)
    spin = child(inspector, QSpinBox, "filters")
    assert spin.value() == 6
    spin.setValue(8)
    assert doc.project.blocks[0]["filters"] == 8
    assert doc.inference.blocks[0].output_shape == (8, 28, 28)
    assert doc.inference.blocks[2].params == 16 * 8 * 5 * 5 + 16  # the next conv sees 8 channels
    assert "params = 8·1·5·5 + 8 = 208" in text_of(inspector, "formula")


def test_typing_commits_each_keystroke_as_one_undo_step(qtbot, doc, inspector):
    doc.select(5)  # dense 120
    spin = child(inspector, QSpinBox, "units")
    spin.setFocus()
    spin.lineEdit().selectAll()
    qtbot.keyClicks(spin.lineEdit(), "250")
    assert doc.project.blocks[5]["units"] == 250
    assert doc.inference.blocks[5].params == 400 * 250 + 250
    assert doc.undo_stack.count() == 1  # 2, 25, 250 merged
    doc.undo_stack.undo()
    assert doc.project.blocks[5]["units"] == 120
    assert spin.value() == 120
    doc.undo_stack.redo()
    assert spin.value() == 250


def test_kernel_larger_than_input_shows_the_error_and_fixing_it_clears_it(doc, inspector):
    doc.select(2)  # conv2 fed 6 x 14 x 14
    child(inspector, QSpinBox, "kernel_size.height").setValue(15)
    assert doc.project.blocks[2]["kernel_size"] == 15
    assert "kernel 15x15 is larger than its 14x14 input" in text_of(inspector, "kernel_size.problems")
    assert "out = floor((14 - 15) / 1) + 1 = 0" in text_of(inspector, "formula")
    assert "?" in text_of(inspector, "facts")
    assert doc.inference.blocks[3].output_shape is None  # downstream shapes unknown
    child(inspector, QSpinBox, "kernel_size.height").setValue(5)
    assert text_of(inspector, "kernel_size.problems") == ""
    assert doc.inference.ok
    assert "16 x 10 x 10" in text_of(inspector, "facts")


def test_undo_after_an_edit_restores_the_widget(doc, inspector):
    doc.select(0)
    combo = child(inspector, QComboBox, "activation")
    combo.activated.emit(combo.findText("tanh"))  # what a user's pick emits
    assert doc.project.blocks[0]["activation"] == "tanh"
    doc.undo_stack.undo()
    assert doc.project.blocks[0]["activation"] == "relu"
    assert combo.currentText() == "relu"


def test_square_link_writes_an_int_and_unlinking_a_pair(doc, inspector):
    doc.select(0)
    square = child(inspector, QCheckBox, "kernel_size.square")
    width = child(inspector, QSpinBox, "kernel_size.width")
    assert square.isChecked() and not width.isEnabled()
    square.click()
    assert doc.project.blocks[0]["kernel_size"] == [5, 5]
    assert width.isEnabled()
    width.setValue(3)
    assert doc.project.blocks[0]["kernel_size"] == [5, 3]
    assert doc.inference.blocks[0].params == 6 * 5 * 3 + 6
    child(inspector, QSpinBox, "kernel_size.height").setValue(7)
    assert doc.project.blocks[0]["kernel_size"] == [7, 3]
    square.click()
    assert doc.project.blocks[0]["kernel_size"] == 7
    assert width.value() == 7 and not width.isEnabled()
    # Edits of one field merge into one undo step; the refreshes pushed nothing of their own.
    assert doc.undo_stack.count() == 1
    doc.undo_stack.undo()
    assert doc.project.blocks[0]["kernel_size"] == 5 and width.value() == 5 and square.isChecked()


def test_padding_modes_and_custom_pixels(qtbot, doc, inspector):
    doc.select(0)  # conv 5x5, "same" on 28 x 28: 2 pixels each side
    assert "'same' padding adds 2 px on every side" in text_of(inspector, "formula")
    mode = child(inspector, QComboBox, "padding.mode")
    pixels = child(inspector, QSpinBox, "padding.height")
    assert not pixels.isVisible()
    mode.activated.emit(2)  # custom: starts from the pads "same" used
    assert doc.project.blocks[0]["padding"] == 2
    assert pixels.isVisible() and pixels.value() == 2
    assert doc.inference.blocks[0].output_shape == (6, 28, 28)
    pixels.setValue(1)
    assert doc.project.blocks[0]["padding"] == 1
    assert "out = floor((28 - 5 + 2·1) / 1) + 1 = 26" in text_of(inspector, "formula")
    mode.activated.emit(0)
    assert doc.project.blocks[0]["padding"] == "valid"
    assert not pixels.isVisible()
    assert doc.inference.blocks[0].output_shape == (6, 24, 24)


def test_pool_stride_same_as_size(doc, inspector):
    doc.select(1)
    same = child(inspector, QCheckBox, "stride.same")
    assert same.isChecked()
    same.click()
    assert doc.project.blocks[1]["stride"] == 2  # the stride in use: nothing changes shape yet
    child(inspector, QCheckBox, "stride.square").click()
    child(inspector, QSpinBox, "stride.width").setValue(1)
    assert doc.project.blocks[1]["stride"] == [2, 1]
    assert doc.inference.blocks[1].output_shape == (6, 14, 27)
    assert text_of(inspector, "formula").count("out = ") == 2  # height and width differ
    same.click()
    assert doc.project.blocks[1]["stride"] is None


def test_dropout_rate_and_name(qtbot, doc, inspector):
    i = doc.add_block("dropout", 6)
    assert doc.selected == i
    rate = child(inspector, QDoubleSpinBox, "rate")
    assert rate.maximum() == pytest.approx(0.95)
    rate.setValue(0.25)
    assert doc.project.blocks[i]["rate"] == pytest.approx(0.25)
    name = child(inspector, QLineEdit, "name")
    assert name.text() == "dropout1"  # named when it was added
    name.clear()
    qtbot.keyClicks(name, "drop")
    assert doc.project.blocks[i]["name"] == "drop"
    assert doc.inference.blocks[i].name == "drop"
    name.selectAll()
    qtbot.keyClick(name, Qt.Key_Backspace)
    assert doc.project.blocks[i].get("name") is None  # renaming stays possible, back to automatic too
    assert doc.inference.blocks[i].name == "dropout1"


def test_a_value_the_widgets_cannot_hold_is_shown_as_written(tmp_path, doc, inspector):
    data = json.loads(doc.project.to_json())
    data["blocks"][2]["kernel_size"] = "abc"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    doc.open(path)
    doc.select(2)
    raw = child(inspector, QLabel, "kernel_size.raw")
    assert raw.isVisible() and raw.text() == '"abc"'
    assert not child(inspector, QSpinBox, "kernel_size.height").isVisible()
    assert 'got "abc"' in text_of(inspector, "kernel_size.problems")
    assert doc.project.blocks[2]["kernel_size"] == "abc"  # shown, not replaced
    child(inspector, QPushButton, "kernel_size.reset").click()
    assert doc.project.blocks[2]["kernel_size"] == 3
    assert not raw.isVisible()
    assert child(inspector, QSpinBox, "kernel_size.height").value() == 3
    assert doc.inference.ok


def test_switching_selection_rebuilds_for_the_kind(doc, inspector):
    doc.select(1)
    assert inspector.findChild(QSpinBox, "filters") is None
    assert child(inspector, QComboBox, "mode").currentText() == "max"
    assert "Block 2 · pool1" in inspector.title.text()
    doc.select(4)  # flatten: only its name
    assert inspector.findChild(QComboBox, "mode") is None
    assert "out = 16·5·5 = 400" in text_of(inspector, "formula")


def test_project_settings_without_selection(doc, inspector):
    doc.select(-1)
    height = child(inspector, QSpinBox, "input_shape.height")
    assert height.value() == 28
    height.setValue(32)
    assert doc.project.input_shape == (1, 32, 28)
    assert doc.inference.blocks[0].output_shape == (6, 32, 28)
    doc.undo_stack.undo()
    assert doc.project.input_shape == (1, 28, 28) and height.value() == 28
    classes = child(inspector, QSpinBox, "num_classes")
    classes.setValue(0)
    assert doc.project.num_classes is None  # "from the dataset"
    assert classes.text() == "from the dataset"
    classes.setValue(4)
    assert doc.project.num_classes == 4
    assert any("set its units to 4" in p.message for p in doc.inference.problems_for(7))


def test_locked_document_disables_the_fields(doc, inspector):
    doc.select(0)
    doc.set_locked("training is running")
    assert "training is running" in child(inspector, QLabel, "lock").text()
    assert child(inspector, QLabel, "lock").isVisible()
    assert not child(inspector, QSpinBox, "filters").isEnabled()
    doc.set_locked("")
    assert not child(inspector, QLabel, "lock").isVisible()
    assert child(inspector, QSpinBox, "filters").isEnabled()


def test_an_impossible_input_shape_is_shown_as_written_with_a_reset(doc, inspector):
    doc.select(-1)
    doc.set_value("input_shape", (1, 0, 28))
    raw = child(inspector, QLabel, "input_shape.raw")
    assert raw.isVisible() and raw.text() == "[1, 0, 28]"
    assert "input_shape must be" in text_of(inspector, "input_shape.problems")
    child(inspector, QPushButton, "input_shape.reset").click()
    assert doc.project.input_shape == (1, 28, 28)
    assert child(inspector, QSpinBox, "input_shape.height").isVisible()


def test_widgets_carry_the_field_help_as_tooltip(doc, inspector):
    doc.select(0)
    assert child(inspector, QSpinBox, "filters").toolTip() == "number of kernels = depth of the output"
    assert child(inspector, QComboBox, "activation").toolTip() == "function applied to every output value"
    assert child(inspector, QSpinBox, "kernel_size.height").toolTip().startswith("height and width of each kernel")


def test_the_block_help_reads_with_its_values(doc, inspector):
    doc.select(0)
    assert inspector.subtitle.text() == "Convolution: slides 6 learned kernels over the image; each produces one " \
                                        "feature map"
    doc.select(len(doc.project.blocks) - 1)
    assert inspector.subtitle.text().startswith("Dense: connects every input value to each of 10 outputs")


def test_a_batchnorm_block_is_edited_with_its_own_fields(doc, inspector, qtbot):
    doc.add_block("batchnorm", 1)
    doc.select(1)
    eps = inspector.findChild(QLineEdit, "eps")
    assert eps is not None and eps.text() == "1e-05"  # typed, not a spin box rounding it to 0
    eps.setText("0.001")
    eps.editingFinished.emit()
    assert doc.project.blocks[1]["eps"] == 0.001
    eps.setText("zero")
    eps.editingFinished.emit()
    assert doc.project.blocks[1]["eps"] == 0.001  # refused at the field, the project unchanged
    doc.undo_stack.undo()
    assert doc.project.blocks[1]["eps"] == 1e-5
    doc.select(0)
    bias = inspector.findChild(QCheckBox, "bias")
    assert bias is not None and bias.isChecked()
    bias.setChecked(False)
    assert doc.project.blocks[0]["bias"] is False


def test_a_conv_bias_before_batchnorm_is_offered_off_in_one_click(doc, inspector, qtbot):
    doc.add_block("batchnorm", 1)  # lenet5's conv1 keeps its bias: redundant now
    doc.select(0)
    fix = inspector.findChild(QPushButton, "bias.fix")
    assert fix is not None and fix.isVisibleTo(inspector) and fix.text() == "Turn the bias off"
    assert "redundant before batchnorm" in inspector.findChild(QLabel, "bias.problems").text()
    fix.click()
    assert doc.project.blocks[0]["bias"] is False
    assert not fix.isVisibleTo(inspector)  # fixed: the warning and its button are gone
    doc.undo_stack.undo()
    assert doc.project.blocks[0].get("bias", True) is True
