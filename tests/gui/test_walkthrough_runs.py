"""Issue 15's walk-through, as a user does it: the small VGG trained in the window with augmentation,
a warm-up + cosine schedule and early stopping; the window closed and opened again on the file;
that run compared with an earlier one (recorded by ``netbuilder train``) in the Runs tab."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt

from netbuilder.core.cli import main as cli
from netbuilder.core.run_history import list_runs
from netbuilder.gui.document import ProjectDocument
from netbuilder.gui.main_window import MainWindow
from netbuilder.gui.project_files import DISCARD

RUN = 120_000  # ms: generous for a busy machine; the wait ends on the run's signal


def test_train_the_small_vgg_with_augmentation_warmup_cosine_and_early_stopping_then_compare_after_restart(
        window, doc, qtbot, tmp_path, capsys):
    path = tmp_path / "vgg.json"
    doc.new_project("small_vgg")
    doc.set_value("dataset", {"kind": "shapes", "train_size": 320, "test_size": 0})
    doc.set_value("training.epochs", 3)
    doc.save(path)
    # Yesterday's run: the plain settings, trained from the command line (recorded by default).
    assert cli(["train", str(path), "--quiet"]) == 0
    capsys.readouterr()

    # Today's, in the window: augmentation, warm-up + cosine and early stopping, each an undo step.
    doc.set_value("training.augmentation", {"shift": 2, "flip": 0.5})
    doc.set_value("training.schedule", {"kind": "cosine", "floor": 0.05, "warmup": 1})
    doc.set_value("training.early_stopping", {"monitor": "val_loss", "patience": 1, "restore_best": True})
    doc.save()
    with qtbot.waitSignal(window.controller.runEnded, timeout=RUN) as ended:
        assert window.start_training()
    assert ended.args[0].status == "finished"
    assert window.close()

    runs, notes = list_runs(path)
    assert notes == [] and [r.status for r in runs] == ["finished", "finished"]
    yesterday, today = runs
    assert today.project["training"]["schedule"]["kind"] == "cosine"
    # The warm-up then the cosine: the recorded per-batch rates rise, then fall to the floor's side.
    lrs = np.array([b[4] for b in today.batches()])
    top = int(np.argmax(lrs))
    assert 0 < top < len(lrs) - 1 and np.all(np.diff(lrs[:top + 1]) > 0) and np.all(np.diff(lrs[top:]) <= 0)

    # Reopened on the file: both runs listed, what differs between them in its own columns.
    reopened = ProjectDocument()
    reopened.open(path)
    second = MainWindow(reopened, window.settings)
    qtbot.addWidget(second)
    second.files.ask_save_changes = lambda name: DISCARD
    panel = second.runs_panel
    assert [r.id for r in panel.runs] == [yesterday.id, today.id]
    headers = [panel.table.horizontalHeaderItem(c).toolTip() for c in range(panel.table.columnCount())]
    for setting in ("training.augmentation", "training.schedule", "training.early_stopping"):
        assert any(h.startswith(setting) for h in headers), (setting, headers)
    for row in (0, 1):
        panel.table.item(row, 0).setCheckState(Qt.CheckState.Checked)
    overlays = [second.curves.recorded[r.id] for r in (yesterday, today)]
    for overlay, run in zip(overlays, (yesterday, today)):
        _, acc = overlay.val_acc.getData()
        assert np.allclose(acc, [100 * e.val_accuracy for e in run.epochs])
    assert overlays[0].color != overlays[1].color
