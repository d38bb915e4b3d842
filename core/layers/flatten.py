"""(N, C, H, W) -> (N, C*H*W) in C order, as torch.flatten(x, 1)."""
from __future__ import annotations

import numpy as np

from netbuilder.core.layers.base import Layer


class Flatten(Layer):
    """Lays each sample out as one vector; any input rank >= 2."""

    def __init__(self) -> None:
        super().__init__()
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim < 2:
            raise ValueError(f"Flatten expects a batch of arrays (at least 2 dimensions), got shape {x.shape}")
        if training:
            self._x = x
        return x.reshape(x.shape[0], -1)  # copies only when x is a non-contiguous view

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """The gradient in the memory layout of the input, which the layer before reads fastest."""
        if self._x is None:
            raise RuntimeError("Flatten.backward needs a forward with training=True first")
        g = grad_out.reshape(self._x.shape)
        if g.strides == self._x.strides:
            return g
        dx = np.empty_like(self._x, dtype=g.dtype)
        np.copyto(dx, g)
        return dx
