"""The Runs tab: the runs recorded beside a saved project, listed after a restart, overlaid on the
curves, their settings restored (one undo step) and their weights used for Try and the exports."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6.QtCore import Qt

from netbuilder.core.project import load_project
from netbuilder.core.run_history import RunRecorder, list_runs, runs_folder
from netbuilder.core.trainer import RunEnded
from netbuilder.core.training_run import TrainingRun
from netbuilder.gui.document import ProjectDocument
from netbuilder.gui.main_window import MainWindow
from netbuilder.gui.project_files import DISCARD

RUN = 30_000  # ms: generous, the machine may be busy; every wait ends on a signal long before


def tiny(doc: ProjectDocument, epochs: int = 2) -> ProjectDocument:
    """LeNet-5 on 300 generated shapes (270 to train, 30 to validate): 5 batches an epoch."""
    doc.set_value("dataset", {"kind": "shapes", "train_size": 300, "test_size": 0})
    doc.set_value("training.epochs", epochs)
    return doc


@pytest.fixture
def saved(doc, tmp_path):
    """``doc`` set to train briefly and saved as tmp_path/net.json."""
    tiny(doc)
    doc.save(tmp_path / "net.json")
    return tmp_path / "net.json"


def open_window(path, settings, qtbot) -> MainWindow:
    """A new window on the project file ``path``, as after a restart."""
    doc = ProjectDocument()
    doc.open(path)
    window = MainWindow(doc, settings)
    qtbot.addWidget(window)
    window.files.ask_save_changes = lambda name: DISCARD
    return window


def record_in_core(path, epochs=1):
    """A run of the project file ``path`` recorded by the core (as ``netbuilder train`` does)."""
    run = TrainingRun(load_project(path), path.parent, record_to=path)
    list(run.events(epochs))
    return run



def cell(panel, row: int, header: str) -> str:
    """The text of ``row``'s cell in the column named ``header``."""
    return panel.table.item(row, headers(panel).index(header)).text()


def headers(panel) -> list[str]:
    """The columns' full names (a setting's path is its header's tooltip; its text drops "training.")."""
    return [panel.table.horizontalHeaderItem(c).toolTip() for c in range(panel.table.columnCount())]

def test_a_recorded_run_is_listed_after_a_restart_and_ticking_it_overlays_its_curves(window, saved, qtbot):
    with qtbot.waitSignal(window.controller.runEnded, timeout=RUN) as ended:
        assert window.start_training()
    assert ended.args[0].status == "finished"
    assert [r.status for r in window.runs_panel.runs] == ["finished"]  # listed as soon as it ended
    assert window.close()

    second = open_window(saved, window.settings, qtbot)
    try:
        panel = second.runs_panel
        [run] = panel.runs
        assert panel.table.rowCount() == 1 and panel.table.item(0, 0).text() == "1"
        assert run.id in panel.table.item(0, 0).toolTip()
        assert cell(panel, 0, "status") == "finished" and cell(panel, 0, "epochs") == "2"
        assert cell(panel, 0, "best val acc") == f"{100 * run.best_val_accuracy:.1f}% ({run.best_epoch})"
        assert cell(panel, 0, "when") == run.when
        assert second.curves.runs == []  # nothing trained in this session

        panel.table.item(0, 0).setCheckState(Qt.CheckState.Checked)
        overlay = second.curves.recorded[run.id]
        x, y = overlay.val_acc.getData()
        assert list(x) == [1, 2] and np.allclose(y, [100 * e.val_accuracy for e in run.epochs])
        x, y = overlay.epoch_loss.getData()
        assert np.allclose(y, [e.train_loss for e in run.epochs])
        assert overlay.val_acc in second.curves.acc_plot.items and not overlay.current  # faded
        assert overlay.color == panel.color(0) and not panel.table.item(0, 0).icon().isNull()

        panel.table.item(0, 0).setCheckState(Qt.CheckState.Unchecked)
        assert run.id not in second.curves.recorded and overlay.val_acc not in second.curves.acc_plot.items
    finally:
        second.controller.shutdown()


