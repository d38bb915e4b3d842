"""Hold out a validation subset that keeps each class's share of the training data."""
from __future__ import annotations

import numbers

import numpy as np

from netbuilder.core.datasets.base import DatasetError


def train_val_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split of sample indices: (train_idx, val_idx), both int64, sorted ascending.

    Each class with n samples sends round(fraction * n) of them, chosen at random by ``seed``,
    to validation, but always keeps at least one in training. Indices come back sorted so a
    subset keeps the data's original order; shuffling per epoch is the trainer's job.
    Together the two arrays cover every index exactly once. ``fraction`` is in [0, 1).
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DatasetError(f"labels must be a 1-D integer array, got {labels.dtype} with shape {labels.shape}")
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0.0 <= fraction < 1.0:
        raise DatasetError(f"validation fraction must be a number in [0, 1), got {fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise DatasetError(f"split seed must be an integer >= 0, got {seed!r}")
    n = len(labels)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if labels.min() < 0:
        raise DatasetError(f"labels must be >= 0, got {int(labels.min())}")

    rng = np.random.default_rng(int(seed))
    # Shuffle, then stable-sort by class: each class's members end up contiguous, in random order.
    order = rng.permutation(n)
    order = order[np.argsort(labels[order], kind="stable")]
    sorted_labels = labels[order]
    counts = np.bincount(sorted_labels)
    starts = np.cumsum(counts) - counts
    rank = np.arange(n) - starts[sorted_labels]  # position of each sample within its class
    n_val = np.minimum(np.floor(counts * float(fraction) + 0.5).astype(np.int64), np.maximum(counts - 1, 0))
    is_val = rank < n_val[sorted_labels]
    return np.sort(order[~is_val]).astype(np.int64), np.sort(order[is_val]).astype(np.int64)
