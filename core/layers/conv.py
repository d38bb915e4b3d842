"""2-D convolution (cross-correlation, as PyTorch/ONNX) through im2col and one matmul."""
from __future__ import annotations

import numpy as np

from netbuilder.core.geometry import output_hw
from netbuilder.core.init import init_weight
from netbuilder.core.layers import parallel
from netbuilder.core.layers.base import Layer
from netbuilder.core.layers.im2col import col2im, scratch, window_view


def _positive_pair(name: str, value) -> tuple[int, int]:
    try:
        a, b = value
        if int(a) != a or int(b) != b or a < 1 or b < 1:
            raise ValueError
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair of positive integers, got {value!r}") from None
    return int(a), int(b)


def _pads(value) -> tuple[int, int, int, int]:
    try:
        pads = tuple(int(p) for p in value)
        if len(pads) != 4 or any(p < 0 or p != q for p, q in zip(pads, value)):
            raise ValueError
    except (TypeError, ValueError):
        raise ValueError(f"pads must be four integers >= 0 (top, bottom, left, right), got {value!r}") from None
    return pads  # type: ignore[return-value]


def check_input(layer: str, x: np.ndarray, channels: int | None, dtype) -> np.ndarray:
    """``x`` as an (N, C, H, W) array of ``dtype``, or a ValueError naming what is wrong."""
    x = np.asarray(x)
    if x.ndim != 4 or (channels is not None and x.shape[1] != channels):
        want = f"(batch, {channels}, height, width)" if channels is not None else "(batch, channels, height, width)"
        raise ValueError(f"{layer} expects input of shape {want}, got {x.shape}")
    return x.astype(dtype, copy=False)


# A layer's output rows are cut in chunks whose columns take about this many bytes (an even
# number of chunks, so two threads can share them).
CHUNK_BYTES = 8 << 20


