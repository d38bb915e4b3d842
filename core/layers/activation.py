"""Element-wise activations (and softmax over axis 1), for inputs of any rank."""
from __future__ import annotations

import math

import numpy as np

from netbuilder.core.blocks import ACTIVATIONS, LEAKY_RELU_SLOPE
from netbuilder.core.layers import parallel
from netbuilder.core.layers.base import Layer
from netbuilder.core.layers.workspace import work


def sigmoid(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """1 / (1 + exp(-x)) without overflow: exp is only taken of -|x|."""
    e = np.exp(-np.abs(x))
    r = 1 / (1 + e)
    if out is None:
        return np.where(x >= 0, r, e * r)
    np.copyto(out, np.where(x >= 0, r, e * r))
    return out


def softmax(x: np.ndarray, axis: int = 1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def blockwise(fn, *arrays: np.ndarray) -> None:
    """``fn(*blocks)`` on blocks of same-shaped arrays, cut along the first one's outermost memory
    axis and run in parallel; any memory layout works."""
    a = arrays[0]
    if a.ndim == 0:
        fn(*arrays)
        return
    axis = max(range(a.ndim), key=lambda k: abs(a.strides[k]))
    lead = (slice(None),) * axis

    def run(lo: int, hi: int) -> None:
        fn(*(arr[lead + (slice(lo, hi),)] for arr in arrays))

    parallel.split(run, a.shape[axis], a.size * len(arrays))


# Below this many elements the plain numpy expressions win over splitting and layout tricks.
SMALL = 1 << 15

_zero_buffers: dict[np.dtype, np.ndarray] = {}
_zero_views: dict[tuple, np.ndarray] = {}  # by (dtype, shape, strides): the fused layers ask per chunk
# A contiguous run longer than this is done piece by piece, so the zeros stay one small buffer.
ZERO_PIECE = 1 << 18


def contiguous_tail(a: np.ndarray) -> int:
    """The first axis of ``a``'s longest run of trailing axes laid out as one contiguous block."""
    k, expect = a.ndim, a.itemsize
    while k > 0 and (a.shape[k - 1] == 1 or a.strides[k - 1] == expect):
        expect *= a.shape[k - 1]
        k -= 1
    return k


def zeros_like_layout(a: np.ndarray) -> np.ndarray:
    """A read-only view of zeros with ``a``'s shape, laid out like ``a`` along its contiguous tail.

    np.maximum(x, 0) takes a slow scalar path; against an array laid out like x it runs at
    memory speed. The zeros come from one never-written buffer per dtype, as long as ``a``'s
    contiguous tail: the axes before it read that buffer again (stride 0), so a chunk of a big
    layer's output costs no more than its rows' length, and reading them almost no memory traffic.
    """
    key = (a.dtype, a.shape, a.strides)
    view = _zero_views.get(key)
    if view is not None:
        return view
    if any(s < 0 for s in a.strides):
        return np.zeros_like(a)
    k = contiguous_tail(a)
    span = math.prod(a.shape[k:])
    buf = _zero_buffers.get(a.dtype)
    if buf is None or buf.size < span:
        _zero_views.clear()  # views keep the old buffer alive: let it go with them
        buf = _zero_buffers[a.dtype] = np.zeros(max(span, 1 << 16), a.dtype)
    if len(_zero_views) >= 512:  # a view keeps its buffer: a bound on both
        _zero_views.clear()
    view = _zero_views[key] = np.lib.stride_tricks.as_strided(buf, a.shape, (0,) * k + a.strides[k:],
                                                              writeable=False)
    return view


def _relu(x, y):
    if x.size > ZERO_PIECE and x.flags.c_contiguous and y.flags.c_contiguous:
        xf, yf = x.reshape(-1), y.reshape(-1)
        zeros = zeros_like_layout(xf[:ZERO_PIECE])
        for lo in range(0, xf.size, ZERO_PIECE):
            hi = min(lo + ZERO_PIECE, xf.size)
            np.maximum(xf[lo:hi], zeros[:hi - lo], out=yf[lo:hi])
        return
    np.maximum(x, zeros_like_layout(x), out=y)


def _leaky(x, y):
    np.multiply(x, x.dtype.type(LEAKY_RELU_SLOPE), out=y)
    np.maximum(x, y, out=y)  # slope < 1


def _relu_grad(positive, g, dx):
    np.multiply(g, positive, out=dx)


def _leaky_grad(y, g, dx):
    # the factor where(y > 0, 1, slope) as fmax(sign(y), slope): the same values (NaN included, as
    # fmax skips it), several times faster than np.where; dx holds it until the multiply
    np.sign(y, out=dx)
    np.fmax(dx, y.dtype.type(LEAKY_RELU_SLOPE), out=dx)
    np.multiply(g, dx, out=dx)


def _sigmoid_grad(y, g, dx):
    np.multiply(g, y * (1 - y), out=dx)


def _tanh_grad(y, g, dx):
    np.multiply(g, 1 - y * y, out=dx)


# --- fused into the layer before ---------------------------------------------------------------
# A convolution or dense layer followed by relu or leaky relu applies it itself, on each chunk of
# its matmul's output while that is still in cache, keeping the sign mask (Z > 0) as a byte per
# value, and masks the error term with it in backward before its own matmuls: the same numbers
# as the separate layer, without a pass of its own over the output.
FUSABLE = ("relu", "leaky_relu")


def fused_forward(name: str, y: np.ndarray, positive: np.ndarray | None) -> None:
    """Apply activation ``name`` (one of ``FUSABLE``) to ``y`` in place; ``positive`` = Z > 0
    (None: inference, no mask wanted)."""
    if name == "relu":
        _relu(y, y)
    else:  # slope·y in this thread's work array (it runs per chunk), then the larger of the two
        slope = work(y.shape, y.dtype, "leaky slope")
        np.multiply(y, y.dtype.type(LEAKY_RELU_SLOPE), out=slope)
        np.maximum(y, slope, out=y)
    if positive is not None:
        np.greater(y, 0, out=positive)  # the activated value is > 0 exactly where Z is


def fused_backward(name: str, positive: np.ndarray, g: np.ndarray, out: np.ndarray) -> None:
    """``out`` = ∂L/∂Z from ``fused_forward``'s mask and ``g`` = ∂L/∂a (same shapes, ``out`` not ``g``).

    The mask is made a float (1 or 0) in ``out`` first: multiplying by a bool operand that is a
    strided chunk of a bigger array takes numpy's slow casting path."""
    np.copyto(out, positive)
    if name != "relu":  # where(Z > 0, 1, slope) as the larger of 1 or 0 and the slope
        np.fmax(out, out.dtype.type(LEAKY_RELU_SLOPE), out=out)
    np.multiply(g, out, out=out)


def fuse(layer: Layer, activation: Activation) -> None:
    """Let ``layer`` (a Conv2D or Dense whose output ``activation`` takes) apply the activation
    itself when it is one of ``FUSABLE``; ``activation`` then passes values and gradients through.
    Both stay in the network's layer list, so the block's layers, output and names are the same."""
    if activation.name in FUSABLE:
        layer.fused_activation = activation.name
        activation.applied_by = layer


_FORWARD = {"relu": _relu, "leaky_relu": _leaky, "sigmoid": lambda x, y: sigmoid(x, out=y),
            "tanh": lambda x, y: np.tanh(x, out=y)}
_BACKWARD = {"relu": _relu_grad, "leaky_relu": _leaky_grad, "sigmoid": _sigmoid_grad, "tanh": _tanh_grad}


class Activation(Layer):
    """relu, leaky_relu (slope ``LEAKY_RELU_SLOPE``), sigmoid, tanh, identity or softmax (axis 1).

    Outputs and input gradients keep the memory layout of the input (a convolution's
    batch-innermost view stays batch-innermost). Work on big arrays is split across threads.
    """

    def __init__(self, name: str):
        super().__init__()
        if name not in ACTIVATIONS:
            raise ValueError(f"unknown activation {name!r}; expected one of {', '.join(ACTIVATIONS)}")
        self.name = name
        # the layer before, when it applies this activation itself (``fuse``): values and
        # gradients then pass through unchanged
        self.applied_by: Layer | None = None
        self._y: np.ndarray | None = None  # output, or for relu the mask of positive inputs
        self._passed_shape: tuple | None = None  # the shape of what passes through (identity, or fused)
        self._dtype = np.dtype(np.float32)

    def __repr__(self) -> str:
        return f"Activation({self.name!r})"

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = np.asarray(x)
        if self.applied_by is not None or self.name == "identity":
            if training:  # backward only checks the shape: holding x would keep the layer's output alive
                self._passed_shape = x.shape
            return x
        if self.name == "softmax":
            if x.ndim < 2:
                raise ValueError(f"softmax works over axis 1 and needs at least 2 dimensions, got shape {x.shape}")
            y = softmax(x, axis=1)
        elif x.size < SMALL:
            y = np.maximum(x, 0) if self.name == "relu" else np.empty_like(x)
            if self.name != "relu":
                _FORWARD[self.name](x, y)
        else:
            y = np.empty_like(x)  # same layout as x
            blockwise(_FORWARD[self.name], x, y)
        self._dtype = y.dtype
        if training and self.name == "relu":
            # relu's derivative needs only the sign: a bool mask is a quarter of y's memory and
            # a separate bool multiply is faster than comparing inside backward
            if x.size < SMALL:
                self._y = x > 0
            else:
                self._y = np.empty_like(x, dtype=bool)
                blockwise(lambda xb, mb: np.greater(xb, 0, out=mb), x, self._y)
        elif training:
            self._y = y  # every other derivative here is a function of the output
        return y

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        if self.applied_by is not None or self.name == "identity":
            if self._passed_shape is None:
                raise RuntimeError("Activation.backward needs a forward with training=True first")
            if grad_out.shape != self._passed_shape:
                raise ValueError(f"Activation.backward expects a gradient of shape {self._passed_shape}, "
                                 f"got {grad_out.shape}")
            return grad_out
        y = self._y
        if y is None:
            raise RuntimeError("Activation.backward needs a forward with training=True first")
        if grad_out.shape != y.shape:
            raise ValueError(f"Activation.backward expects a gradient of shape {y.shape}, got {grad_out.shape}")
        g = grad_out.astype(self._dtype, copy=False)
        dx = np.empty_like(y, dtype=self._dtype)  # in the input's layout, which the layer before reads fastest
        if self.name == "softmax":  # J^T g = y * (g - <g, y>) along axis 1
            np.multiply(y, g - (g * y).sum(axis=1, keepdims=True), out=dx)
        elif y.size < SMALL:
            _BACKWARD[self.name](y, g, dx)
        else:
            blockwise(_BACKWARD[self.name], y, g, dx)
        return dx
