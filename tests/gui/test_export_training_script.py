"""File > Export Model… > PyTorch training script: the dialog offers it, and the window's export
writes train.py beside model.py, verified by one training step against the app."""
from __future__ import annotations

import pytest

from netbuilder.gui.export_dialog import ExportDialog
from tests.gui.test_export_model import export, trained  # noqa: F401 - the fixture


def test_the_dialog_offers_the_training_script(qtbot, tmp_path):
    dialog = ExportDialog(None, tmp_path / "lenet5")
    qtbot.addWidget(dialog)
    dialog.set_format("torch-train")
    assert dialog.choice() == ("torch-train", str(tmp_path / "lenet5_torch-train"))
    assert dialog.path_label.text() == "Folder:"


@pytest.mark.slow  # the first torch import in the process
def test_the_window_exports_a_training_script(trained, qtbot, tmp_path):  # noqa: F811
    folder = tmp_path / "script"
    end, report = export(trained, qtbot, "torch-train", folder)
    assert end == "finished" and report.passed, report
    assert {"train.py", "model.py", "weights.pt", "data.npz"} <= {p.name for p in folder.iterdir()}
    title, text = trained.reports[0]
    assert "PyTorch training script export verified" in text and "first training step" in text
    assert "PyTorch training script model verified" in trained.statusBar().currentMessage()
    assert trained.errors == []