def test_differing_settings_get_columns_and_restoring_them_is_one_undo_step(window, doc, saved):
    first = RunRecorder(saved, load_project(saved))
    first.event(RunEnded("stopped", "stopped after 0 complete epochs", 0))
    doc.set_value("training.learning_rate", 0.05)
    doc.remove_blocks([0])
    doc.save()
    RunRecorder(saved, load_project(saved)).event(RunEnded("stopped", "stopped after 0 complete epochs", 0))
    panel = window.runs_panel
    panel.refresh()
    names = headers(panel)
    # what tells the runs apart comes right after their numbers, before how they went
    assert names[0] == "run" and names[-5:] == ["best val acc", "epochs", "status", "when", "time"]
    assert {"training.learning_rate", "blocks[0].kind"} <= set(names[1:-5]), names
    shown = [panel.table.horizontalHeaderItem(c).text() for c in range(panel.table.columnCount())]
    assert "learning_rate" in shown and "blocks[0].kind" in shown
    assert [cell(panel, r, "training.learning_rate") for r in (0, 1)] == ["0.001", "0.05"]

    edited = doc.project.to_dict()
    steps = doc.undo_stack.count()
    panel.table.selectRow(0)
    assert panel.restore_button.isEnabled()
    panel.restore_button.click()
    recorded = json.loads((first.folder / "run.json").read_text())["project"]
    assert doc.project.to_dict() == recorded
    assert doc.undo_stack.count() == steps + 1 and "Restore the settings of run" in doc.undo_stack.undoText()
    doc.undo_stack.undo()
    assert doc.project.to_dict() == edited
    doc.undo_stack.redo()
    assert doc.project.to_dict() == recorded
    assert not panel.restore_settings()  # nothing left to restore
    assert "already has the settings" in panel.status.text()


def test_use_weights_makes_a_recorded_run_the_trained_network_of_try_and_export(window, saved, qtbot, tmp_path):
    core = record_in_core(saved)
    panel = window.runs_panel
    panel.refresh()
    assert not window.controller.has_trained and not window.export_action.isEnabled()
    panel.table.selectRow(0)
    with qtbot.waitSignal(window.controller.trainedChanged, timeout=RUN):
        assert panel.use_weights()
    network = window.controller.trained_network()
    for name, value in core.trainer().weights().items():
        assert np.array_equal(network.state_dict()[name], value)
    assert window.export_action.isEnabled() and window.try_view.network()[1]  # trained weights, in Try too
    assert "the final weights (epoch 1)" in panel.status.text()
    out = window.controller.export_weights(tmp_path / "exported.npz")
    from netbuilder.core.weights import load_weights
    assert np.array_equal(load_weights(out)[1]["conv1.weight"], network.state_dict()["conv1.weight"])


def test_a_corrupt_run_folder_is_a_note_in_the_panel_not_a_crash(window, saved):
    record_in_core(saved)
    bad = runs_folder(saved) / "20200101-000000-1"
    bad.mkdir()
    (bad / "run.json").write_text("{not json")
    panel = window.runs_panel
    panel.refresh()
    assert len(panel.runs) == 1 and len(list_runs(saved)[0]) == 1
    assert panel.note_label.isVisibleTo(panel)
    assert panel.note_label.text() == "net.runs/20200101-000000-1 skipped: run.json: not valid JSON (Expecting " \
                                      "property name enclosed in double quotes at line 1, column 2)"


def test_an_unsaved_project_says_how_to_keep_its_runs(window):
    panel = window.runs_panel
    assert window.doc.path is None and panel.runs == [] and panel.table.rowCount() == 0
    assert "Save the project" in panel.header.text()
    assert not panel.restore_button.isEnabled() and not panel.weights_button.isEnabled()
