"""Early stopping: the project's ``training.early_stopping``, watched by the trainer after each epoch.

``{"monitor": "val_loss", "patience": 3, "min_delta": 0.0}`` ends the run once the validation loss
(or ``"val_accuracy"``) has not improved by more than ``min_delta`` for ``patience`` epochs, and the
weights of the best epoch are put back at the end (``"restore_best": false`` keeps the last ones).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MONITORS = ("val_loss", "val_accuracy")


def _show(value: Any) -> str:
    return repr(value) if not isinstance(value, str) else f'"{value}"'


@dataclass
class EarlyStopping:
    """The settings and what has been seen so far (kept in checkpoints)."""

    monitor: str = "val_loss"
    patience: int = 3
    min_delta: float = 0.0
    restore_best: bool = True
    best: float | None = None
    best_epoch: int = 0
    waited: int = 0
    best_weights: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def from_spec(cls, spec: dict | None) -> EarlyStopping | None:
        """From ``training.early_stopping`` (None: no early stopping); ValueError names the setting."""
        if spec is None:
            return None
        if not isinstance(spec, dict):
            raise ValueError(f'early_stopping must be an object like {{"patience": 3}} (or null), got {_show(spec)}')
        known = ("monitor", "patience", "min_delta", "restore_best")
        for key in spec:
            if key not in known:
                raise ValueError(f"early_stopping: unknown setting {_show(key)}; the settings are " + ", ".join(known))
        monitor = spec.get("monitor", "val_loss")
        if monitor not in MONITORS:
            raise ValueError(f"early_stopping.monitor must be one of {', '.join(MONITORS)}, got {_show(monitor)}")
        patience = spec.get("patience", 3)
        if type(patience) is not int or not 0 <= patience <= 10**6:
            raise ValueError(f"early_stopping.patience must be a whole number of epochs of at least 0, got "
                             f"{_show(patience)}")
        delta = spec.get("min_delta", 0.0)
        if type(delta) not in (int, float) or not math.isfinite(delta) or delta < 0:
            raise ValueError(f"early_stopping.min_delta must be a number of at least 0, got {_show(delta)}")
        restore = spec.get("restore_best", True)
        if type(restore) is not bool:
            raise ValueError(f"early_stopping.restore_best must be true or false, got {_show(restore)}")
        return cls(monitor, patience, float(delta), restore)

    def epoch_ended(self, epoch: int, val_loss: float | None, val_accuracy: float | None, weights) -> bool:
        """Record epoch ``epoch``'s figure (``weights()`` copies the network's, called only on an
        improvement); True when the run should stop now."""
        value = val_loss if self.monitor == "val_loss" else val_accuracy
        if value is None or not math.isfinite(value):
            return False
        better = self.best is None or (value < self.best - self.min_delta if self.monitor == "val_loss"
                                       else value > self.best + self.min_delta)
        if better:
            self.best, self.best_epoch, self.waited = float(value), epoch, 0
            if self.restore_best:
                self.best_weights = weights()
            return False
        self.waited += 1
        return self.waited > self.patience

    def message(self, epoch: int) -> str:
        what = "validation loss" if self.monitor == "val_loss" else "validation accuracy"
        kept = (f"; the weights of epoch {self.best_epoch}, the best, are restored" if self.restore_best
                and self.best_weights else "")
        return (f"stopped early after epoch {epoch}: no better {what} for {self.waited} epoch"
                f"{'s' if self.waited != 1 else ''} (best {self.best:.4g} at epoch {self.best_epoch}){kept}")

    def state(self) -> dict:
        """For a checkpoint's metadata (the best weights go beside it as arrays)."""
        return {"best": self.best, "best_epoch": self.best_epoch, "waited": self.waited}

    def restore(self, state: dict | None, best_weights: dict[str, np.ndarray]) -> None:
        if state:
            self.best, self.best_epoch, self.waited = state["best"], int(state["best_epoch"]), int(state["waited"])
            self.best_weights = {k: np.array(v) for k, v in best_weights.items()}
