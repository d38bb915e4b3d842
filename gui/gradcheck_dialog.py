"""Train > Verify Gradients…: check the engine's backpropagation on the user's own network and data.

The check (``netbuilder.core.gradcheck``) runs as a background job: a progress bar while it runs,
then one row per block (the blocks inside groups indented under their group) with its largest
relative error and pass or fail (red), and a one-line verdict. It checks the document's current
project, at the trained weights when the window has some that fit it, else at fresh ones (it says which).
"""
from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QProgressBar,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from netbuilder.core import gradcheck
from netbuilder.gui.background import Jobs

FAIL_COLOR = QColor(200, 30, 30)
COLUMNS = ("Block", "Checked (parameters, input values)", "Largest relative error", "Result")


def gradcheck_work(project, state=None, base_dir=None, samples: int = gradcheck.DEFAULT_SAMPLES,
                   batch: int = gradcheck.DEFAULT_BATCH, cancelled=None):
    """The job: ``work(report)`` reporting ``(done, total)`` and returning the GradCheckReport."""
    def work(report):
        x, y, data, random_data = gradcheck.batch_from_project(project, batch, base_dir)
        note = None
        chosen = state
        if chosen is not None:
            from netbuilder.core.network import Network
            try:
                Network(project).load_state_dict(chosen)
            except ValueError:  # the network was edited since it was trained
                chosen, note = None, "the trained weights no longer fit the network (edited since): fresh weights"
        result = gradcheck.check_gradients(project, x, y, samples, 0, lambda d, t: report((d, t)), chosen, data,
                                           random_data, cancelled=cancelled)
        if note:
            result.notes.append(note)
        return result
    return work


class GradCheckDialog(QDialog):
    """Runs the check when shown (``start()``); ``report`` holds the result once ``finished_check``."""

    def __init__(self, project, state=None, base_dir: Path | None = None, parent: QWidget | None = None,
                 samples: int = gradcheck.DEFAULT_SAMPLES, batch: int = gradcheck.DEFAULT_BATCH):
        super().__init__(parent)
        self.setWindowTitle("Verify Gradients")
        self.resize(640, 480)
        self.project, self.state, self.base_dir = project, state, base_dir
        self.samples, self.batch = samples, batch
        self.report: gradcheck.GradCheckReport | None = None
        self.error: BaseException | None = None
        self._stop = threading.Event()

        layout = QVBoxLayout(self)
        weights = "the trained weights" if state is not None else "fresh weights (nothing trained yet)"
        self.intro = QLabel(
            f"Backpropagation against float64 central differences of the loss, on {samples} parameters of "
            f"every block (a block without parameters, and a group, through its input), at {weights}, "
            f"on {batch} images of the project's data. A block passes when its "
            f"largest relative error is below {gradcheck.TOLERANCE:.0e}; parameters whose step would cross "
            "a kink (ReLU at 0, tied maxima) are differenced on the engine's side of it, or skipped.")
        self.intro.setWordWrap(True)
        layout.addWidget(self.intro)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)  # busy until the first report says how many
        layout.addWidget(self.progress)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        layout.addWidget(self.table, 1)
        self.verdict = QLabel("Checking…")
        self.verdict.setWordWrap(True)
        self.verdict.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.verdict)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.jobs = Jobs(self)

    def start(self) -> None:
        work = gradcheck_work(self.project, self.state, self.base_dir, self.samples, self.batch, self._stop.is_set)
        self.jobs.start(work, done=self._done, failed=self._failed, progress=self._progress, name="gradcheck")

    @property
    def running(self) -> bool:
        return self.jobs.busy

    def _progress(self, event) -> None:
        done, total = event
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done if total else 1)

    def _done(self, report: gradcheck.GradCheckReport) -> None:
        self.report = report
        self.progress.setValue(self.progress.maximum())
        self.table.setRowCount(len(report.blocks))
        for row, b in enumerate(report.blocks):
            counts = ([f"{b.checked}"] if b.parameters else []) + ([f"{b.inputs} input values"] if b.inputs else [])
            checked = ", ".join(counts) or "—"
            if b.skipped:
                checked += f" ({b.skipped} skipped at kinks)"
            error = "—" if b.max_error is None else f"{b.max_error:.1e}"
            result = ("no parameters" if not b.parameters else "nothing compared") if b.max_error is None else \
                ("pass" if b.passed else "FAIL")
            cells = ("    " * b.depth + b.path, checked, error, result)
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col == 0 and b.worst:
                    item.setToolTip(f"{b.kind} block; largest error at {b.worst}")
                if not b.passed:
                    item.setForeground(QBrush(FAIL_COLOR))
                self.table.setItem(row, col, item)
        self.table.resizeColumnsToContents()
        lines = [report.verdict()]
        lines.append(f"On {report.data}; {report.weights} weights.")
        lines += report.notes
        self.verdict.setText("\n".join(lines))
        if not report.passed:
            self.verdict.setStyleSheet(f"color: {FAIL_COLOR.name()};")

    def _failed(self, exc: BaseException) -> None:
        self.error = exc
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.verdict.setText(f"The gradient check could not run: {exc}")
        self.verdict.setStyleSheet(f"color: {FAIL_COLOR.name()};")

    def done(self, result: int) -> None:  # closing stops a check still running (after its current parameter)
        self._stop.set()
        super().done(result)


def verify_gradients(window) -> GradCheckDialog:
    """Train > Verify Gradients…: open the dialog on the window's project and start the check."""
    project = window.doc.project.copy()
    trained = window.controller.trained_network()
    state = None
    if trained is not None:
        state = trained.state_dict()
        theirs = trained.project.dataset
        if isinstance(project.dataset, dict) and "normalization" not in project.dataset \
                and isinstance(theirs, dict) and "normalization" in theirs:
            project.dataset["normalization"] = theirs["normalization"]
    path = window.doc.path
    dialog = GradCheckDialog(project, state, path.parent if path is not None else None, window)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    window.gradcheck_dialog = dialog
    dialog.show()
    dialog.start()
    return dialog
