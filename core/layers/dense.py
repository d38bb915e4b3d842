"""Fully connected layer: y = x @ weight.T + bias."""
from __future__ import annotations

import numpy as np

from netbuilder.core.init import init_weight
from netbuilder.core.layers import parallel
from netbuilder.core.layers.activation import fused_backward, fused_forward
from netbuilder.core.layers.base import Layer

# Matmuls above this many multiply-adds are cut in two column blocks, one per thread. The cut
# depends on the shapes only, so the result does not depend on the thread count.
SPLIT_MACS = 1 << 24


def _halves(size: int, macs: int) -> list[int]:
    return [0, size // 2, size] if macs >= SPLIT_MACS and size >= 2 else [0, size]


def _blocked(fn, bounds: list[int]) -> None:
    """``fn(lo, hi)`` for each block of ``bounds``, on as many threads as there are blocks."""
    def run(first: int, last: int) -> None:
        for k in range(first, last):
            fn(bounds[k], bounds[k + 1])

    parallel.split(run, len(bounds) - 1, (len(bounds) - 1) * parallel.MIN_ELEMENTS)  # always shared


class Dense(Layer):
    """(N, in_features) -> (N, units); ``weight`` is (units, in_features) as in PyTorch, ``bias`` (units,).

    With ``needs_input_grad = False`` (a first layer) backward skips the input gradient and
    returns None. ``fused_activation`` and ``record`` as in ``Conv2D``: the bias and a fused relu or
    leaky relu are applied to each column block of the output right after its matmul, and
    backward masks the error term before its two matmuls.
    """

    def __init__(self, in_features: int, units: int, rng: np.random.Generator,
                 dtype=np.float32, init: str = "he"):
        super().__init__()
        for name, v in (("in_features", in_features), ("units", units)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"Dense {name} must be a positive integer, got {v!r}")
        self.in_features, self.units = int(in_features), int(units)
        self.dtype = np.dtype(dtype)
        self.needs_input_grad = True
        self.params = {
            "weight": init_weight((self.units, self.in_features), self.in_features, self.units,
                                  init, rng, self.dtype),
            "bias": np.zeros(self.units, self.dtype),
        }
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.fused_activation: str | None = None
        self.record: dict | None = None
        self._x: np.ndarray | None = None
        self._y: tuple | None = None  # the fused activation and its mask (Z > 0), from the training forward

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"Dense expects input of shape (batch, {self.in_features}), got {x.shape}")
        x = x.astype(self.dtype, copy=False)
        w, b = self.params["weight"], self.params["bias"]
        y = np.empty((x.shape[0], self.units), self.dtype)
        act = self.fused_activation
        z = np.empty_like(y) if training and act is not None and self.record is not None else None
        positive = np.empty(y.shape, bool) if training and act is not None else None

        def run(lo: int, hi: int) -> None:
            np.matmul(x, w[lo:hi].T, out=y[:, lo:hi])
            y[:, lo:hi] += b[lo:hi]
            if z is not None:
                z[:, lo:hi] = y[:, lo:hi]
            if act is not None:
                fused_forward(act, y[:, lo:hi], None if positive is None else positive[:, lo:hi])

        _blocked(run, _halves(self.units, y.size * self.in_features))
        if training:
            self._x, self._y = x, (act, positive)
            if z is not None:
                self.record["z"] = z
        return y

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        if self._x is None:
            raise RuntimeError("Dense.backward needs a forward with training=True first")
        if grad_out.shape != (self._x.shape[0], self.units):
            raise ValueError(f"Dense.backward expects a gradient of shape {(self._x.shape[0], self.units)}, "
                             f"got {grad_out.shape}")
        g = grad_out.astype(self.dtype, copy=False)
        act, positive = self._y
        if act is not None:  # δ = ∂L/∂Z, in an array of its own (grad_out may go to another path too)
            delta = np.empty(g.shape, self.dtype)
            fused_backward(act, positive, g, delta)
            g = delta
            if self.record is not None:
                self.record["delta"] = delta.copy()
        x, w = self._x, self.params["weight"]
        dw = np.empty_like(w)
        # dx comes back in x's memory layout: transposed when x is a transposed view (as Flatten
        # makes of a batch-innermost feature map), so Flatten can hand it back without a copy
        transposed = x.strides[0] < x.strides[1]
        dx_t = np.empty(x.shape[::-1], self.dtype) if transposed else None
        dx = dx_t.T if transposed else np.empty(x.shape, self.dtype)
        macs = g.size * self.in_features

        def grad_w(lo: int, hi: int) -> None:
            np.matmul(g[:, lo:hi].T, x, out=dw[lo:hi])

        def grad_x(lo: int, hi: int) -> None:
            if transposed:
                np.matmul(w[:, lo:hi].T, g.T, out=dx_t[lo:hi])
            else:
                np.matmul(g, w[:, lo:hi], out=dx[:, lo:hi])

        _blocked(grad_w, _halves(self.units, macs))
        self.grads = {"weight": dw, "bias": g.sum(axis=0)}
        if not self.needs_input_grad:
            return None
        _blocked(grad_x, _halves(self.in_features, macs))
        return dx
