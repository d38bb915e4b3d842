"""2-D convolution (cross-correlation, as PyTorch/ONNX) through im2col and matmuls, chunk by chunk."""
from __future__ import annotations

import numpy as np

from netbuilder.core.geometry import output_hw
from netbuilder.core.init import init_weight
from netbuilder.core.layers import parallel
from netbuilder.core.layers.activation import fused_backward, fused_forward
from netbuilder.core.layers.base import Layer
from netbuilder.core.layers.im2col import col2im, window_view
from netbuilder.core.layers.workspace import work


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


# Output rows are cut in chunks whose im2col columns take about this many bytes: small enough to
# stay in a core's cache from the copy that makes them to the matmuls that read them (an even
# number of chunks, so two threads can share them).
CHUNK_BYTES = 1 << 19


def flipped_input_grad(conv: Conv2D) -> bool:
    """Whether ``conv``'s input gradient is the correlation of δ with the flipped kernels (one
    im2col of δ and one matmul per chunk) rather than column gradients added back (col2im).

    Stride 1 only; and only with no more filters than input channels, as δ's columns have
    filters·kh·kw rows against the input's channels·kh·kw: with more filters the copy is larger
    than the additions it saves (measured: LeNet-5's 6 -> 16 and the CIFAR net's 32 -> 64 are
    faster with col2im, a VGG's 64 -> 64 with the flipped kernels).
    """
    return conv.stride == (1, 1) and conv.filters <= conv.in_channels


