"""What a training run reports to whoever shows it (the window's views, a log): typed events.

The trainer's own events (``RunStarted``, ``BatchEnd``, ``EpochEnd``, ``RunEnded`` in
``core.trainer``) say where the run is. These wrap them with what the views draw besides: the
data, batches gathered since the last report, the per-epoch diagnostics, probes of one sample and
the first filters. All fields are plain Python and numpy copies, safe to hand to another thread.
A block inside a group is named by its path ("res1.conv1") everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from netbuilder.core.step_trace import StepTrace
from netbuilder.core.trainer import BatchEnd, EpochEnd, RunEnded, RunStarted

__all__ = ["DataReady", "RunBegan", "BatchesDone", "EpochsDone", "Probe", "Filters", "RunFailed", "RunEnded",
           "StepTraced"]


@dataclass(frozen=True)
class DataReady:
    """The run's data is loaded. ``val_x`` holds at most a few thousand (Nv, C, H, W) float32
    samples the views can show; ``val_is_train`` when the project keeps no validation split and
    training samples stand in for it."""

    name: str
    class_names: list[str]
    input_shape: tuple[int, ...]
    train_size: int
    val_size: int
    val_x: np.ndarray
    val_y: np.ndarray
    val_is_train: bool = False


@dataclass(frozen=True)
class RunBegan:
    """A run started. ``history`` and ``batch_losses`` are the epochs a checkpoint brought (empty
    otherwise); ``engine`` says what computes it ("numpy on the CPU", "torch on cuda:0 (...)");
    ``label``, ``run`` and ``continued`` are the window's numbering of its runs."""

    event: RunStarted
    mode: str = "new"
    engine: str = ""
    history: list[EpochEnd] = field(default_factory=list)
    batch_losses: list[list[float]] = field(default_factory=list)
    label: str = ""
    run: int = 0
    continued: bool = False


@dataclass(frozen=True)
class BatchesDone:
    """Every batch since the last report, as (x in epochs, loss, accuracy) points; ``event`` is the
    latest. An epoch's batches always come before its ``EpochsDone``."""

    event: BatchEnd
    points: list[tuple[float, float, float]]
    rates: list[float] = field(default_factory=list)  # each batch's learning rate, as the points


@dataclass(frozen=True)
class EpochsDone:
    """Every epoch ended since the last report (tiny datasets end many a second); ``event`` is the
    latest, and the diagnostics are of it: ``confusion`` (K, K) int64 of the validation split (rows
    true, columns predicted; None without one), ``grad_norms`` {parameter: L2 norm averaged over the
    epoch's batches}, ``dead_relu`` {block: share of ReLU units silent for every sample of a
    validation batch}, ``layer_order`` the blocks first to last (a group's inner ones, then it)."""

    event: EpochEnd
    epochs: list[EpochEnd]
    confusion: np.ndarray | None = None
    grad_norms: dict[str, float] = field(default_factory=dict)
    dead_relu: dict[str, float] = field(default_factory=dict)
    layer_order: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Probe:
    """One sample through the network: ``layers`` [(name, kind, array (C, H, W) or (F,)), ...] for
    every block (those inside groups just before their group), the class ``probabilities`` and the
    ``predicted`` class (-1 when the outputs are not finite); ``input`` is the raw image."""

    sample_index: int
    label: int
    input: np.ndarray
    layers: list[tuple[str, str, np.ndarray]]
    probabilities: np.ndarray
    predicted: int


@dataclass(frozen=True)
class Filters:
    """The first convolution's filters (F, C, kh, kw), by the block's name (its path in a group);
    ``weight`` None when the network has no convolution."""

    name: str
    weight: np.ndarray | None


@dataclass(frozen=True)
class RunFailed:
    """Why a run could not start or go on (bad data, divergence, a shape mismatch...), in a sentence;
    its ``RunEnded`` follows."""

    message: str


@dataclass(frozen=True)
class StepTraced:
    """A Step's batch, recorded block by block (``core.step_trace.StepTrace``: a^[l−1], Z, a, δ,
    ∂L/∂W and ΔW of every block, inner ones by path); the run is paused after it. ``trace.message``
    says why there are no blocks (the torch engine)."""

    trace: StepTrace
