"""What ``netbuilder train`` writes while it runs: the progress bar, the epoch lines, the ``--metrics`` log."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TextIO


class MetricsLog:
    """``--metrics``: one JSON object per line, flushed as it is written so other tools can follow
    the run: ``{"event": "epoch", ...}`` after each epoch and ``{"event": "end", ...}`` at the end."""

    def __init__(self, path: Path):
        self.path = path
        self._file = open(path, "w", encoding="utf-8")  # noqa: SIM115 - kept open for the run

    def _write(self, record: dict) -> None:
        self._file.write(json.dumps(record, allow_nan=False) + "\n")
        self._file.flush()

    def epoch(self, e, total_epochs: int) -> None:
        self._write({"event": "epoch", "epoch": e.epoch, "epochs": total_epochs,
                     "loss": e.train_loss, "accuracy": e.train_accuracy,
                     "val_loss": e.val_loss, "val_accuracy": e.val_accuracy,
                     "seconds": e.seconds, "images_per_sec": e.images_per_sec})

    def end(self, status: str, message: str, **extra) -> None:
        self._write({"event": "end", "status": status, "message": message, **extra})

    def close(self) -> None:
        self._file.close()


def epoch_line(e, total: int) -> str:
    line = f"epoch {e.epoch}/{total}  loss {e.train_loss:.4f}  accuracy {100 * e.train_accuracy:.1f}%"
    if e.val_loss is not None:
        line += f"  val_loss {e.val_loss:.4f}  val_accuracy {100 * e.val_accuracy:.1f}%"
    return line + f"  {e.seconds:.1f}s  {e.images_per_sec:,.0f} images/s"


class Progress:
    """The per-epoch progress bar on stderr: one ``\\r``-rewritten line on a terminal; elsewhere a
    plain line every few seconds, so logs stay readable."""

    WIDTH = 24

    def __init__(self, stream: TextIO, enabled: bool = True, tty: bool | None = None,
                 interval: float | None = None):
        self.stream = stream
        self.enabled = enabled
        self.tty = stream.isatty() if tty is None else tty
        self.interval = interval if interval is not None else (0.1 if self.tty else 5.0)
        self._last = 0.0
        self._shown = False

    def batch(self, e, total_epochs: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        last_batch = e.batch == e.batches_per_epoch
        if now - self._last < self.interval and not (self.tty and last_batch):
            return
        self._last = now
        filled = self.WIDTH * e.batch // e.batches_per_epoch
        text = (f"epoch {e.epoch}/{total_epochs} [{'#' * filled}{'.' * (self.WIDTH - filled)}] "
                f"{e.batch}/{e.batches_per_epoch}  loss {e.loss:.4f}  {e.images_per_sec:,.0f} images/s")
        if self.tty:
            self.stream.write("\r" + text + "\x1b[K")
            self._shown = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        self.clear()
        self.stream.write(text + "\n")
        self.stream.flush()

    def clear(self) -> None:
        """Wipe the bar before other output (terminal only)."""
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False
