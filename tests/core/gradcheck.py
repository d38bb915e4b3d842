"""Central-difference gradient checks for layers and losses (float64)."""
from __future__ import annotations

import numpy as np


def numeric_grad(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """d f / d x by central differences, perturbing ``x`` in place one entry at a time."""
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    assert np.shares_memory(flat, x), "x must be contiguous"
    for k in range(flat.size):
        old = flat[k]
        flat[k] = old + eps
        up = f()
        flat[k] = old - eps
        down = f()
        flat[k] = old
        gflat[k] = (up - down) / (2 * eps)
    return grad


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """||a - b|| / (||a|| + ||b||), 0 when both are 0."""
    denom = np.linalg.norm(a) + np.linalg.norm(b)
    return 0.0 if denom == 0 else float(np.linalg.norm(a - b) / denom)


def check_layer(layer, x: np.ndarray, rng: np.random.Generator, eps: float = 1e-6) -> dict[str, float]:
    """Relative errors of the input gradient and every parameter gradient of ``layer`` at ``x``.

    The scalar checked is sum(R * layer(x)) for a fixed random R.
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    out = layer.forward(x, training=True)
    weights = rng.standard_normal(out.shape)

    def f() -> float:
        return float(np.sum(layer.forward(x, training=True) * weights))

    layer.forward(x, training=True)
    dx = layer.backward(weights)
    grads = {k: np.array(v) for k, v in layer.grads.items()}
    errors = {"input": rel_error(dx, numeric_grad(f, x, eps))}
    for name, p in layer.params.items():
        errors[name] = rel_error(grads[name], numeric_grad(f, p, eps))
    return errors


def check_loss(loss, pred: np.ndarray, target: np.ndarray, eps: float = 1e-6) -> float:
    pred = np.ascontiguousarray(pred, dtype=np.float64)
    _, grad = loss.value_and_grad(pred, target)
    return rel_error(grad, numeric_grad(lambda: loss.value_and_grad(pred, target)[0], pred, eps))
