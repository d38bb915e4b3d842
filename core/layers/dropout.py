"""Inverted dropout: zero a random `rate` of the values while training and scale the rest up."""
from __future__ import annotations

import numpy as np

from netbuilder.core.layers.base import Layer


class Dropout(Layer):
    """Training: x * mask / (1 - rate), mask ~ Bernoulli(1 - rate) drawn from ``rng``. Otherwise identity."""

    def __init__(self, rate: float, rng: np.random.Generator):
        super().__init__()
        if isinstance(rate, bool) or not isinstance(rate, (int, float, np.floating)) or not 0 <= rate < 1:
            raise ValueError(f"Dropout rate must be a number in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.rng = rng
        self._mask: np.ndarray | None = None

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if not training:
            return x
        x = np.asarray(x)
        keep = self.rng.random(x.shape, dtype=np.float32) >= np.float32(self.rate)
        # the mask holds 0 or 1/(1 - rate) in x's dtype, so backward is one multiply
        self._mask = keep * x.dtype.type(1.0 / (1.0 - self.rate))
        return x * self._mask

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        if self._mask is None:
            raise RuntimeError("Dropout.backward needs a forward with training=True first")
        return grad_out * self._mask
