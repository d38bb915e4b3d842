"""2-D max / average / sum pooling over windows of any size, stride and padding."""
from __future__ import annotations

import functools
import itertools
import math

import numpy as np

from netbuilder.core.blocks import POOL_MODES
from netbuilder.core.geometry import output_hw
from netbuilder.core.layers import parallel
from netbuilder.core.layers.base import Layer
from netbuilder.core.layers.conv import _pads, _positive_pair, check_input
from netbuilder.core.layers.im2col import offset_slices
from netbuilder.core.layers.workspace import work

# Each thread works through its channels in blocks whose input takes about this many bytes, so a
# block's phases and running buffers stay in the core's cache between the passes over them.
BLOCK_BYTES = 3 << 19


class Pool2D(Layer):
    """Pooling of (N, C, H, W) into (N, C, Ho, Wo), Ho = floor((H + pads - kh) / sh) + 1.

    max pads with -inf and sends each window's gradient to its first largest value in row-major
    window order (as PyTorch); average divides by the full window, padding included (PyTorch's
    count_include_pad=True); sum adds the window. Works on the batch-innermost (C, H, W, N) layout
    convolutions hand over: each kernel offset is one pass over a (C, Ho, Wo, N) view; the output
    is an NCHW view of a (C, Ho, Wo, N) array, and max keeps a one-byte arg-max per output.

    The channels are shared among the threads, and each thread works through its own in blocks of
    about BLOCK_BYTES, so a block's running buffers stay in the core's cache between the passes. A
    strided view has contiguous runs of only N values, and numpy pays a loop call per run: where
    the input has to be copied anyway, to pad it, it is copied into its stride phases instead
    (rows = p, columns = q modulo the stride, each a dense array), whose slices have runs of
    Wo * N values, and the gradient is summed in phases the same way and interleaved once. Every
    value is computed by the same operations, in the same order, either way.
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
        self._saved: tuple | None = None

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = check_input("Pool2D", x, None, self.dtype)
        n, c, h, w = x.shape
        ho, wo = output_hw((h, w), self.size, self.stride, self.pads)
        if ho < 1 or wo < 1:
            raise ValueError(f"Pool2D window {self.size} with pads {self.pads} does not fit an input of "
                             f"height x width {h} x {w}")
        xt = x.transpose(1, 2, 3, 0)  # (C, H, W, N): runs of N contiguous values from a convolution
        plan = _plan((h, w), self.size, self.stride, self.pads, (ho, wo))
        k = len(plan.kernel)
        out = np.empty((c, ho, wo, n), self.dtype)
        argmax = None
        if self.mode == "max" and training:
            argmax = np.empty(out.shape, np.uint8 if k < 256 else np.uint16)
        fill = -np.inf if self.mode == "max" else 0.0
        channel_bytes = h * w * n * self.dtype.itemsize

        def run(lo: int, hi: int) -> None:
            cuts = _blocks(lo, hi, channel_bytes)
            width = max(b - a for a, b in zip(cuts, cuts[1:]))
            phases = _phase_buffers(plan, width, n, self.dtype, "pool_phase") if plan.phased else None
            work = _MaxWork(argmax, (width, ho, wo, n), self.dtype) if self.mode == "max" else None
            for a, b in zip(cuts, cuts[1:]):
                source = [xt[a:b]] if phases is None else _split_phases(plan, xt[a:b], fill, phases)
                views = plan.views(source, phases is not None)
                if work is not None:
                    work.run(views, out[a:b], None if argmax is None else argmax[a:b])
                else:
                    _running_sum(views, out[a:b], 1.0 / k if self.mode == "average" else 1.0)

        # channels are independent: however they are shared out, every value comes out the same
        parallel.split(run, c, x.size + out.size * k)  # about the values touched: a LeNet-5 map stays on one thread
        if training:
            self._saved = (x.shape, (ho, wo), argmax)
        return out.transpose(3, 0, 1, 2)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        if self._saved is None:
            raise RuntimeError("Pool2D.backward needs a forward with training=True first")
        (n, c, h, w), (ho, wo), argmax = self._saved
        if grad_out.shape != (n, c, ho, wo):
            raise ValueError(f"Pool2D.backward expects a gradient of shape {(n, c, ho, wo)}, got {grad_out.shape}")
        g = grad_out.astype(self.dtype, copy=False).transpose(1, 2, 3, 0)
        if g.strides[3] != g.itemsize:  # e.g. straight from Flatten: make batch-innermost once
            g = np.ascontiguousarray(g)
        plan = _plan((h, w), self.size, self.stride, self.pads, (ho, wo))
        k = len(plan.kernel)
        dx = np.empty((c, h, w, n), self.dtype)
        scale = self.dtype.type(1.0 / k if self.mode == "average" else 1.0)
        channel_bytes = h * w * n * self.dtype.itemsize

        def run(lo: int, hi: int) -> None:
            cuts = _blocks(lo, hi, channel_bytes)
            width = max(b - a for a, b in zip(cuts, cuts[1:]))
            phases = _phase_buffers(plan, width, n, self.dtype, "pool_dphase") if plan.phased else None
            hit = work((width, ho, wo, n), np.bool_, "pool_hit") if argmax is not None else None
            part = None if plan.disjoint else work((width, ho, wo, n), self.dtype, "pool_part")
            for a, b in zip(cuts, cuts[1:]):
                gl = g[a:b]
                if argmax is None and scale != 1:
                    gl = gl * scale
                if phases is None:  # straight into dx: zero what no window reads, or all where they overlap
                    source = [dx[a:b]]
                    if not plan.disjoint:
                        source[0].fill(0)
                    for index in _uncovered((h, w), (ho, wo), self.size, self.stride) if plan.disjoint else ():
                        dx[(slice(a, b),) + index] = 0
                else:
                    source = [p[:b - a] for p in phases]
                    if not plan.disjoint:
                        for p in source:
                            p.fill(0)
                targets = plan.views(source, phases is not None)
                for idx, target in enumerate(targets):
                    if argmax is not None:
                        mask = hit[:b - a]
                        np.equal(argmax[a:b], idx, out=mask)
                        if plan.disjoint:
                            np.multiply(gl, mask, out=target)
                        else:
                            np.add(target, np.multiply(gl, mask, out=part[:b - a]), out=target)
                    elif plan.disjoint:
                        np.copyto(target, gl)
                    else:
                        np.add(target, gl, out=target)
                if phases is not None:
                    _merge_phases(plan, source, dx[a:b])

        parallel.split(run, c, dx.size + g.size * k)
        return dx.transpose(3, 0, 1, 2)


def _blocks(lo: int, hi: int, channel_bytes: int) -> list[int]:
    """Boundaries of near-equal blocks of channels lo..hi, of at most about BLOCK_BYTES each."""
    c = hi - lo
    count = max(1, min(c, -(-c * channel_bytes // BLOCK_BYTES)))
    return [lo + c * i // count for i in range(count + 1)]


class _MaxWork:
    """The running max over a block's offsets, with its buffers (taken once per thread)."""

    def __init__(self, argmax, shape, dtype):
        if argmax is not None:
            self.spare = work(shape, dtype, "pool_max")
            self.grew = work(shape, np.bool_, "pool_grew")
            self.step = work(shape, argmax.dtype, "pool_step")

    def run(self, views: list, out: np.ndarray, argmax: np.ndarray | None) -> None:
        """The largest of ``views`` into ``out``; with ``argmax``, the first offset holding it."""
        if argmax is None:
            np.copyto(out, views[0])
            for v in views[1:]:
                np.maximum(out, v, out=out)
            return
        # Two running-max buffers taking turns, so each window position is read once: where the
        # max grew, that position is (strictly) the new arg-max.
        size, k = len(out), len(views)
        bufs = (out, self.spare[:size])
        grew, step = self.grew[:size], self.step[:size]
        cur = (k - 1) % 2  # the last step then writes into `out`
        np.copyto(bufs[cur], views[0])
        argmax.fill(0)
        for idx, v in enumerate(views[1:], 1):
            np.maximum(bufs[cur], v, out=bufs[1 - cur])
            np.greater(bufs[1 - cur], bufs[cur], out=grew)  # ties keep the earlier position
            if argmax.dtype == np.uint8:  # a bool is a byte of 0 or 1: scale it as uint8, no cast
                np.multiply(grew.view(np.uint8), np.uint8(idx), out=step)
            else:
                np.multiply(grew, argmax.dtype.type(idx), out=step)
            np.maximum(argmax, step, out=argmax)  # positions only grow: the latest rise wins
            cur = 1 - cur


