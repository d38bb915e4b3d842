"""Typed training events for view tests that play the controller by hand (``core.run_events``),
with defaults for what a test does not care about."""
from __future__ import annotations

import numpy as np

from netbuilder.core.run_events import BatchesDone, DataReady, EpochsDone, RunBegan
from netbuilder.core.trainer import EpochEnd, RunStarted


def epochs_done(event: EpochEnd, **fields) -> EpochsDone:
    """The epochEnded event of the one epoch ``event`` (``epochs`` defaults to [event])."""
    fields.setdefault("epochs", [event])
    return EpochsDone(event, **fields)


def run_began(event: RunStarted | None = None, **fields) -> RunBegan:
    return RunBegan(event if event is not None else RunStarted(1, 1, 10, 2), **fields)


def batches_done(event, points) -> BatchesDone:
    return BatchesDone(event, list(points))


def data_ready(class_names=(), val_x=None, val_y=None, train_size=0, val_size=None, name="shapes",
               val_is_train=False, input_shape=(1, 28, 28)) -> DataReady:
    val_x = np.zeros((0, *input_shape), np.float32) if val_x is None else val_x
    val_y = np.zeros(len(val_x), np.int64) if val_y is None else val_y
    return DataReady(name, list(class_names), tuple(input_shape), train_size,
                     len(val_x) if val_size is None else val_size, val_x, val_y, val_is_train)
