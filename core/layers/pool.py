"""2-D max / average / sum pooling over windows of any size, stride and padding."""
from __future__ import annotations

import functools

import numpy as np

from netbuilder.core.blocks import POOL_MODES
from netbuilder.core.geometry import output_hw
from netbuilder.core.layers import parallel
from netbuilder.core.layers.base import Layer
from netbuilder.core.layers.conv import _pads, _positive_pair, check_input
from netbuilder.core.layers.im2col import offset_slices


class Pool2D(Layer):
    """Pooling of (N, C, H, W) into (N, C, Ho, Wo), Ho = floor((H + pads - kh) / sh) + 1.

    max pads with -inf and sends each window's gradient to its first largest value in row-major
    window order (as PyTorch); average divides by the full window, padding included (PyTorch's
    count_include_pad=True); sum adds the window. Works on the batch-innermost (C, H, W, N) layout
    convolutions hand over: each window position is one pass over the whole batch whose inner
    runs are N contiguous values; the output is an NCHW view of a (C, Ho, Wo, N) array.
    """

    def __init__(self, mode: str, size: tuple[int, int], stride: tuple[int, int],
                 pads: tuple[int, int, int, int] = (0, 0, 0, 0), dtype=np.float32):
        super().__init__()
        if mode not in POOL_MODES:
            raise ValueError(f"unknown pooling mode {mode!r}; expected one of {', '.join(POOL_MODES)}")
        self.mode = mode
        self.size = _positive_pair("Pool2D size", size)
        self.stride = _positive_pair("Pool2D stride", stride)
        self.pads = _pads(pads)
        (kh, kw), (t, b, l, r) = self.size, self.pads
        if max(t, b) >= kh or max(l, r) >= kw:
            raise ValueError(f"Pool2D pads {self.pads} must be smaller than the window {self.size}")
        self.dtype = np.dtype(dtype)
        self._offsets = [(i, j) for i in range(kh) for j in range(kw)]
        self._saved: tuple | None = None

    def _padded(self, xt: np.ndarray) -> np.ndarray:
        """``xt`` (C, H, W, N) with the layer's padding (-inf for max, 0 otherwise)."""
        t, b, l, r = self.pads
        if not any(self.pads):
            return xt
        c, h, w, n = xt.shape
        xp = np.full((c, h + t + b, w + l + r, n), -np.inf if self.mode == "max" else 0, self.dtype)
        xp[:, t:t + h, l:l + w] = xt
        return xp

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = check_input("Pool2D", x, None, self.dtype)
        n, c, h, w = x.shape
        ho, wo = output_hw((h, w), self.size, self.stride, self.pads)
        if ho < 1 or wo < 1:
            raise ValueError(f"Pool2D window {self.size} with pads {self.pads} does not fit an input of "
                             f"height x width {h} x {w}")
        # batch-innermost (C, H, W, N): each window row is a run of N contiguous values when x
        # comes from a convolution
        src = self._padded(x.transpose(1, 2, 3, 0))
        views = [src[(slice(None),) + offset_slices(i, j, self.stride, (ho, wo))] for i, j in self._offsets]
        k = len(views)
        out = np.empty((c, ho, wo, n), self.dtype)
        argmax = None
        if self.mode == "max":
            if training:
                argmax = np.zeros(out.shape, np.uint8 if k < 256 else np.uint16)

            def run(lo: int, hi: int) -> None:
                o = out[lo:hi]
                if argmax is None:
                    np.copyto(o, views[0][lo:hi])
                    for v in views[1:]:
                        np.maximum(o, v[lo:hi], out=o)
                    return
                # Two running-max buffers taking turns, so each window position is read once:
                # where the max grew, that position is (strictly) the new arg-max.
                a = argmax[lo:hi]
                bufs = (o, np.empty_like(o))
                cur = (k - 1) % 2  # the last step then writes into `out`
                np.copyto(bufs[cur], views[0][lo:hi])
                grew = np.empty(o.shape, bool)
                step = np.empty(o.shape, a.dtype)
                for idx, v in enumerate(views[1:], 1):
                    np.maximum(bufs[cur], v[lo:hi], out=bufs[1 - cur])
                    np.greater(bufs[1 - cur], bufs[cur], out=grew)  # ties keep the earlier position
                    np.multiply(grew, a.dtype.type(idx), out=step)
                    np.maximum(a, step, out=a)  # positions only grow: the latest rise wins
                    cur = 1 - cur

        else:
            scale = 1.0 / k if self.mode == "average" else 1.0

            def run(lo: int, hi: int) -> None:
                o = out[lo:hi]
                if k == 1:
                    np.copyto(o, views[0][lo:hi])
                else:
                    np.add(views[0][lo:hi], views[1][lo:hi], out=o)
                for v in views[2:]:
                    np.add(o, v[lo:hi], out=o)
                if scale != 1.0:
                    np.multiply(o, o.dtype.type(scale), out=o)

        parallel.split(run, c, out.size * (k + 1))
        if training:
            self._saved = (x.shape, src.shape, (ho, wo), argmax)
        return out.transpose(3, 0, 1, 2)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        if self._saved is None:
            raise RuntimeError("Pool2D.backward needs a forward with training=True first")
        (n, c, h, w), (_, hp, wp, _), (ho, wo), argmax = self._saved
        if grad_out.shape != (n, c, ho, wo):
            raise ValueError(f"Pool2D.backward expects a gradient of shape {(n, c, ho, wo)}, got {grad_out.shape}")
        g = grad_out.astype(self.dtype, copy=False).transpose(1, 2, 3, 0)
        if g.strides[3] != g.itemsize:  # e.g. straight from Flatten: make batch-innermost once
            g = np.ascontiguousarray(g)
        (kh, kw), (sh, sw), k = self.size, self.stride, len(self._offsets)
        # Windows that do not overlap write every covered pixel exactly once: no zeroing, no adds.
        disjoint = sh >= kh and sw >= kw
        dxp = np.empty((c, hp, wp, n), self.dtype)
        uncovered = _uncovered((hp, wp), (ho, wo), self.size, self.stride) if disjoint else []
        scale = g.dtype.type(1.0 / k if self.mode == "average" else 1.0)

        def run(lo: int, hi: int) -> None:
            gl = g[lo:hi]
            if argmax is None and scale != 1:
                gl = gl * scale
            hit = None if argmax is None else np.empty(gl.shape, bool)
            if disjoint:
                for index in uncovered:
                    dxp[(slice(lo, hi),) + index] = 0
            else:
                dxp[lo:hi].fill(0)
            for idx, (i, j) in enumerate(self._offsets):
                target = dxp[(slice(lo, hi),) + offset_slices(i, j, self.stride, (ho, wo))]
                if hit is not None:
                    np.equal(argmax[lo:hi], idx, out=hit)
                    if disjoint:
                        np.multiply(gl, hit, out=target)
                    else:
                        target += gl * hit
                elif disjoint:
                    np.copyto(target, gl)
                else:
                    target += gl

        parallel.split(run, c, 2 * g.size * k)
        t, _, l, _ = self.pads
        return dxp[:, t:t + h, l:l + w].transpose(3, 0, 1, 2)


@functools.lru_cache(maxsize=64)
def _uncovered(padded_hw, out_hw, size, stride) -> list[tuple]:
    """Indexes (rows or columns of a (C, Hp, Wp, N) array) that no window covers."""
    out = []
    for axis, (total, count, k, s) in enumerate(zip(padded_hw, out_hw, size, stride)):
        covered = np.zeros(total, bool)
        for start in range(0, count * s, s):
            covered[start:start + k] = True
        if not covered.all():
            index = [slice(None), slice(None)]
            index[axis] = np.flatnonzero(~covered)
            out.append(tuple(index))
    return out