def _running_sum(views: list, out: np.ndarray, scale: float) -> None:
    """The sum of ``views`` in offset order (times ``scale``) into ``out``."""
    if len(views) == 1:
        np.copyto(out, views[0])
    else:
        np.add(views[0], views[1], out=out)
    for v in views[2:]:
        np.add(out, v, out=out)
    if scale != 1.0:
        np.multiply(out, out.dtype.type(scale), out=out)


@functools.lru_cache(maxsize=64)
def _uncovered(hw, out_hw, size, stride) -> list[tuple]:
    """Indexes (rows or columns of a (C, H, W, N) array) that no window covers (no padding)."""
    out = []
    for axis, (total, count, k, s) in enumerate(zip(hw, out_hw, size, stride)):
        covered = np.zeros(total, bool)
        for start in range(0, count * s, s):
            covered[start:start + k] = True
        if not covered.all():
            index = [slice(None), slice(None)]
            index[axis] = np.flatnonzero(~covered)
            out.append(tuple(index))
    return out


# --- stride phases ---------------------------------------------------------------------------------
class _Plan:
    """Where each stride phase of the padded input lies, and which phase every kernel offset reads.

    Phase (p, q) holds padded rows p, p + sh, ... and columns q, q + sw, ...: ``rows[p]`` and
    ``cols[q]`` are (length, first, stop, first input index) along that axis, its entries
    first..stop being input and the others padding. ``offsets`` lists (phase, row shift, column
    shift) per kernel offset, in row-major window order. ``phased``: the forward reads the phases
    and the backward sums into gradient phases, else both use the input's own strided views.
    """

    def __init__(self, hw, size, stride, pads, out_hw):
        (h, w), (kh, kw), (sh, sw), (t, _, l, _), (ho, wo) = hw, size, stride, pads, out_hw
        self.stride, self.out_hw = stride, out_hw
        self.rows = [_axis(p, kh, sh, t, h, ho) for p in range(sh)]
        self.cols = [_axis(q, kw, sw, l, w, wo) for q in range(sw)]
        self.used = [(p, q) for p in range(min(sh, kh)) for q in range(min(sw, kw))]
        self.kernel = [(i, j) for i in range(kh) for j in range(kw)]
        self.offsets = [(self.used.index((i % sh, j % sw)), i // sh, j // sw) for i, j in self.kernel]
        self.disjoint = sh >= kh and sw >= kw  # then each input value is in one window at most
        # Phases pay where the input is copied anyway, to pad it; without padding, copying the
        # input into phases costs about what the longer runs save (measured: bench/pool.py).
        self.phased = any(pads)

    def views(self, source: list[np.ndarray], phased: bool) -> list[np.ndarray]:
        """Every kernel offset's (C, Ho, Wo, N) view of ``source`` (the phases, or one array laid
        out as the input), in row-major window order."""
        ho, wo = self.out_hw
        if phased:
            return [source[slot][:, di:di + ho, dj:dj + wo] for slot, di, dj in self.offsets]
        return [source[0][(slice(None),) + offset_slices(i, j, self.stride, self.out_hw)] for i, j in self.kernel]


def _axis(p: int, k: int, s: int, pad: int, n: int, count: int) -> tuple[int, int, int, int]:
    """Phase ``p`` along one axis of size ``n`` padded by ``pad`` before, windows ``k`` at stride ``s``."""
    length = (k - 1 - p) // s + count if p < k else 0
    first = max(0, -((p - pad) // s))  # first entry at or after input index 0
    stop = max(first, (n - 1 + pad - p) // s + 1)  # past the last entry at or before input index n - 1
    return length, first, stop, p + first * s - pad


@functools.lru_cache(maxsize=64)
def _plan(hw, size, stride, pads, out_hw) -> _Plan:
    return _Plan(hw, size, stride, pads, out_hw)


def _phase_buffers(plan: _Plan, c: int, n: int, dtype, name: str) -> list[np.ndarray]:
    """One thread's (C, H', W', N) arrays for the used phases of ``c`` channels, cut from one buffer."""
    shapes = [(c, plan.rows[p][0], plan.cols[q][0], n) for p, q in plan.used]
    sizes = [math.prod(shape) for shape in shapes]
    buf = work((sum(sizes),), dtype, name)
    starts = itertools.accumulate(sizes, initial=0)
    return [buf[s:s + size].reshape(shape) for s, size, shape in zip(starts, sizes, shapes)]


def _split_phases(plan: _Plan, xt: np.ndarray, fill: float, buffers: list[np.ndarray]) -> list[np.ndarray]:
    """The used phases of (C, H, W, N) ``xt`` padded with ``fill``, written into ``buffers``."""
    (sh, sw), c, phases = plan.stride, len(xt), []
    for (p, q), buffer in zip(plan.used, buffers):
        (hp, r0, r1, y0), (wp, c0, c1, x0) = plan.rows[p], plan.cols[q]
        r1, c1 = min(r1, hp), min(c1, wp)
        phase = buffer[:c]
        for pad_part in (phase[:, :r0], phase[:, r1:], phase[:, r0:r1, :c0], phase[:, r0:r1, c1:]):
            if pad_part.size:
                pad_part.fill(fill)
        np.copyto(phase[:, r0:r1, c0:c1],
                  xt[:, y0:y0 + (r1 - r0 - 1) * sh + 1:sh, x0:x0 + (c1 - c0 - 1) * sw + 1:sw])
        phases.append(phase)
    return phases


def _merge_phases(plan: _Plan, phases: list[np.ndarray], dx: np.ndarray) -> None:
    """Interleave the gradient phases' input entries into (C, H, W, N) ``dx``; 0 where no window reads."""
    (sh, sw), used = plan.stride, dict(zip(plan.used, phases))
    for p, (hp, r0, r1, y0) in enumerate(plan.rows):
        for q, (wp, c0, c1, x0) in enumerate(plan.cols):
            target = dx[:, y0::sh, x0::sw][:, :r1 - r0, :c1 - c0]  # this phase's input entries
            phase = used.get((p, q))
            if phase is None:
                target.fill(0)
                continue
            rows, cols = min(r1, hp) - r0, min(c1, wp) - c0  # the entries some window reads
            np.copyto(target[:, :rows, :cols], phase[:, r0:r0 + rows, c0:c0 + cols])
            for rest in (target[:, rows:], target[:, :rows, cols:]):
                if rest.size:
                    rest.fill(0)
