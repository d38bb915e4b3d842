"""The Data tab's data-cache lines: how a set too large for memory will be read, a progress bar
while its uint8 cache is built (``core.datasets.cache``, usually by a run starting, on its own
thread), then where the cache is and how big. Sets that fit in memory show nothing."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QLabel, QProgressBar, QVBoxLayout, QWidget

from netbuilder.core.datasets import cache
from netbuilder.gui import theme

_KINDS = ("folder", "idx", "fashion-mnist", "mnist")  # the sources that can be memory-mapped


class _Relay(QObject):
    """Carries the cache's events from the loading thread to the box (a queued signal)."""

    event = Signal(object)


class CacheBox(QWidget):
    """A muted line and a progress bar, fed by ``cache.watch`` for as long as the box lives."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        theme.style(self.label, "color: {MUTED};")
        self.bar = QProgressBar()
        self.bar.setMaximumHeight(14)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.label)
        box.addWidget(self.bar)
        self.label.hide()
        self.bar.hide()
        self._relay = _Relay()
        self._relay.event.connect(self._event)
        unwatch = cache.watch(self._relay.event.emit)
        self.destroyed.connect(lambda *_: unwatch())

    def show_plan(self, spec: Mapping[str, Any], counts: Sequence[int], shape: Sequence[int],
                  input_shape: Sequence[int]) -> None:
        """Say how training will read the previewed set (``counts`` images of ``shape``) if it is
        too large for memory; an image folder is loaded at the network's ``input_shape`` unless
        its spec gives one."""
        kind = spec.get("kind")
        if kind not in _KINDS:
            return
        if kind == "folder":
            shape = spec.get("input_shape") or input_shape
        plan = cache.plan_note(sum(counts), shape)
        if plan:
            self.label.setText(plan)
            self.label.show()

    def clear(self) -> None:
        self.label.setText("")
        self.label.hide()

    @property
    def text(self) -> str:
        return self.label.text() if self.label.isVisibleTo(self) else ""

    def _event(self, event: cache.CacheEvent) -> None:
        if event.note is not None:
            self.bar.hide()
            self.label.setText(event.note)
            self.label.show()
            return
        self.bar.setRange(0, event.total)
        self.bar.setValue(event.done)
        self.bar.setFormat(f"{event.what}: %p%")
        self.bar.show()