def cuts(total: int, pieces: int) -> list[int]:
    """Boundaries of ``pieces`` near-equal consecutive ranges covering range(total)."""
    return [total * k // pieces for k in range(pieces + 1)]


def split_rows_or_channels(fn, c: int, h: int, elements: int) -> None:
    """``fn(channels, rows)`` over disjoint blocks of a (C, H, ...) array, in parallel."""
    if c > 1:
        parallel.split(lambda lo, hi: fn(slice(lo, hi), slice(None)), c, elements)
    else:
        parallel.split(lambda lo, hi: fn(slice(None), slice(lo, hi)), h, elements)


class _Plan:
    """Geometry and reusable buffers of a convolution for one input shape (N, H, W).

    Output rows are cut into a fixed number of chunks, each done by one thread (im2col and its
    slice of every matmul). The cut depends on the shapes only, never on the thread count, so
    results are bit-for-bit the same however many threads run. Training keeps all columns for
    the weight gradient; inference reuses one chunk-sized buffer per thread.
    """

    def __init__(self, conv: Conv2D, n: int, h: int, w: int):
        c, (kh, kw) = conv.in_channels, conv.kernel_size
        top, bottom, left, right = conv.pads
        self.hp, self.wp = h + top + bottom, w + left + right
        self.out_hw = ho, wo = output_hw((h, w), conv.kernel_size, conv.stride, conv.pads)
        if ho < 1 or wo < 1:
            raise ValueError(
                f"Conv2D kernel {conv.kernel_size} with pads {conv.pads} does not fit an input of "
                f"height x width {h} x {w}")
        self.ckk = c * kh * kw
        self.rows = self.ckk + conv.has_bias  # im2col rows, plus one of ones for the bias
        self.col_shape = (c, kh, kw, ho, wo, n)
        self.row = wo * n  # columns per output row
        self.m = ho * self.row
        nbytes = self.rows * self.m * conv.dtype.itemsize
        self.bounds = cuts(ho, min(ho, 2 * max(1, -(-nbytes // (2 * CHUNK_BYTES)))))
        self.cols: np.ndarray | None = None  # (C*kh*kw [+ 1], Ho*Wo*N), kept for backward
        self.xp: np.ndarray | None = None  # input staged batch-innermost, zero-padded
        self.g: np.ndarray | None = None  # output gradient staged batch-innermost

    def train_cols(self, dtype) -> np.ndarray:
        if self.cols is None:
            self.cols = np.empty((self.rows, self.m), dtype)
            if self.rows > self.ckk:
                # the last row of ones turns the bias into one more matmul column of the weights
                self.cols[self.ckk] = 1
        return self.cols

    def staged(self, xt: np.ndarray, pads) -> np.ndarray:
        """(C, Hp, Wp, N) zero-padded, batch-innermost input: ``xt`` itself when it already is."""
        if not any(pads) and xt.strides[3] == xt.itemsize:
            return xt
        if self.xp is None:
            self.xp = np.zeros((xt.shape[0], self.hp, self.wp, xt.shape[3]), xt.dtype)
        top, _, left, _ = pads
        inner = self.xp[:, top:top + xt.shape[1], left:left + xt.shape[2]]

        def copy(ch: slice, rows: slice) -> None:
            np.copyto(inner[ch, rows], xt[ch, rows])

        split_rows_or_channels(copy, xt.shape[0], xt.shape[1], 2 * xt.size)
        return self.xp


class Conv2D(Layer):
    """Zero-padded 2-D convolution: (N, C, H, W) -> (N, F, Ho, Wo), any stride, asymmetric pads.

    ``weight`` is (F, C, kh, kw) and ``bias`` (F,), as in PyTorch and ONNX; with ``bias=False``
    there is no bias at all (no params/grads entry), as torch's Conv2d(bias=False), e.g. before a
    BatchNorm, whose own shift makes a bias redundant. The output is an NCHW
    view of a batch-innermost (F, Ho, Wo, N) buffer, the layout the next layers read fastest.
    Set ``needs_input_grad = False`` on a first layer: backward then skips the input gradient
    (a third of the work) and returns None.
    """

    def __init__(self, in_channels: int, filters: int, kernel_size: tuple[int, int],
                 stride: tuple[int, int], pads: tuple[int, int, int, int],
                 rng: np.random.Generator, dtype=np.float32, init: str = "he", bias: bool = True):
        super().__init__()
        for name, v in (("in_channels", in_channels), ("filters", filters)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"Conv2D {name} must be a positive integer, got {v!r}")
        if not isinstance(bias, (bool, np.bool_)):
            raise ValueError(f"Conv2D bias must be True or False, got {bias!r}")
        self.has_bias = bool(bias)
        self.in_channels, self.filters = int(in_channels), int(filters)
        self.kernel_size = _positive_pair("Conv2D kernel_size", kernel_size)
        self.stride = _positive_pair("Conv2D stride", stride)
        self.pads = _pads(pads)
        self.dtype = np.dtype(dtype)
        self.needs_input_grad = True
        kh, kw = self.kernel_size
        ckk = self.in_channels * kh * kw
        self.params = {
            "weight": init_weight((self.filters, self.in_channels, kh, kw), ckk,
                                  self.filters * kh * kw, init, rng, self.dtype),
        }
        if self.has_bias:
            self.params["bias"] = np.zeros(self.filters, self.dtype)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._plans: dict[tuple[int, int, int], _Plan] = {}  # by input (N, H, W), reused
        self._saved: tuple | None = None  # what backward needs from the last training forward

    def _plan_for(self, n: int, h: int, w: int) -> _Plan:
        plan = self._plans.get((n, h, w))
        if plan is None:
            if len(self._plans) >= 4:  # e.g. training batches, evaluation batches, a last short batch
                self._plans.pop(next(iter(self._plans)))
            plan = self._plans[(n, h, w)] = _Plan(self, n, h, w)
        return plan

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = check_input("Conv2D", x, self.in_channels, self.dtype)
        n, c, h, w = x.shape
        plan = self._plan_for(n, h, w)
        f, ckk, rows = self.filters, plan.ckk, plan.rows
        w_aug = np.empty((f, rows), self.dtype)  # weights, then the bias (if any) as one more column
        w_aug[:, :ckk] = self.params["weight"].reshape(f, ckk)
        if self.has_bias:
            w_aug[:, ckk] = self.params["bias"]
        src = plan.staged(x.transpose(1, 2, 3, 0), self.pads)
        windows = window_view(src, self.kernel_size, self.stride, plan.out_hw)
        out = np.empty((f, plan.m), self.dtype)
        row, bounds = plan.row, plan.bounds
        cols = plan.train_cols(self.dtype) if training else None

        def run(lo: int, hi: int) -> None:
            for k in range(lo, hi):
                a, b = bounds[k], bounds[k + 1]
                if cols is not None:
                    part = cols[:, a * row:b * row]
                else:  # inference: a per-thread buffer for this chunk only
                    part = scratch.get((rows, (b - a) * row), self.dtype, "conv cols")
                    if self.has_bias:
                        part[ckk] = 1
                block = plan.col_shape[:3] + (b - a,) + plan.col_shape[4:]
                np.copyto(part[:ckk].reshape(block), windows[:, :, :, a:b])
                np.matmul(w_aug, part, out=out[:, a * row:b * row])

        parallel.split(run, len(bounds) - 1, rows * plan.m * (f + 1))
        if training:
            self._saved = (plan, x.shape, w_aug)
        ho, wo = plan.out_hw
        return out.reshape(f, ho, wo, n).transpose(3, 0, 1, 2)

    def backward(self, grad_out: np.ndarray) -> np.ndarray | None:
        if self._saved is None:
            raise RuntimeError("Conv2D.backward needs a forward with training=True first")
        plan, (n, c, h, w), w_aug = self._saved
        f, ckk = self.filters, plan.ckk
        ho, wo = plan.out_hw
        if grad_out.shape != (n, f, ho, wo):
            raise ValueError(f"Conv2D.backward expects a gradient of shape {(n, f, ho, wo)}, got {grad_out.shape}")
        gt = grad_out.astype(self.dtype, copy=False).transpose(1, 2, 3, 0)  # (F, Ho, Wo, N)
        copy_g = not gt.flags.c_contiguous
        if copy_g and plan.g is None:
            plan.g = np.empty((f, ho, wo, n), self.dtype)
        g2 = (plan.g if copy_g else gt).reshape(f, plan.m)

        row, bounds, cols = plan.row, plan.bounds, plan.cols
        w_t = w_aug[:, :ckk].T
        parts: list[np.ndarray | None] = [None] * (len(bounds) - 1)
        dcols = scratch.get((ckk, plan.m), self.dtype) if self.needs_input_grad else None

        def run(lo: int, hi: int) -> None:
            for k in range(lo, hi):
                a, b = bounds[k], bounds[k + 1]
                if copy_g:
                    np.copyto(plan.g[:, a:b], gt[:, a:b])
                gk = g2[:, a * row:b * row]
                parts[k] = np.matmul(gk, cols[:, a * row:b * row].T)
                if dcols is not None:
                    np.matmul(w_t, gk, out=dcols[:, a * row:b * row])

        parallel.split(run, len(bounds) - 1, cols.size * (2 * f + 2))
        dw_aug = parts[0]
        for p in parts[1:]:  # summed in a fixed order: the same bits for any thread count
            dw_aug += p
        self.grads = {"weight": np.ascontiguousarray(dw_aug[:, :ckk]).reshape(self.params["weight"].shape)}
        if self.has_bias:
            self.grads["bias"] = dw_aug[:, ckk].copy()
        if dcols is None:
            return None

        dxp = np.empty((c, plan.hp, plan.wp, n), self.dtype)
        dcols6 = dcols.reshape(plan.col_shape)

        def scatter(lo: int, hi: int) -> None:  # channels are independent: split along them
            dxp[lo:hi].fill(0)
            col2im(dcols6[lo:hi], dxp[lo:hi], self.kernel_size, self.stride, plan.out_hw)

        parallel.split(scatter, c, 2 * dcols.size)
        top, _, left, _ = self.pads
        return dxp[:, top:top + h, left:left + w].transpose(3, 0, 1, 2)
