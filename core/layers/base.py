"""The contract every layer keeps: NCHW float arrays in and out, backward beside forward."""
from __future__ import annotations

import numpy as np


class Layer:
    """A differentiable step of a network.

    ``forward(x, training)`` takes and returns arrays in NCHW (or (N, features)) layout of the
    layer's dtype. With ``training=True`` it keeps what ``backward`` needs; with
    ``training=False`` it keeps nothing, so inference (and probing from another thread under the
    trainer's lock) never disturbs training state. ``backward(grad_out)`` returns the gradient
    with respect to the input of the last training forward and fills ``self.grads`` with
    gradients of the same shapes and names as ``self.params`` (overwritten, not accumulated).

    ``buffers`` are named arrays that are saved and restored with the parameters but not trained
    (BatchNorm's running statistics): a training forward may update them in place.
    """

    params: dict[str, np.ndarray]
    grads: dict[str, np.ndarray]
    buffers: dict[str, np.ndarray]

    def __init__(self) -> None:
        self.params = {}
        self.grads = {}
        self.buffers = {}

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}={v.shape}" for k, v in self.params.items())
        return f"{type(self).__name__}({shapes})"
