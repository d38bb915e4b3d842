"""Runs ``netbuilder.core.export.export`` off the GUI thread and reports back through queued signals.

An export writes the model and verifies it with the format's own runtime (onnxruntime, PyTorch,
numpy), which takes from a fraction of a second to a few seconds (the first PyTorch import): the
window must not freeze meanwhile. The worker thread only calls the core engine; it never touches
a widget. The runner lives in the GUI thread, so its signals, emitted from the worker, arrive
there queued.
"""
from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Signal

from netbuilder.core.export import export
from netbuilder.core.export.verify import ExportError

RUNTIMES = {"onnx": "onnxruntime", "torch": "PyTorch", "numpy": "numpy"}


class ExportRunner(QObject):
    """One export at a time, in a Python thread.

    Signals: ``finished(object)`` with the ``VerificationReport``; ``failed(str)`` with the reason.
    """

    finished = Signal(object)
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._thread: threading.Thread | None = None
        self._running = False
        self.error_report = None  # the failed VerificationReport of a mismatch, for details
        self.finished.connect(self._done)
        self.failed.connect(self._done)

    @property
    def is_running(self) -> bool:
        return self._running

    def start(self, network, path, fmt: str, samples=None, sample_source: str | None = None) -> bool:
        """Begin exporting ``network`` as ``fmt`` to ``path``; False if an export is already running."""
        if self._running:
            return False
        self._running = True
        self.error_report = None
        self._thread = threading.Thread(target=self._run, args=(network, path, fmt, samples, sample_source),
                                        name="netbuilder-export", daemon=True)
        self._thread.start()
        return True

    def wait(self, timeout: float | None = None) -> None:
        """Join the worker thread (the window is closing)."""
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self, network, path, fmt, samples, sample_source) -> None:  # worker thread
        try:
            report = export(network, path, fmt, samples=samples, sample_source=sample_source)
        except ExportError as exc:
            self.error_report = exc.report
            self.failed.emit(str(exc))
        except Exception as exc:  # noqa: BLE001 - any failure is reported, the app goes on
            self.failed.emit(f"{type(exc).__name__}: {exc}")
        else:
            self.finished.emit(report)

    def _done(self, *_) -> None:  # GUI thread; connected first, so listeners already see is_running False
        self._running = False
