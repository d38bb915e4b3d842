"""File > Export Model…: the trained network exported off the GUI thread, verified, figures shown.

A tiny run (LeNet-5 on 300 generated shapes) trains through the real controller; every wait
ends on a signal.
"""
from __future__ import annotations

import pytest

from netbuilder.gui.export_dialog import ExportDialog
from tests.gui.test_training import RUN, tiny, train


@pytest.fixture
def trained(window, doc, qtbot):  # noqa: F811
    window.reports = []
    window.exports.show_report = lambda title, text: window.reports.append((title, text))
    tiny(doc, epochs=1)
    assert not window.export_model_action.isEnabled()
    assert train(qtbot, window.controller).status == "finished"
    assert window.export_model_action.isEnabled()
    return window


def export(window, qtbot, fmt, path, check=None):  # noqa: F811 - a window, not the fixture
    """Start an export and wait for its end, either way; returns ("finished", report) or ("failed", text)."""
    outcome = []
    window.exports.runner.finished.connect(lambda report: outcome.append(("finished", report)))
    window.exports.runner.failed.connect(lambda text: outcome.append(("failed", text)))
    assert window.exports.export_model(fmt, str(path))
    if check:
        check()
    qtbot.waitUntil(lambda: bool(outcome), timeout=RUN)
    return outcome[0]


def test_onnx_export_runs_off_the_gui_thread_and_shows_the_figures(trained, qtbot, tmp_path):
    path = tmp_path / "m.onnx"
    def running():
        assert trained.exports.runner.is_running and not trained.export_model_action.isEnabled()
        assert "Exporting… verifying with onnxruntime" in trained.statusBar().currentMessage()

    end, report = export(trained, qtbot, "onnx", path, running)
    assert end == "finished" and report.passed and path.is_file()
    assert "validation samples" in str(report)  # the run's own images, not random inputs
    [(title, text)] = trained.reports
    assert "verified" in text and "verified" in title
    assert str(path) in trained.statusBar().currentMessage()
    assert not trained.exports.runner.is_running and trained.export_model_action.isEnabled()
    assert trained.errors == []


def test_numpy_export_writes_a_folder(trained, qtbot, tmp_path):
    folder = tmp_path / "numpy_model"
    end, report = export(trained, qtbot, "numpy", folder)
    assert end == "finished" and report.passed and folder.is_dir() and any(folder.iterdir())
    assert "verified" in trained.reports[0][1]


def test_a_failed_export_shows_the_error_and_the_app_keeps_working(trained, qtbot, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert export(trained, qtbot, "numpy", blocker / "sub")[0] == "failed"
    assert len(trained.errors) == 1 and "not exported" in trained.errors[0]
    assert trained.reports == [] and not trained.exports.runner.is_running
    assert trained.export_model_action.isEnabled()
    path = tmp_path / "again.onnx"  # the next export works
    assert export(trained, qtbot, "onnx", path)[0] == "finished" and path.is_file()


def test_the_dialog_chooses_format_and_destination(qtbot, tmp_path, monkeypatch):
    dialog = ExportDialog(None, tmp_path / "lenet5")
    qtbot.addWidget(dialog)
    assert dialog.choice() == ("onnx", str(tmp_path / "lenet5.onnx"))
    dialog.set_format("torch")
    assert dialog.choice() == ("torch", str(tmp_path / "lenet5_torch"))
    asked = []
    dialog.ask_destination = lambda fmt, start: asked.append(fmt) or str(tmp_path / "chosen")
    dialog.browse_button.click()
    assert asked == ["torch"] and dialog.choice() == ("torch", str(tmp_path / "chosen"))
    dialog.set_format("numpy")  # a chosen destination stays
    assert dialog.choice() == ("numpy", str(tmp_path / "chosen"))


def test_cancelling_the_dialog_exports_nothing(trained):
    trained.exports.ask_export = lambda fmt=None, path=None: None
    trained.export_model_action.trigger()
    assert not trained.exports.runner.is_running and trained.reports == [] and trained.errors == []
