"""The Training view's "Runs" tab: the runs recorded beside the saved project (``core.run_history``),
so that they are still there after a restart.

A table lists them, oldest first: the run's number (its id in the tooltip), a column for each
setting that differs between them, then best validation accuracy, epochs, status, start and time.
Ticking a run overlays its per-epoch curves on the curves view, faded, in a colour of its own;
**Restore settings** puts the selected run's network, data and training settings into the project
as one undo step; **Use weights** makes its weights (the best epoch's when they were kept, else the
final ones) the trained network of the Try view, the block preview and the exports. A run folder
that cannot be read is named in a note under the table, never in a dialog. The list is read again
when a project is opened or saved under a new name and when a run ends (the worker has written its
folder by then).
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from netbuilder.core.errors import ProjectError
from netbuilder.core.run_history import RecordedRun, duration_text, list_runs, runs_folder, setting_text, settings_diff
from netbuilder.gui import theme
from netbuilder.gui.background import Jobs

# Recorded runs' colours: apart from the live runs' (gui.curves.RUN_COLORS), which they sit among.
RECORDED_COLORS = ("#6a3d9a", "#b15928", "#1f78b4", "#33a02c", "#e31a1c", "#ff7f00", "#a6761d", "#666666")
# The run's number first, then what differs between the runs (what tells them apart), then how
# they went: the table is read left to right in a narrow tab.
FIRST, LAST = ("run",), ("best val acc", "epochs", "status", "when", "time")
RIGHT_ALIGNED = ("best val acc", "epochs", "time")


class RunsPanel(QWidget):
    """The recorded runs of ``doc``'s file; overlays go to ``curves`` (a ``CurvesView``), weights to ``controller``."""

    def __init__(self, doc, controller, curves, parent: QWidget | None = None):
        super().__init__(parent)
        self.doc, self.controller, self.curves = doc, controller, curves
        self.runs: list[RecordedRun] = []
        self.notes: list[str] = []
        self.overlaid: set[str] = set()  # ids of the runs whose curves are shown
        self._jobs = Jobs(self)
        self._loading = False  # a run's weights are being read

        self.header = QLabel()
        self.header.setWordWrap(True)
        self.header.setTextFormat(Qt.TextFormat.RichText)
        self.table = QTableWidget(0, len(FIRST) + len(LAST))
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setToolTip("Tick a run to overlay its curves; select one to restore its settings or use its weights")
        self.table.itemChanged.connect(self._ticked)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.restore_button = QPushButton("Restore settings")
        self.restore_button.setToolTip("Put the selected run's network, data and training settings into the project "
                                       "(one step: Ctrl+Z undoes it)")
        self.restore_button.clicked.connect(self.restore_settings)
        self.weights_button = QPushButton("Use weights")
        self.weights_button.setToolTip("Use the selected run's weights (its best epoch's when they were kept) in the "
                                       "Try view and for exports")
        self.weights_button.clicked.connect(self.use_weights)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setToolTip("Read the recorded runs again")
        self.refresh_button.clicked.connect(self.refresh)
        self.status = QLabel(" ")
        self.status.setWordWrap(True)
        self.note_label = QLabel()
        self.note_label.setWordWrap(True)
        theme.style(self.note_label, "color: {WARNING_TEXT};")
        buttons = QHBoxLayout()
        for button in (self.restore_button, self.weights_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.refresh_button)
        box = QVBoxLayout(self)
        box.setContentsMargins(6, 6, 6, 6)
        box.addWidget(self.header)
        box.addWidget(self.table, 1)
        box.addLayout(buttons)
        box.addWidget(self.status)
        box.addWidget(self.note_label)

        doc.pathChanged.connect(self.refresh)
        doc.projectReplaced.connect(self.refresh)
        doc.lockChanged.connect(self._update_buttons)
        controller.runEnded.connect(self.refresh)
        controller.stateChanged.connect(self._update_buttons)
        self.refresh()

    # --- the list -------------------------------------------------------------------------------
    def refresh(self, *_) -> None:
        """Read the project's recorded runs again; the overlays of runs still there stay."""
        path = self.doc.path
        self.runs, self.notes = list_runs(path) if path is not None else ([], [])
        ids = {run.id for run in self.runs}
        for gone in self.overlaid - ids:
            self.curves.show_recorded(gone)
        self.overlaid &= ids
        if path is None:
            theme.set_text(self.header, "<span style='color:{MUTED}'>Save the project (Ctrl+S) to keep a record of "
                                        "its runs: each run is then recorded beside the project file.</span>")
        elif not self.runs:
            theme.set_text(self.header, f"<span style='color:{{MUTED}}'>No run recorded yet: each run of this "
                                        f"project is recorded in <b>{runs_folder(path).name}</b> beside it.</span>")
        else:
            n = len(self.runs)
            theme.set_text(self.header, f"<b>{n} run{'s' if n != 1 else ''}</b> recorded in "
                                        f"{runs_folder(path).name}; tick one to overlay its curves.")
        self.note_label.setText("\n".join(self.notes))
        self.note_label.setVisible(bool(self.notes))
        self._fill()
        self._update_buttons()

    def _fill(self) -> None:
        diff = settings_diff(self.runs)
        headers = [*FIRST, *diff, *LAST]
        self.table.blockSignals(True)
        self.table.clearContents()
        self.table.setColumnCount(len(headers))
        for column, header in enumerate(headers):  # a setting's header without "training.", its path in the tooltip
            item = QTableWidgetItem(header.removeprefix("training."))
            item.setToolTip(header)
            self.table.setHorizontalHeaderItem(column, item)
        self.table.setRowCount(len(self.runs))
        for row, run in enumerate(self.runs):
            best = "—" if run.best_val_accuracy is None else f"{100 * run.best_val_accuracy:.1f}% ({run.best_epoch})"
            epochs = run.start_epoch + len(run.epochs)
            cells = [str(row + 1), *(setting_text(values[row]) for values in diff.values()),
                     best, str(epochs), run.status, run.when, duration_text(run.seconds)]
            tip = f"run {run.id}\n{run.summary}\n{run.message}\n{run.engine}"
            for column, (header, text) in enumerate(zip(headers, cells)):
                item = QTableWidgetItem(text)
                item.setToolTip(tip)
                if column >= len(FIRST) + len(diff) and header in RIGHT_ALIGNED:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, column, item)
            first = self.table.item(row, 0)
            first.setFlags(first.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            shown = run.id in self.overlaid
            first.setCheckState(Qt.CheckState.Checked if shown else Qt.CheckState.Unchecked)
            first.setIcon(_swatch(self.color(row)) if shown else QIcon())
        self.table.blockSignals(False)
        self.table.resizeColumnsToContents()

    def color(self, row: int) -> str:
        """Run ``row``'s colour (by its place in the list, which only grows at the end)."""
        return RECORDED_COLORS[row % len(RECORDED_COLORS)]

    def selected(self) -> RecordedRun | None:
        rows = {index.row() for index in self.table.selectionModel().selectedRows()}
        return self.runs[rows.pop()] if len(rows) == 1 and next(iter(rows)) < len(self.runs) else None

    def _ticked(self, item: QTableWidgetItem) -> None:
        if item.column() != 0 or not 0 <= item.row() < len(self.runs):
            return
        run = self.runs[item.row()]
        self.set_overlay(item.row(), item.checkState() == Qt.CheckState.Checked)
        self.table.blockSignals(True)
        item.setIcon(_swatch(self.color(item.row())) if run.id in self.overlaid else QIcon())
        self.table.blockSignals(False)
        self.table.resizeColumnToContents(0)  # the swatch takes room: the run's number stays whole

    def set_overlay(self, row: int, shown: bool) -> None:
        """Show or hide run ``row``'s curves on the curves view."""
        run = self.runs[row]
        if shown and run.epochs:
            self.curves.show_recorded(run.id, run.epochs, f"recorded {run.id}", self.color(row))
            self.overlaid.add(run.id)
        else:
            self.curves.show_recorded(run.id)
            self.overlaid.discard(run.id)
            if shown:
                self.status.setText(f"Run {run.id} completed no epoch: it has no curves to show.")

    def _update_buttons(self, *_) -> None:
        run = self.selected()
        idle = not self.controller.is_running
        self.restore_button.setEnabled(run is not None and idle and not self.doc.locked)
        self.weights_button.setEnabled(run is not None and idle and run.weights and not self._loading)

    # --- actions --------------------------------------------------------------------------------
    def restore_settings(self) -> bool:
        """The selected run's settings into the project, as one undo step."""
        run = self.selected()
        if run is None:
            return False
        try:
            project = run.settings()
        except ProjectError as exc:
            self.status.setText(f"The settings of run {run.id} cannot be restored: {' '.join(str(exc).split())}")
            return False
        if not self.doc.restore_settings(project, f"Restore the settings of run {run.id}"):
            self.status.setText(f"The project already has the settings of run {run.id}.")
            return False
        self.status.setText(f"The settings of run {run.id} are the project's now (Ctrl+Z undoes it).")
        return True

    def use_weights(self) -> bool:
        """Load the selected run's weights (off the GUI thread) as the window's trained network."""
        run = self.selected()
        if run is None or not run.weights:
            return False

        def load(_report):
            network, which = run.network()
            confusion = run.confusion() if run.confusion_file else None
            return network, which, confusion["class_names"] if confusion else None

        def failed(exc) -> None:
            self._loading = False
            self.status.setText(f"The weights of run {run.id} cannot be used: {exc}")
            self._update_buttons()

        self.status.setText(f"Reading the weights of run {run.id}…")
        self._loading = True
        self._jobs.start(load, done=lambda result: self._loaded(run, *result), failed=failed, name="run-weights")
        self._update_buttons()
        return True

    def _loaded(self, run: RecordedRun, network, which: str, class_names) -> None:
        self._loading = False
        self._update_buttons()
        if self.controller.is_running:
            self.status.setText(f"A run started meanwhile: the weights of run {run.id} were not taken.")
            return
        self.controller.use_network(network, class_names)
        self.status.setText(f"The Try view and the exports use run {run.id}'s weights now: {which}.")


def _swatch(color: str) -> QIcon:
    pixmap = QPixmap(12, 12)
    pixmap.fill(QColor(color))
    return QIcon(pixmap)
