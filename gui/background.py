"""Work off the GUI thread, one way for the whole window: training runs, exports, data loading.

``Jobs.start(work, done=..., failed=..., progress=...)`` runs ``work(report)`` on a daemon thread
(one per job; the window never has more than a few). ``report(event)`` may be called any number
of times from that thread; ``progress(event)``, then ``done(result)`` or ``failed(exception)``,
are called on the GUI thread, in that order. The worker never touches a widget: what it reports
crosses threads through one queued signal. When the ``Jobs`` object is deleted (its owner went
away) whatever its threads still report is dropped, not delivered to a dead widget.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot


class _Relay(QObject):
    """Carries (callback, value) from worker threads to the GUI thread. It has no parent, so a
    worker that outlives the window still emits into a live object."""

    deliver = Signal(object, object)


class Jobs(QObject):
    """Starts background jobs and hands what they report to the GUI thread (see the module)."""

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._relay = _Relay()
        self._relay.deliver.connect(self._deliver)  # queued: the relay lives in this (GUI) thread
        self._threads: list[threading.Thread] = []
        self._count = 0

    def start(self, work: Callable[[Callable[[Any], None]], Any], *, done: Callable[[Any], None] | None = None,
              failed: Callable[[BaseException], None] | None = None,
              progress: Callable[[Any], None] | None = None, name: str = "work") -> int:
        """Run ``work(report)`` in the background; returns the job's number (1, 2, ...)."""
        self._count += 1
        relay = self._relay

        def report(event: Any) -> None:
            if progress is not None:
                relay.deliver.emit(progress, event)

        def run() -> None:
            try:
                result = work(report)
            except BaseException as exc:  # noqa: BLE001 - every failure goes to ``failed``
                if failed is not None:
                    relay.deliver.emit(failed, exc)
            else:
                if done is not None:
                    relay.deliver.emit(done, result)

        thread = threading.Thread(target=run, name=f"netbuilder-{name}-{self._count}", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()]
        self._threads.append(thread)
        thread.start()
        return self._count

    @property
    def busy(self) -> bool:
        """Whether a job's thread is still running."""
        return any(t.is_alive() for t in self._threads)

    def wait(self, timeout: float | None = None) -> None:
        """Join every job's thread (the window is closing); ``timeout`` for each."""
        for thread in list(self._threads):
            if thread is not threading.current_thread():
                thread.join(timeout)

    @Slot(object, object)
    def _deliver(self, callback: Callable[[Any], None], value: Any) -> None:
        callback(value)
