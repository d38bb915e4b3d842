"""The train panel's schedule rows edit the project's training.schedule, one undo step each."""
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QSpinBox

from netbuilder.gui.train_panel import TrainPanel
from netbuilder.gui.training import TrainingController


def test_choosing_a_schedule_and_its_settings_edits_the_project(qtbot, doc):
    controller = TrainingController(doc)
    panel = TrainPanel(doc, controller)
    qtbot.addWidget(panel)
    panel.show()
    kind = panel.findChild(QComboBox, "schedule.kind")
    assert kind.currentData() == "constant" and doc.project.training.schedule is None
    assert not panel.findChild(QSpinBox, "schedule.every").isVisible()
    kind.setCurrentIndex(kind.findData("step"))
    kind.activated.emit(kind.currentIndex())
    assert doc.project.training.schedule == {"kind": "step", "every": 10, "gamma": 0.1}
    assert panel.findChild(QSpinBox, "schedule.every").isVisible()
    panel.findChild(QDoubleSpinBox, "schedule.gamma").setValue(0.5)
    panel.findChild(QSpinBox, "schedule.warmup").setValue(2)
    assert doc.project.training.schedule == {"kind": "step", "every": 10, "gamma": 0.5, "warmup": 2}
    doc.undo_stack.undo()
    assert doc.project.training.schedule == {"kind": "step", "every": 10, "gamma": 0.5}
    assert panel.findChild(QSpinBox, "schedule.warmup").value() == 0
    kind.setCurrentIndex(kind.findData("constant"))
    kind.activated.emit(kind.currentIndex())
    assert doc.project.training.schedule is None
    controller.shutdown()


def test_early_stopping_rows_edit_the_project(qtbot, doc):
    controller = TrainingController(doc)
    panel = TrainPanel(doc, controller)
    qtbot.addWidget(panel)
    panel.show()
    monitor = panel.findChild(QComboBox, "early_stopping.monitor")
    patience = panel.findChild(QSpinBox, "early_stopping.patience")
    assert monitor.currentData() is None and not patience.isVisible()
    monitor.setCurrentIndex(monitor.findData("val_loss"))
    monitor.activated.emit(monitor.currentIndex())
    assert doc.project.training.early_stopping == {"monitor": "val_loss", "patience": 3} and patience.isVisible()
    patience.setValue(5)
    assert doc.project.training.early_stopping == {"monitor": "val_loss", "patience": 5}
    doc.undo_stack.undo()
    assert patience.value() == 3
    monitor.setCurrentIndex(0)
    monitor.activated.emit(0)
    assert doc.project.training.early_stopping is None
    controller.shutdown()
