"""Losses: value and gradient with respect to the network's output, averaged over the batch.

A loss with ``fused_activation`` set receives the logits before that activation (the network
skips its final Activation layer), which makes the gradient simple and the value stable.

Class weights (``Loss.class_weights``, one positive number a class) weigh each image's loss by its
class's weight and average with those weights, as PyTorch's ``CrossEntropyLoss(weight=w)`` does:
``sum(w[y_i] * l_i) / sum(w[y_i])``; without them every weight is 1 and the mean is the plain one.
"""
from __future__ import annotations

import math

import numpy as np


def _check(pred: np.ndarray, target: np.ndarray) -> int:
    if pred.ndim != 2 or pred.shape != target.shape:
        raise ValueError(
            f"loss expects predictions and targets of the same (batch, outputs) shape, "
            f"got {pred.shape} and {np.shape(target)}")
    return pred.shape[0]


def checked_class_weights(weights) -> np.ndarray | None:
    """``weights`` as a float64 vector of positive finite numbers (None stays None); ValueError otherwise."""
    if weights is None:
        return None
    w = np.array(weights, dtype=np.float64).reshape(-1)
    if w.size == 0 or not np.all(np.isfinite(w)) or not np.all(w > 0):
        raise ValueError(f"class weights must be positive finite numbers, one a class, got {list(weights)!r}"[:200])
    return w


class Loss:
    """``value_and_grad(pred (N, K), target (N, K)) -> (loss, grad (N, K))``."""

    name = ""
    fused_activation: str | None = None

    def __init__(self, class_weights=None):
        self.class_weights = class_weights

    @property
    def class_weights(self) -> np.ndarray | None:
        """One weight a class (K of them, or 2 for one binary output), or None: every class 1."""
        return self._weights

    @class_weights.setter
    def class_weights(self, weights) -> None:
        self._weights = checked_class_weights(weights)

    def sample_weights(self, target: np.ndarray) -> np.ndarray:
        """Each row's class weight (float64): ``target @ w`` for one-hot rows, the weight of 0 or 1
        for one binary output (interpolated for a target between them)."""
        w, k = self._weights, target.shape[1]
        if len(w) != (2 if k == 1 else k):
            raise ValueError(f"{len(w)} class weights for {k} output{'s' if k != 1 else ''} "
                             f"({2 if k == 1 else k} classes)")
        t = np.asarray(target, dtype=np.float64)
        return w[0] + (w[1] - w[0]) * t[:, 0] if k == 1 else t @ w

    def weight_of(self, labels: np.ndarray) -> float:
        """The sum of the class weights of integer ``labels``: what a batch's mean loss is divided by
        (its size without class weights), so means of batches combine into the mean of them all."""
        if self._weights is None:
            return float(len(labels))
        return math.fsum(self._weights[np.asarray(labels, dtype=np.int64)].tolist())

    def value_and_grad(self, pred: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
        raise NotImplementedError

    def _weighted(self, per_sample: np.ndarray, target: np.ndarray, dtype) -> tuple[float, np.ndarray]:
        """(sum(w_i l_i) / sum(w_i), w_i / sum(w_i) as an (N, 1) column in ``dtype``): the weighted
        mean of the per-sample losses and what each row's gradient is scaled by."""
        sw = self.sample_weights(target)
        total = float(sw.sum())
        value = float(np.dot(per_sample.astype(np.float64, copy=False), sw)) / total
        return value, (sw / total).astype(dtype).reshape(-1, 1)

    def __repr__(self) -> str:
        weights = "" if self._weights is None else f"class_weights={self._weights.tolist()}"
        return f"{type(self).__name__}({weights})"


class SquaredError(Loss):
    """sum(1/2 (a - y)^2) / N on the network's output ``a``."""

    name = "squared_error"
    fused_activation = None

    def value_and_grad(self, pred, target):
        n = _check(pred, target)
        diff = pred - target.astype(pred.dtype, copy=False)
        if self._weights is None:
            return float(np.vdot(diff, diff)) / (2 * n), diff * pred.dtype.type(1.0 / n)
        value, scale = self._weighted(0.5 * np.einsum("ij,ij->i", diff, diff), target, pred.dtype)
        return value, diff * scale


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
        if self._weights is None:
            return float(loss.sum(dtype=np.float64)) / n, (sig - y) * pred.dtype.type(1.0 / n)
        value, scale = self._weighted(loss.sum(axis=1, dtype=np.float64), target, pred.dtype)
        return value, (sig - y) * scale


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
        if self._weights is None:
            loss = -float(np.vdot(y, log_softmax)) / n
            return loss, (e / total - y) * pred.dtype.type(1.0 / n)
        value, scale = self._weighted(-np.einsum("ij,ij->i", y, log_softmax), target, pred.dtype)
        return value, (e / total - y) * scale


LOSSES = {cls.name: cls for cls in (SquaredError, BinaryCrossEntropy, SoftmaxCrossEntropy)}


def make_loss(name: str, class_weights=None) -> Loss:
    """The loss called ``name``: "squared_error", "binary_cross_entropy" or "cross_entropy", with
    ``class_weights`` (a list of one positive number a class) when given."""
    try:
        cls = LOSSES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown loss {name!r}; expected one of {', '.join(LOSSES)}") from None
    return cls(class_weights)
