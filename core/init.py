"""Initial weights: He (normal) for ReLU-family layers, Glorot (uniform) for the rest; biases start at 0."""
from __future__ import annotations

import math

import numpy as np

SCHEMES = ("he", "glorot")


def init_weight(shape: tuple[int, ...], fan_in: int, fan_out: int, scheme: str,
                rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
    """A weight array of ``shape`` drawn from ``rng``.

    He: normal(0, sqrt(2 / fan_in)); Glorot: uniform(+-sqrt(6 / (fan_in + fan_out))). Draws are
    made in float64 and rounded, so float32 and float64 networks from one seed hold the same weights.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown weight initialisation {scheme!r}; expected one of {', '.join(SCHEMES)}")
    if fan_in < 1 or fan_out < 1:
        raise ValueError(f"fan_in and fan_out must be positive, got fan_in={fan_in!r}, fan_out={fan_out!r}")
    if scheme == "he":
        w = rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)
    else:
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        w = rng.uniform(-limit, limit, shape)
    return w.astype(dtype)


def scheme_for(activation: str) -> str:
    """The initialisation suited to the activation that follows the layer."""
    return "he" if activation in ("relu", "leaky_relu") else "glorot"
