"""Runs ``netbuilder.core.export.export`` off the GUI thread and reports back through queued signals.

An export writes the model and verifies it with the format's own runtime (onnxruntime, PyTorch,
numpy), which takes from a fraction of a second to a few seconds (the first PyTorch import): the
window must not freeze meanwhile. The export runs as a background job (``gui.background``, the
window's one way of working off the GUI thread); it only calls the core engine, never a widget,
and the runner's signals are emitted on the GUI thread.
"""
from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from netbuilder.core.export import export
from netbuilder.core.export.verify import ExportError
from netbuilder.gui.background import Jobs

RUNTIMES = {"onnx": "onnxruntime", "torch": "PyTorch", "numpy": "numpy"}


class ExportRunner(QObject):
    """One export at a time, as a background job (``gui.background.Jobs``).

    Signals: ``finished(object)`` with the ``VerificationReport``; ``failed(str)`` with the reason.
    """

    finished = Signal(object)
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._jobs = Jobs(self)
        self._running = False
        self.error_report = None  # the failed VerificationReport of a mismatch, for details

    @property
    def is_running(self) -> bool:
        return self._running

    def start(self, network, path, fmt: str, samples=None, sample_source: str | None = None) -> bool:
        """Begin exporting ``network`` as ``fmt`` to ``path``; False if an export is already running."""
        if self._running:
            return False
        self._running = True
        self.error_report = None
        self._jobs.start(lambda _report: export(network, path, fmt, samples=samples, sample_source=sample_source),
                         done=self._done, failed=self._failed, name="export")
        return True

    def wait(self, timeout: float | None = None) -> None:
        """Join the worker thread (the window is closing)."""
        self._jobs.wait(timeout)

    # GUI thread; is_running is False before listeners hear of the end
    def _done(self, report) -> None:
        self._running = False
        self.finished.emit(report)

    def _failed(self, exc: BaseException) -> None:
        self._running = False
        if isinstance(exc, ExportError):
            self.error_report = exc.report
            self.failed.emit(str(exc))
        else:  # any failure is reported, the app goes on
            self.failed.emit(f"{type(exc).__name__}: {exc}")
