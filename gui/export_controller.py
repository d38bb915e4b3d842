"""File > Export…: the trained weights, the verified model, checkpoints and the pipeline diagram.

The window's menus call these; the model export runs off the GUI thread (``ExportRunner``) and
its figures are shown when it ends. Every write goes through core's atomic writers, so a failed
export leaves the previous file as it was.
"""
from __future__ import annotations

import re
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from netbuilder.core.export.torch_train_export import absolute_data_paths
from netbuilder.core.run_events import DataReady
from netbuilder.gui.export_dialog import ExportDialog
from netbuilder.gui.export_runner import RUNTIMES, ExportRunner

TITLES = {"onnx": "ONNX", "torch": "PyTorch", "numpy": "numpy", "torch-train": "PyTorch training script"}


class ExportController(QObject):
    """Exports of the window's document and its last run, reported in the status bar and dialogs."""

    # An export started, finished or failed: the window re-enables its actions.
    busyChanged = Signal()

    def __init__(self, window: QWidget, doc, controller, files):
        super().__init__(window)
        self.window, self.doc, self.controller, self.files = window, doc, controller, files
        self.runner = ExportRunner(self)
        self._dataset_payload: DataReady | None = None  # the last run's data: its validation images verify exports
        self._title = ""
        controller.datasetReady.connect(self._remember_dataset)
        self.runner.finished.connect(self._finished)
        self.runner.failed.connect(self._failed)

    def _status(self, text: str, ms: int = 0) -> None:
        self.window.statusBar().showMessage(text, ms)

    # --- weights and checkpoints ---------------------------------------------------------------
    def export_weights(self, path: str | None = None) -> bool:
        """Write the trained weights (.npz, with the project inside); the status bar says where."""
        return self._write("Export Weights", "weights.npz", path, self.controller.export_weights,
                           "The weights were not exported", lambda written, _path: f"Weights saved to {written}")

    def save_checkpoint(self, path: str | None = None) -> bool:
        """Write the training state at the last completed epoch, to continue from later."""
        return self._write("Save Checkpoint", "checkpoint.npz", path, self.controller.save_checkpoint,
                           "The checkpoint was not saved",
                           lambda epoch, where: f"Checkpoint after epoch {epoch} saved to {where}")

    def _write(self, title: str, suffix: str, path: str | None, write, failed: str, done) -> bool:
        """Ask for ``path`` if not given, ``write(path)``, and say how it went: ``done(result, path)``
        in the status bar, or the error in a box."""
        path = path or self.ask_path(title, suffix, save=True)
        if not path:
            return False
        try:
            result = write(path)
        except (ValueError, RuntimeError, OSError) as exc:  # WeightsError, CheckpointError, TrainingError
            self.files.show_error(title, f"{failed}: {exc}")
            return False
        self._status(done(result, path), 10000)
        return True

    # --- the model ----------------------------------------------------------------------------
    def export_model(self, fmt: str | None = None, path: str | None = None) -> bool:
        """Export the trained network as ``fmt`` ("onnx", "torch", "numpy", "torch-train") to ``path``, off the
        GUI thread (the training script trains the project from its seed's initial weights).

        Without both, the Export dialog asks. The export is verified by its own runtime on the
        validation samples of the last run; the figures are shown when it ends. Returns whether
        an export started.
        """
        if self.runner.is_running:
            self._status("An export is already running", 5000)
            return False
        if fmt is None or path is None:
            choice = self.ask_export(fmt, path)
            if choice is None:
                return False
            fmt, path = choice
        network = self.controller.trained_network()
        if network is None:
            self.files.show_error("Export Model", "The model was not exported: there is no trained network "
                                  "yet: train it first")
            return False
        samples, source = self._export_samples(network)
        if fmt == "torch-train":  # the script's data is found from the project file's folder, not the export's
            absolute_data_paths(network.project, self.doc.path.parent if self.doc.path else None)
        self._title = TITLES.get(fmt, fmt)
        self.runner.start(network, str(path), fmt, samples, source)
        self.busyChanged.emit()
        self._status(f"Exporting… verifying with {RUNTIMES.get(fmt, 'PyTorch')}")
        return True

    def ask_export(self, fmt: str | None = None, path: str | None = None) -> tuple[str, str] | None:
        """(format, path) from the Export dialog, or None if cancelled. Tests replace it."""
        dialog = ExportDialog(self.window, self._default_stem(), fmt or "onnx")
        if path:
            dialog.path_edit.setText(str(path))
            dialog._edited = True
        if dialog.exec() != ExportDialog.DialogCode.Accepted:
            return None
        return dialog.choice()

    def _export_samples(self, network):
        """The last run's validation images to verify with, when they fit the network, else (None, None)."""
        data = self._dataset_payload
        if data is None:
            return None, None
        x = data.val_x
        want = tuple(int(v) for v in network.project.input_shape)
        if x is None or len(x) == 0 or tuple(x.shape[1:]) != want:
            return None, None
        kind = "training" if data.val_is_train else "validation"
        return x[:64], f"{kind} samples of {data.name}"

    def _remember_dataset(self, payload: dict) -> None:
        self._dataset_payload = payload

    def _finished(self, report) -> None:
        self.busyChanged.emit()
        where = ", ".join(report.paths) if getattr(report, "paths", None) else ""
        self._status(f"{self._title} model {report.status}" + (f", written to {where}" if where else ""), 15000)
        self.show_report(f"Export Model — {report.status}", str(report))

    def _failed(self, message: str) -> None:
        self.busyChanged.emit()
        self._status("Export failed", 10000)
        report = self.runner.error_report
        self.files.show_error("Export Model", f"The model was not exported: {message}",
                              str(report) if report is not None else "")

    def show_report(self, title: str, text: str) -> None:
        """Show an export's verification figures (tests replace it)."""
        box = QMessageBox(QMessageBox.Icon.Information, title, text, QMessageBox.StandardButton.Ok, self.window)
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        box.open()  # not exec(): the window goes on

    # --- the diagram --------------------------------------------------------------------------
    def export_diagram(self, path: str | None = None) -> bool:
        """Write the pipeline as the canvas draws it to an SVG or PNG file (the suffix decides)."""
        from netbuilder.gui.diagram import write_pipeline

        if not path:
            start = f"{self._default_stem()}.svg"
            path, _ = QFileDialog.getSaveFileName(self.window, "Export Diagram", start,
                                                  "SVG drawings (*.svg);;PNG images (*.png)")
            if not path:
                return False
        try:
            written = write_pipeline(self.doc.project, path)
        except (OSError, ValueError) as exc:
            self.files.show_error("Export Diagram", f"The diagram was not exported: {exc}")
            return False
        self._status(f"Diagram saved to {written}", 10000)
        return True

    # --- paths --------------------------------------------------------------------------------
    def _default_stem(self) -> Path:
        """Where a new export goes by default: beside the project file, named after it."""
        folder = self.doc.path.parent if self.doc.path else Path.home()
        stem = self.doc.path.stem if self.doc.path else re.sub(r"[^\w.-]+", "_", self.doc.project.name).strip("_")
        return folder / (stem or "network")

    def ask_path(self, title: str, suffix: str, save: bool) -> str | None:
        """A file chosen in a dialog (None if cancelled); the default name is the project's + ``suffix``."""
        default = self._default_stem()
        filters = "NumPy archives (*.npz);;All files (*)"
        if save:
            path, _ = QFileDialog.getSaveFileName(self.window, title, f"{default}.{suffix}", filters)
        else:
            path, _ = QFileDialog.getOpenFileName(self.window, title, str(default.parent), filters)
        return path or None
