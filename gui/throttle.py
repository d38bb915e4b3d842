"""At most one call of a view's update an interval, however fast the data for it comes.

The curves' redraw and the train panel's progress are asked for at each send of batches; a burst
of sends must cost one repaint, and a send that comes after a quiet spell must show at once (in
the same repaint of the window as the others that follow that send).
"""
from __future__ import annotations

import math
import time

from PySide6.QtCore import QObject, QTimer


class Throttle:
    """Calls ``fn`` at once when ``interval_ms`` have passed since it last ran, else once when they
    have. ``fn`` tells it that it ran (``ran()``), so a direct call of ``fn`` (a run's end, a view
    shown) counts too; ``timer`` is armed only while a call waits."""

    def __init__(self, parent: QObject, interval_ms: int, fn) -> None:
        self.interval_ms = interval_ms
        self._fn = fn
        self._ran_at = -math.inf  # time.monotonic() of fn's last run
        self.timer = QTimer(parent)
        self.timer.setSingleShot(True)  # armed by a request: no wake-ups while nothing changes
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(fn)

    def ran(self) -> None:
        self._ran_at = time.monotonic()

    def request(self) -> None:
        """``fn`` now, or once ``interval_ms`` have passed since it last ran."""
        wait = self.interval_ms - 1000 * (time.monotonic() - self._ran_at)
        if wait <= 0:
            self.timer.stop()
            self._fn()
        elif not self.timer.isActive():
            self.timer.start(math.ceil(wait))

    def cancel(self) -> None:
        self.timer.stop()