def cuts(total: int, pieces: int) -> list[int]:
    """Boundaries of ``pieces`` near-equal consecutive ranges covering range(total)."""
    return [total * k // pieces for k in range(pieces + 1)]


def row_cuts(rows: int, row_bytes: int) -> list[int]:
    """``rows`` cut in chunks of about CHUNK_BYTES (``row_bytes`` each row), an even number if possible.

    Decided by the shapes alone, never by the thread count: chunk results summed in chunk order
    give the same bits however many threads run.
    """
    return cuts(rows, min(rows, 2 * max(1, -(-rows * row_bytes // (2 * CHUNK_BYTES)))))


# The col2im input gradient is split over groups of input channels (each group's rows of the
# column gradients are added onto its own channels, so no two threads ever touch the same
# value): at most this many, and at least two (for two threads) unless there is one channel.
# It makes kh*kw additions per group and chunk, each paying a few microseconds a call: a group
# gets no more chunks than its column gradients need to be about this many times CHUNK_BYTES,
# and no more groups than make additions of COL2IM_ADD elements each.
COL2IM_GROUPS = 4
COL2IM_CHUNKS = 8
COL2IM_ADD = 1 << 15


def zero_border(a: np.ndarray, top: int, bottom: int, left: int, right: int) -> np.ndarray:
    """``a`` (C, H, W, N) with zeros outside rows [top, bottom) and columns [left, right); returned."""
    a[:, :top] = 0
    a[:, bottom:] = 0
    a[:, top:bottom, :left] = 0
    a[:, top:bottom, right:] = 0
    return a


def split_rows_or_channels(fn, c: int, h: int, elements: int) -> None:
    """``fn(channels, rows)`` over disjoint blocks of a (C, H, ...) array, in parallel."""
    if c > 1:
        parallel.split(lambda lo, hi: fn(slice(lo, hi), slice(None)), c, elements)
    else:
        parallel.split(lambda lo, hi: fn(slice(None), slice(lo, hi)), h, elements)


class _Plan:
    """Geometry and reusable buffers of a convolution for one input shape (N, H, W).

    Output rows are cut into a fixed number of chunks. A chunk's im2col columns are made in a
    per-thread buffer and used at once by the chunk's matmul (forward), or by its slice of the
    weight gradient (backward, which makes them again from the staged input instead of keeping
    every column of the batch: far less memory, and columns read hot from cache).

    Consecutive chunks form blocks, the unit a thread takes: the fused activation (forward) and
    the error term's mask (backward) run once a block. Each numpy call hands the GIL to the other
    thread and back, so fewer calls is what lets two threads work at once on small layers.
    """

    def __init__(self, conv: Conv2D, n: int, h: int, w: int):
        c, f, (kh, kw) = conv.in_channels, conv.filters, conv.kernel_size
        top, bottom, left, right = conv.pads
        self.n, self.h, self.w = n, h, w
        self.hp, self.wp = h + top + bottom, w + left + right
        self.out_hw = ho, wo = output_hw((h, w), conv.kernel_size, conv.stride, conv.pads)
        if ho < 1 or wo < 1:
            raise ValueError(
                f"Conv2D kernel {conv.kernel_size} with pads {conv.pads} does not fit an input of "
                f"height x width {h} x {w}")
        self.ckk = c * kh * kw
        self.rows = self.ckk + conv.has_bias  # im2col rows, plus one of ones for the bias
        self.block = (c, kh, kw, wo, n)  # a chunk's columns: (C, kh, kw, rows, Wo, N)
        self.row = wo * n  # columns per output row
        self.m = ho * self.row
        item = conv.dtype.itemsize
        self.bounds = row_cuts(ho, self.rows * self.row * item)
        chunks = len(self.bounds) - 1
        self.blocks = cuts(chunks, min(chunks, 2 * max(1, -(-f * self.m * item // (4 * CHUNK_BYTES)))))
        # the input gradient: by the flipped kernels, its (input) rows cut the same way; by col2im,
        # groups of input channels, each through every chunk of output rows in turn
        self.flip_bounds = row_cuts(h, f * kh * kw * w * n * item)
        self.groups = cuts(c, min(c, COL2IM_GROUPS, max(2, c * self.m // COL2IM_ADD)))
        group_bytes = -(-self.ckk // (len(self.groups) - 1)) * self.m * item
        self.col2im_bounds = cuts(ho, min(ho, -(-group_bytes // (COL2IM_CHUNKS * CHUNK_BYTES))))
        # the staged input of the training forward, which backward reads again: the plan's own
        # (every other work array dies with its call), zeros when made, so its borders stay zero
        self._staged_input: np.ndarray | None = None

    def nchw(self, out: np.ndarray) -> np.ndarray:
        """An (F, Ho*Wo*N) result as the (N, F, Ho, Wo) view the layers hand on."""
        ho, wo = self.out_hw
        return out.reshape(-1, ho, wo, self.n).transpose(3, 0, 1, 2)

    def columns(self, windows: np.ndarray, a: int, b: int, dtype) -> np.ndarray:
        """im2col of output rows [a, b) in this thread's work buffer (one for every layer: it dies
        with the chunk), with the bias's row of ones."""
        part = work((self.rows, (b - a) * self.row), dtype, "conv cols")
        part[self.ckk:] = 1  # the row of ones makes the bias one more matmul column of the weights
        c, kh, kw, wo, n = self.block
        np.copyto(part[:self.ckk].reshape(c, kh, kw, b - a, wo, n), windows[:, :, :, a:b])
        return part

    def staged(self, xt: np.ndarray, pads, training: bool) -> np.ndarray:
        """(C, Hp, Wp, N) zero-padded, batch-innermost input: ``xt`` itself when it already is.

        Training and inference stage into different buffers: an inference forward between a
        training forward and its backward (which reads the staged input) changes nothing."""
        if not any(pads) and xt.strides[3] == xt.itemsize:
            return xt
        shape = (xt.shape[0], self.hp, self.wp, xt.shape[3])
        top, _, left, _ = pads
        if training:  # kept for backward: the plan's own, its borders zero once and for all
            if self._staged_input is None:
                self._staged_input = np.zeros(shape, xt.dtype)
            xp = self._staged_input
        else:  # dies with the forward: a work buffer shared by every layer, its borders zeroed each time
            xp = zero_border(work(shape, xt.dtype, "conv inference input"), top, top + xt.shape[1],
                             left, left + xt.shape[2])
        inner = xp[:, top:top + xt.shape[1], left:left + xt.shape[2]]

        def copy(ch: slice, rows: slice) -> None:
            np.copyto(inner[ch, rows], xt[ch, rows])

        split_rows_or_channels(copy, xt.shape[0], xt.shape[1], 2 * xt.size)
        return xp


class Conv2D(Layer):
    """Zero-padded 2-D convolution: (N, C, H, W) -> (N, F, Ho, Wo), any stride, asymmetric pads.

    ``weight`` is (F, C, kh, kw) and ``bias`` (F,), as in PyTorch and ONNX; with ``bias=False``
    there is no bias at all (no params/grads entry), as torch's Conv2d(bias=False), e.g. before a
    BatchNorm, whose own shift makes a bias redundant. The output is an NCHW
    view of a batch-innermost (F, Ho, Wo, N) buffer, the layout the next layers read fastest.
    Set ``needs_input_grad = False`` on a first layer: backward then skips the input gradient
    (a third of the work) and returns None.

    ``fused_activation`` ("relu" or "leaky_relu", set by ``activation.fuse``): the layer applies
    it to each chunk of its output and masks the error term in backward, so its output is a and
    its backward takes ∂L/∂a. ``record``: a dict that the next training forward and backward put
    the pre-activation Z and the error term δ = ∂L/∂Z into (the Step view's trace); None normally.
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
        self.fused_activation: str | None = None
        self.record: dict | None = None
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
        src = plan.staged(x.transpose(1, 2, 3, 0), self.pads, training)
        windows = window_view(src, self.kernel_size, self.stride, plan.out_hw)
        out = np.empty((f, plan.m), self.dtype)
        row, bounds, blocks, act = plan.row, plan.bounds, plan.blocks, self.fused_activation
        z = np.empty_like(out) if training and act is not None and self.record is not None else None
        # the fused activation's mask (Z > 0), a byte a value: all its backward needs
        positive = np.empty(out.shape, bool) if training and act is not None else None

        def run(lo: int, hi: int) -> None:
            for j in range(lo, hi):
                for k in range(blocks[j], blocks[j + 1]):
                    a, b = bounds[k], bounds[k + 1]
                    np.matmul(w_aug, plan.columns(windows, a, b, self.dtype), out=out[:, a * row:b * row])
                if act is not None:  # while the block's output is in cache
                    cols = slice(bounds[blocks[j]] * row, bounds[blocks[j + 1]] * row)
                    if z is not None:
                        np.copyto(z[:, cols], out[:, cols])
                    fused_forward(act, out[:, cols], None if positive is None else positive[:, cols])

        parallel.split(run, len(blocks) - 1, rows * plan.m * (f + 1))
        if training:
            self._saved = (plan, x.shape, src, w_aug, act, positive)
            if z is not None:
                self.record["z"] = plan.nchw(z)
        return plan.nchw(out)

    def backward(self, grad_out: np.ndarray) -> np.ndarray | None:
        if self._saved is None:
            raise RuntimeError("Conv2D.backward needs a forward with training=True first")
        plan, (n, c, h, w), src, w_aug, act, positive = self._saved
        f, ckk, (kh, kw) = self.filters, plan.ckk, self.kernel_size
        ho, wo = plan.out_hw
        if grad_out.shape != (n, f, ho, wo):
            raise ValueError(f"Conv2D.backward expects a gradient of shape {(n, f, ho, wo)}, got {grad_out.shape}")
        gt = grad_out.astype(self.dtype, copy=False).transpose(1, 2, 3, 0)  # (F, Ho, Wo, N)
        # δ: the incoming gradient, masked by the fused activation's derivative (never written into
        # grad_out, which a residual or branch hands to another path too). Block by block, into a
        # per-thread work array that the weight gradient reads hot, or into one array of it whole
        # when the col2im input gradient (or the Step trace) needs all of it after.
        staged = act is not None or not gt.flags.c_contiguous
        flipped = self.needs_input_grad and flipped_input_grad(self)
        whole = staged and ((self.needs_input_grad and not flipped) or self.record is not None)
        # (work buffers shared by every layer: they die with this call)
        g4 = work((f, ho, wo, n), self.dtype, "conv whole delta") if whole else gt
        mask = positive.reshape(f, ho, wo, n) if act is not None else None
        # stride 1: δ zero-padded by the kernel size less one, for the input gradient's own im2col
        gz = zero_border(work((f, ho + 2 * kh - 2, wo + 2 * kw - 2, n), self.dtype, "conv padded delta"),
                         kh - 1, kh - 1 + ho, kw - 1, kw - 1 + wo) if flipped else None
        interior = gz[:, kh - 1:kh - 1 + ho, kw - 1:kw - 1 + wo] if flipped else None
        windows = window_view(src, self.kernel_size, self.stride, plan.out_hw)
        row, bounds, blocks = plan.row, plan.bounds, plan.blocks
        parts: list[np.ndarray | None] = [None] * (len(bounds) - 1)

        def run(lo: int, hi: int) -> None:
            for j in range(lo, hi):
                first, last = blocks[j], blocks[j + 1]
                top, bottom = bounds[first], bounds[last]  # the block's output rows
                delta = g4[:, top:bottom]
                if staged:
                    if not whole:
                        delta = work((f, bottom - top, wo, n), self.dtype, "conv delta")
                    if act is not None:
                        fused_backward(act, mask[:, top:bottom], gt[:, top:bottom], delta)
                    else:
                        np.copyto(delta, gt[:, top:bottom])
                if interior is not None:
                    np.copyto(interior[:, top:bottom], delta)
                delta = delta.reshape(f, (bottom - top) * row)
                for k in range(first, last):
                    a, b = bounds[k], bounds[k + 1]
                    # ∂L/∂W transposed, (rows, F): BLAS runs this way round up to twice as fast
                    parts[k] = np.matmul(plan.columns(windows, a, b, self.dtype),
                                         delta[:, (a - top) * row:(b - top) * row].T)

        parallel.split(run, len(blocks) - 1, plan.rows * plan.m * (f + 1))
        dw_t = parts[0]
        for p in parts[1:]:  # summed in a fixed order: the same bits for any thread count
            dw_t += p
        self.grads = {"weight": np.ascontiguousarray(dw_t[:ckk].T).reshape(self.params["weight"].shape)}
        if self.has_bias:
            self.grads["bias"] = dw_t[ckk].copy()
        if self.record is not None and act is not None:
            self.record["delta"] = np.array(g4.transpose(3, 0, 1, 2))
        if not self.needs_input_grad:
            return None
        if flipped:
            return self._input_grad_flipped(plan, gz, w_aug)
        return self._input_grad_col2im(plan, g4.reshape(f, plan.m), w_aug)

    def _input_grad_flipped(self, plan: _Plan, gz: np.ndarray, w_aug: np.ndarray) -> np.ndarray:
        """Stride 1: ∂L/∂x is the correlation of the zero-padded δ with the flipped kernels, channels
        swapped: one more im2col and matmul per chunk of input rows, no scatter-add at all."""
        c, f, (kh, kw) = self.in_channels, self.filters, self.kernel_size
        n, h, w = plan.n, plan.h, plan.w
        flipped = w_aug[:, :plan.ckk].reshape(f, c, kh, kw)[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
        w_flip = np.ascontiguousarray(flipped).reshape(c, f * kh * kw)
        top, _, left, _ = self.pads
        # gz's row r holds δ's row r - (kh - 1); input row y reads it at rows y + top .. y + top + kh - 1
        windows = window_view(gz[:, top:, left:], self.kernel_size, (1, 1), (h, w))
        dx = np.empty((c, h * w * n), self.dtype)
        row, bounds = w * n, plan.flip_bounds

        def run(lo: int, hi: int) -> None:
            for k in range(lo, hi):
                a, b = bounds[k], bounds[k + 1]
                part = work((f * kh * kw, (b - a) * row), self.dtype, "conv delta cols")
                np.copyto(part.reshape(f, kh, kw, b - a, w, n), windows[:, :, :, a:b])
                np.matmul(w_flip, part, out=dx[:, a * row:b * row])

        parallel.split(run, len(bounds) - 1, (f * kh * kw + c) * h * row)
        return dx.reshape(c, h, w, n).transpose(3, 0, 1, 2)

    def _input_grad_col2im(self, plan: _Plan, g2: np.ndarray, w_aug: np.ndarray) -> np.ndarray:
        """Other strides (and stride 1 with more filters than channels): chunk by chunk of output
        rows, the column gradients Wᵀ·δ are made in cache and added straight onto the padded input
        gradient (col2im), whose rows each chunk zeroes just before it first reaches them: one
        pass over it. Each group of input channels is one job: its values sum their parts in one
        fixed order, whichever thread runs it."""
        c, (kh, kw), (sh, _) = self.in_channels, self.kernel_size, self.stride
        n, h, w = plan.n, plan.h, plan.w
        _, wo = plan.out_hw
        dxp = np.empty((c, plan.hp, plan.wp, n), self.dtype)
        w_t = w_aug[:, :plan.ckk].T  # (C*kh*kw, F): a group's channels are consecutive rows
        row, bounds, groups = plan.row, plan.col2im_bounds, plan.groups
        last = len(bounds) - 2

        def run(lo: int, hi: int) -> None:
            for j in range(lo, hi):
                c0, c1 = groups[j], groups[j + 1]
                w_group = w_t[c0 * kh * kw:c1 * kh * kw]
                zeroed = 0
                for k in range(last + 1):
                    a, b = bounds[k], bounds[k + 1]
                    reach = plan.hp if k == last else (b - 1) * sh + kh  # rows this chunk adds onto, and before
                    dxp[c0:c1, zeroed:reach].fill(0)
                    zeroed = max(zeroed, reach)
                    dcols = work(((c1 - c0) * kh * kw, (b - a) * row), self.dtype, "conv dcols")
                    np.matmul(w_group, g2[:, a * row:b * row], out=dcols)
                    col2im(dcols.reshape(c1 - c0, kh, kw, b - a, wo, n), dxp[c0:c1, a * sh:], self.kernel_size,
                           self.stride, (b - a, wo))

        parallel.split(run, len(groups) - 1, (plan.ckk + self.filters) * plan.m + dxp.size)
        top, _, left, _ = self.pads
        return dxp[:, top:top + h, left:left + w].transpose(3, 0, 1, 2)
