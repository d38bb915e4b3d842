"""Global average / max pooling: each channel's whole image to one value, (N, C, H, W) -> (N, C, 1, 1).

As torch's AdaptiveAvgPool2d(1) / AdaptiveMaxPool2d(1) and ONNX GlobalAveragePool / GlobalMaxPool:
a classifier head that works for any image size, with no weights.
"""
from __future__ import annotations

import numpy as np

from netbuilder.core.layers.base import Layer
from netbuilder.core.layers.conv import check_input

GLOBAL_POOL_MODES = ("avg", "max")


class GlobalPool(Layer):
    """Mean ("avg") or maximum ("max") over H and W of every channel of every sample.

    Max sends each channel's gradient to the first largest value in row-major (h, w) order, as
    np.argmax and PyTorch do, so ties (e.g. a ReLU's zeros) get one consistent winner. A NaN counts
    as the largest value and the output is NaN, as in PyTorch (which, unlike us, routes the gradient
    to the last NaN rather than the first). Reads the batch-innermost (C, H, W, N) layout convolutions
    hand over without a copy; the output is then an NCHW view of a (C, N) array, and backward
    returns the input gradient in the input's memory layout.
    """

    def __init__(self, mode: str, dtype=np.float32):
        super().__init__()
        if mode not in GLOBAL_POOL_MODES:
            raise ValueError(f"unknown global pooling mode {mode!r}; expected 'avg' or 'max'")
        self.mode = mode
        self.dtype = np.dtype(dtype)
        self._saved: tuple | None = None

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = check_input("GlobalPool", x, None, self.dtype)
        n, c, h, w = x.shape
        if h * w == 0:
            raise ValueError(f"GlobalPool needs at least one value per channel, got input of shape {x.shape}")
        # (C, H*W, N) when batch-innermost, else (N, C, H*W): ``axis`` is the pooled one
        inner = x.transpose(1, 2, 3, 0).flags.c_contiguous
        x3 = x.transpose(1, 2, 3, 0).reshape(c, h * w, n) if inner else x.reshape(n, c, h * w)
        axis = 1 if inner else 2
        argmax = None
        if self.mode == "avg":
            out = x3.sum(axis=axis) / self.dtype.type(h * w)
        elif training:
            argmax = np.expand_dims(np.argmax(x3, axis=axis), axis)
            out = np.take_along_axis(x3, argmax, axis=axis).squeeze(axis)
        else:
            out = x3.max(axis=axis)
        if training:
            self._saved = (x.shape, inner, argmax)
        return (out.T if inner else out)[:, :, None, None]

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        # Z = mean(a) over the h*w values of a channel: ∂L/∂a = δ / (h*w) at every position.
        # Z = max(a): ∂L/∂a = δ at the (first) position of the maximum, 0 elsewhere.
        if self._saved is None:
            raise RuntimeError("GlobalPool.backward needs a forward with training=True first")
        (n, c, h, w), inner, argmax = self._saved
        if grad_out.shape != (n, c, 1, 1):
            raise ValueError(f"GlobalPool.backward expects a gradient of shape {(n, c, 1, 1)}, got {grad_out.shape}")
        g = grad_out.astype(self.dtype, copy=False).reshape(n, c)
        g = g.T if inner else g  # the pooled axis's neighbours, as in forward
        axis = 1 if inner else 2
        dx3 = np.empty((c, h * w, n) if inner else (n, c, h * w), self.dtype)
        if argmax is None:
            np.copyto(dx3, np.expand_dims(g / self.dtype.type(h * w), axis))
        else:
            dx3.fill(0)
            np.put_along_axis(dx3, argmax, np.expand_dims(g, axis), axis=axis)
        return dx3.reshape(c, h, w, n).transpose(3, 0, 1, 2) if inner else dx3.reshape(n, c, h, w)
