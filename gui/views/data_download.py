"""The Data tab's download box: fetch Fashion-MNIST or MNIST into the user's cache with progress
and a Cancel button, as a background job, then tell the panel (``finished``) to read it."""
from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from netbuilder.core.datasets import download
from netbuilder.core.datasets.base import DatasetError
from netbuilder.gui.background import Jobs

BUILTIN = ("fashion-mnist", "mnist")


class _Cancelled(Exception):
    """Raised from the download's progress callback to abandon it (the core removes the partial file)."""


class DownloadBox(QFrame):
    """Offers, runs and reports one download at a time; ``finished(ok)`` when it is over."""

    finished = Signal(bool)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.fetch_function: Callable[..., Path] = download.fetch  # tests point it at a local server
        self.kind = "mnist"
        self.downloading = False
        self._cancel = threading.Event()
        self._file_order: list[str] = []  # the download's files, to say "2 of 4"
        self._jobs = Jobs(self)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.button = QPushButton("Download")
        self.button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.bar = QProgressBar()
        self.bar.setTextVisible(True)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.label)
        row = QHBoxLayout()
        row.addWidget(self.bar, 1)
        row.addWidget(self.button)
        row.addWidget(self.cancel_button)
        box.addLayout(row)

    def offer(self, kind: str) -> None:
        """Say that ``kind`` is not here and offer to download it."""
        source = download.SOURCES[kind]
        self.kind = kind
        self.label.setText(f"{source.title} is not on this computer. Download it ({len(source.files)} files) into "
                           f"{download.user_cache_dir() / kind}?")
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.bar.setFormat("")
        self.button.setEnabled(True)
        self.button.show()
        self.cancel_button.hide()
        self.show()

    def start(self) -> None:
        """Fetch the offered dataset in the background, reporting progress."""
        kind = self.kind
        if kind not in BUILTIN or self.downloading:
            return
        self.downloading = True
        self._cancel.clear()
        self._file_order = list(download.SOURCES[kind].files)
        self.button.setEnabled(False)
        self.cancel_button.show()
        self.cancel_button.setEnabled(True)
        self.bar.setFormat("connecting…")
        cancel, fetch = self._cancel, self.fetch_function

        def work(report) -> Path:
            def progress(done: int, total: int | None, what: str) -> None:
                if cancel.is_set():
                    raise _Cancelled
                report((done, total, what))
            return fetch(kind, progress=progress)

        self._jobs.start(work, done=lambda folder: self._finished(f"Downloaded into {folder}.", ok=True),
                         failed=self._failed, progress=lambda event: self.show_progress(*event), name="download")

    def cancel(self) -> None:
        self._cancel.set()
        self.cancel_button.setEnabled(False)
        self.bar.setFormat("cancelling…")

    def show_progress(self, done: int, total, what: str) -> None:
        if not self.downloading:
            return
        order = self._file_order
        which = f" ({order.index(what) + 1} of {len(order)})" if what in order else ""
        if total:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(1000 * done / total))
            self.bar.setFormat(f"{what}{which}: {done / 1e6:.1f} of {total / 1e6:.1f} MB")
        else:
            self.bar.setRange(0, 0)
            self.bar.setFormat(f"{what}{which}: {done / 1e6:.1f} MB")

    def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, _Cancelled):
            message = "Download cancelled."
        elif isinstance(exc, DatasetError):  # DownloadError included: the message names the problem
            message = str(exc)
        else:
            message = f"{type(exc).__name__}: {exc}"
        self._finished(message, ok=False)

    def _finished(self, message: str, ok: bool) -> None:
        self.downloading = False
        self.cancel_button.hide()
        self.bar.setRange(0, 1)
        self.bar.setValue(1 if ok else 0)
        self.bar.setFormat(message)
        self.button.setEnabled(not ok)
        self.button.setText("Download" if ok else "Try again")
        if ok:
            self.hide()
        else:
            self.label.setText(message)
        self.finished.emit(ok)
