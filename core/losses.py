"""Losses: value and gradient with respect to the network's output, averaged over the batch.

A loss with ``fused_activation`` set receives the logits before that activation (the network
skips its final Activation layer), which makes the gradient simple and the value stable.
"""
from __future__ import annotations

import numpy as np


def _check(pred: np.ndarray, target: np.ndarray) -> int:
    if pred.ndim != 2 or pred.shape != target.shape:
        raise ValueError(
            f"loss expects predictions and targets of the same (batch, outputs) shape, "
            f"got {pred.shape} and {np.shape(target)}")
    return pred.shape[0]


class Loss:
    """``value_and_grad(pred (N, K), target (N, K)) -> (loss, grad (N, K))``."""

    name = ""
    fused_activation: str | None = None

    def value_and_grad(self, pred: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class SquaredError(Loss):
    """sum(1/2 (a - y)^2) / N on the network's output ``a``."""

    name = "squared_error"
    fused_activation = None

    def value_and_grad(self, pred, target):
        n = _check(pred, target)
        diff = pred - target.astype(pred.dtype, copy=False)
        return float(np.vdot(diff, diff)) / (2 * n), diff * pred.dtype.type(1.0 / n)


class BinaryCrossEntropy(Loss):
    """Per-output binary cross-entropy of sigmoid(z) against y in [0, 1], summed, batch-averaged.

    Uses max(z, 0) - z*y + log(1 + exp(-|z|)), which never overflows.
    """

    name = "binary_cross_entropy"
    fused_activation = "sigmoid"

    def value_and_grad(self, pred, target):
        n = _check(pred, target)
        y = target.astype(pred.dtype, copy=False)
        e = np.exp(-np.abs(pred))
        loss = np.maximum(pred, 0) - pred * y + np.log1p(e)
        r = 1 / (1 + e)
        sig = np.where(pred >= 0, r, e * r)
        return float(loss.sum(dtype=np.float64)) / n, (sig - y) * pred.dtype.type(1.0 / n)


class SoftmaxCrossEntropy(Loss):
    """-sum(y * log_softmax(z)) / N over logits ``z``, through a shifted log-sum-exp."""

    name = "cross_entropy"
    fused_activation = "softmax"

    def value_and_grad(self, pred, target):
        n = _check(pred, target)
        y = target.astype(pred.dtype, copy=False)
        shifted = pred - pred.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        total = e.sum(axis=1, keepdims=True)
        log_softmax = shifted - np.log(total)
        loss = -float(np.vdot(y, log_softmax)) / n
        return loss, (e / total - y) * pred.dtype.type(1.0 / n)


LOSSES = {cls.name: cls for cls in (SquaredError, BinaryCrossEntropy, SoftmaxCrossEntropy)}


def make_loss(name: str) -> Loss:
    """The loss called ``name``: "squared_error", "binary_cross_entropy" or "cross_entropy"."""
    try:
        return LOSSES[name]()
    except (KeyError, TypeError):
        raise ValueError(f"unknown loss {name!r}; expected one of {', '.join(LOSSES)}") from None
