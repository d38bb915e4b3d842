"""How long training will take here: the multiply-adds of a network against a rate measured on this machine.

The rate comes from a short calibration (a few LeNet-5 training steps, tens of milliseconds, once per
process), so the estimate follows this machine's cores and BLAS. It is an estimate: nets whose
layers are much larger or much smaller than LeNet-5's run a few times faster or slower per
multiply-add, which is still enough to make a 1,000-block net no surprise.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

_CALIBRATION_BATCH = 32
_CALIBRATION_STEPS = 3


def _best_step_seconds(example: str, batch: int, steps: int) -> tuple[float, int]:
    """The fastest of ``steps`` training steps (after one warm-up) of a bundled example, and its MACs."""
    from netbuilder.core.inference import infer
    from netbuilder.core.network import Network
    from netbuilder.core.optimizers import make_optimizer
    from netbuilder.core.project import load_project
    from netbuilder.core.resources import example_path

    project = load_project(example_path(example))
    net = Network(project, np.random.default_rng(0))
    optimizer = make_optimizer(project.training)
    rng = np.random.default_rng(1)
    x = rng.random((batch, *project.input_shape), dtype=np.float32)
    y = rng.integers(0, max(project.num_classes, 2), batch)
    best = float("inf")
    for step in range(steps + 1):  # the first one warms caches and buffers up
        start = time.perf_counter()
        net.train_step(x, y)
        optimizer.step(net.parameters(), net.gradients())
        if step:
            best = min(best, time.perf_counter() - start)
    return max(best, 1e-9), infer(project).total_macs


@lru_cache(maxsize=1)
def training_rate() -> float:
    """Forward multiply-adds per second that a training step (forward, loss, backward) reaches here."""
    seconds, macs = _best_step_seconds("lenet5", _CALIBRATION_BATCH, _CALIBRATION_STEPS)
    return macs * _CALIBRATION_BATCH / seconds


@lru_cache(maxsize=1)
def step_overhead() -> float:
    """Seconds a training step costs beyond its arithmetic (Python, small copies): XOR's whole step."""
    return _best_step_seconds("xor", 4, 5)[0]


@dataclass(frozen=True)
class EpochEstimate:
    """Seconds per 1,000 samples, and per epoch when the number of training samples is known."""
    per_thousand: float
    samples: int | None
    epoch: float | None
    epochs: int | None = None  # the run's, for its total

    def text(self) -> str:
        """E.g. "one epoch of 54,000 samples: about 41 s on this machine (5 epochs: about 3 min)"."""
        if self.epoch is None or self.samples is None:
            return f"about {duration_text(self.per_thousand)} per 1,000 training samples on this machine"
        text = f"one epoch of {self.samples:,} samples: about {duration_text(self.epoch)} on this machine"
        if self.epochs is not None and self.epochs > 1:
            text += f" ({self.epochs:,} epochs: about {duration_text(self.epoch * self.epochs)})"
        return text


def estimate_epoch(macs_per_sample: int, samples: int | None = None, batch_size: int = 64,
                   rate: float | None = None, overhead: float | None = None) -> EpochEstimate:
    """The time of one training epoch of ``samples`` for a net of ``macs_per_sample`` (forward)
    multiply-adds, in batches of ``batch_size``: arithmetic at ``rate`` plus ``overhead`` per step."""
    rate = training_rate() if rate is None else rate
    overhead = step_overhead() if overhead is None else overhead
    batch_size = max(1, batch_size)

    def seconds(n: int) -> float:
        return n * macs_per_sample / rate + math.ceil(n / batch_size) * overhead

    return EpochEstimate(seconds(1000), samples, seconds(samples) if samples is not None else None)


def project_estimate(project, total_macs: int, train_samples: int | None = None) -> EpochEstimate:
    """``estimate_epoch`` for a project: the epoch is its training split (the data's size less the
    validation share), taken from ``train_samples`` or, for a built-in dataset, from its spec."""
    from netbuilder.core.datasets.registry import known_train_size

    if train_samples is None:
        size = known_train_size(project.dataset or {})
        if size is not None:
            fraction = getattr(project.training, "validation_fraction", 0.0) or 0.0
            train_samples = max(1, size - round(size * fraction))
    batch = getattr(project.training, "batch_size", None)
    batch = batch if isinstance(batch, int) and batch > 0 else 64
    if train_samples is not None:
        batch = min(batch, train_samples)
    estimate = estimate_epoch(total_macs, train_samples, batch)
    epochs = getattr(project.training, "epochs", None)
    return dataclasses.replace(estimate, epochs=epochs if isinstance(epochs, int) else None)


def duration_text(seconds: float) -> str:
    """0.004 -> "4 ms", 41.2 -> "41 s", 5400 -> "1.5 h", 3e6 -> "35 days"."""
    if seconds < 1:
        return f"{max(seconds * 1000, 1):.0f} ms"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:,.0f} days"
