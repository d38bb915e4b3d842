"""What a training run tells whoever drives it: its events, in order, and the history they add up to.

``Trainer.run()`` yields ``RunStarted``, then ``BatchEnd`` after every step and ``EpochEnd`` after
every epoch, and always ends with ``RunEnded``; ``History`` keeps the epochs and batch losses.
Epochs and batches are numbered from 1, as the user sees them.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RunStarted:
    """``epochs`` to run now; ``start_epoch`` were done before (a resumed run numbers from start_epoch + 1)."""

    epochs: int
    batches_per_epoch: int
    train_size: int
    val_size: int
    start_epoch: int = 0


@dataclass(frozen=True)
class BatchEnd:
    """After each optimisation step. ``loss``/``accuracy`` are this batch's (dropout active);
    ``images_per_sec`` is the epoch's throughput so far; ``seen`` counts images since the run began."""

    epoch: int
    batch: int
    batches_per_epoch: int
    loss: float
    accuracy: float
    images_per_sec: float
    seen: int
    learning_rate: float | None = None  # the rate this batch trained with


@dataclass(frozen=True)
class EpochEnd:
    """After each full epoch. Train metrics are sample-weighted means of the epoch's batches;
    validation metrics (inference mode) are None when there is no validation split.
    ``seconds`` is the epoch's wall time (training and validation, pauses excluded)."""

    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    seconds: float
    images_per_sec: float


@dataclass(frozen=True)
class RunEnded:
    """Always the last event. ``status``: "finished" | "stopped" | "diverged" | "failed"."""

    status: str
    message: str
    epochs_done: int


Event = RunStarted | BatchEnd | EpochEnd | RunEnded


@dataclass
class History:
    """What a run produced: one ``EpochEnd`` per completed epoch, every batch loss, the outcome."""

    epochs: list[EpochEnd] = field(default_factory=list)
    batch_losses: list[list[float]] = field(default_factory=list)  # [epoch][batch], incl. a partial epoch
    status: str | None = None
    message: str = ""
    epochs_done: int = 0

    @property
    def train_loss(self) -> list[float]:
        return [e.train_loss for e in self.epochs]

    @property
    def train_accuracy(self) -> list[float]:
        return [e.train_accuracy for e in self.epochs]

    @property
    def val_loss(self) -> list[float | None]:
        return [e.val_loss for e in self.epochs]

    @property
    def val_accuracy(self) -> list[float | None]:
        return [e.val_accuracy for e in self.epochs]
