"""Batch normalisation over (N, C, H, W) or (N, C) input, as torch's BatchNorm2d / BatchNorm1d.

Each channel is shifted and scaled to zero mean and unit variance over the batch (and the image),
then given a learnt scale and shift: deep networks train faster and with larger learning rates.
"""
from __future__ import annotations

import numpy as np

from netbuilder.core.layers import parallel
from netbuilder.core.layers.activation import fused_backward, fused_forward
from netbuilder.core.layers.base import Layer
from netbuilder.core.layers.workspace import work

# Memory orders of an (N, C, H, W) array, as the axis order that is C-contiguous: batch-innermost
# (C, H, W, N) from a convolution, channel-major (C, N, H, W), plain NCHW (also (N, C) input).
LAYOUTS = ((1, 2, 3, 0), (1, 0, 2, 3), (0, 1, 2, 3))
_INVERSE = {p: tuple(int(k) for k in np.argsort(p)) for p in LAYOUTS}  # the transposes back to NCHW


def layout_of(x: np.ndarray) -> tuple[int, ...]:
    """The first of LAYOUTS that ``x`` (N, C, H, W) is stored in; NCHW when none is."""
    return next((p for p in LAYOUTS if x.transpose(p).flags.c_contiguous), LAYOUTS[-1])


def channel_view(x: np.ndarray, order: tuple[int, ...]) -> np.ndarray:
    """``x`` (N, C, H, W) as an (A, C, B) array stored in ``order``: per-channel sums are over axes 0
    and 2. A view when ``x`` is stored so already, else one copy."""
    t = np.ascontiguousarray(x.transpose(order))
    return t.reshape(t.shape[0], t.shape[1], -1) if order[0] == 0 else t.reshape(1, t.shape[0], -1)


def nchw(a: np.ndarray, order: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray:
    """The (N, C, H, W) view of an (A, C, B) array from ``channel_view(x, order)``, x of ``shape``."""
    inverse = _INVERSE.get(order) or tuple(int(k) for k in np.argsort(order))
    return a.reshape([shape[k] for k in order]).transpose(inverse)


def as_4d(x: np.ndarray) -> np.ndarray:
    return x if x.ndim == 4 else x[:, :, None, None]


# The channels are worked through in blocks of about this many bytes, each from its statistics to
# its output while it stays in a core's cache; the blocks, decided by the shapes alone, are shared
# among the threads, and every per-channel sum is a sum over its own block, so the bits are the
# same for any thread count.
BLOCK_BYTES = 1 << 20


def channel_blocks(shape3: tuple[int, int, int], itemsize: int) -> list[int]:
    """Channel boundaries of near-equal blocks of an (A, C, B) array, of about BLOCK_BYTES each."""
    a, c, b = shape3
    count = max(1, min(c, -(-a * c * b * itemsize // BLOCK_BYTES)))
    return [c * i // count for i in range(count + 1)]


class BatchNorm(Layer):
    """y = weight * (x - mean) / sqrt(var + eps) + bias, per channel (axis 1).

    A training forward normalises with the statistics of its batch (mean and biased variance over
    N, H, W) and moves the buffers towards them, as PyTorch does:
    ``running = (1 - momentum) * running + momentum * batch_stat``, with the unbiased variance for
    ``running_var``. An inference forward (``training=False``) normalises with ``running_mean`` and
    ``running_var`` and neither keeps nor changes anything.

    A training batch with one value per channel (one sample after a dense block) has no variance,
    so it is treated as frozen: the running statistics normalise it and are left as they are.

    ``frozen = True`` (a fine-tuning choice, as torch's ``module.eval()`` while training) makes
    training forwards use and keep the running statistics too, untouched: the layer is then a fixed
    per-channel affine map whose gradient backward returns. With ``needs_input_grad = False``
    backward skips the input gradient and returns None.

    ``fused_activation`` ("relu" or "leaky_relu", set by ``activation.fuse``) and ``record`` as in
    ``Conv2D``: the layer applies the activation to each block of its output while it is in cache
    and masks the error term with it in backward, so its output is a and its backward takes ∂L/∂a;
    ``record``, when set, receives the pre-activation Z and δ = ∂L/∂Z of the next training step.
    """

    def __init__(self, num_features: int, momentum: float = 0.1, eps: float = 1e-5, dtype=np.float32):
        super().__init__()
        if isinstance(num_features, bool) or not isinstance(num_features, (int, np.integer)) or num_features < 1:
            raise ValueError(f"BatchNorm num_features must be a positive integer, got {num_features!r}")
        try:
            momentum, eps = float(momentum), float(eps)
        except (TypeError, ValueError):
            raise ValueError(f"BatchNorm momentum and eps must be numbers, got {momentum!r} and {eps!r}") from None
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNorm momentum must be between 0 and 1, got {momentum!r}")
        if not 0.0 < eps < np.inf:
            raise ValueError(f"BatchNorm eps must be a positive number, got {eps!r}")
        self.num_features, self.momentum, self.eps = int(num_features), momentum, eps
        self.dtype = np.dtype(dtype)
        self.needs_input_grad = True
        self.frozen = False
        self.fused_activation: str | None = None
        self.record: dict | None = None
        c = self.num_features
        self.params = {"weight": np.ones(c, self.dtype), "bias": np.zeros(c, self.dtype)}
        # As torch names them; num_batches_tracked counts the batches the statistics have seen
        # (torch needs it in a state_dict; with a fixed momentum it changes nothing).
        self.buffers = {"running_mean": np.zeros(c, self.dtype), "running_var": np.ones(c, self.dtype),
                        "num_batches_tracked": np.zeros((), np.int64)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        # x - mean as (A, C, B), 1/std, batch statistics?, order, shape, Z > 0 (activation fused)
        self._saved: tuple | None = None

    def _check(self, x) -> np.ndarray:
        x = np.asarray(x)
        c = self.num_features
        if x.ndim not in (2, 4) or x.shape[1] != c:
            raise ValueError(f"BatchNorm expects input of shape (batch, {c}) or (batch, {c}, height, width), "
                             f"got {x.shape}")
        return x.astype(self.dtype, copy=False)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = self._check(x)
        shape, x4 = x.shape, as_4d(x)
        order = layout_of(x4)
        x3 = channel_view(x4, order)
        count = x3.shape[0] * x3.shape[2]  # values per channel: N*H*W
        dt, c = self.dtype.type, self.num_features
        rm, rv = self.buffers["running_mean"], self.buffers["running_var"]
        weight, bias, act = self.params["weight"], self.params["bias"], self.fused_activation
        out = np.empty_like(x3)
        # One value per channel has no variance to take (torch raises): such a batch, e.g. the last
        # one of an epoch after a dense block, is normalised with the running statistics instead.
        batch_stats = training and not self.frozen and count >= 2
        centred = np.empty_like(x3) if training else None
        z = np.empty_like(x3) if training and act is not None and self.record is not None else None
        positive = np.empty(x3.shape, np.bool_) if training and act is not None else None  # Z > 0, for backward
        # y = weight * x_hat + bias = (x - mean) * scale + bias, scale = weight / std: per block from
        # its own statistics, or from the running ones for all channels at once
        if batch_stats:
            mean, var, inv_std, scale = (np.empty(c, self.dtype) for _ in range(4))
        else:
            mean, var = rm, rv
            inv_std = dt(1) / np.sqrt(rv + dt(self.eps))
            scale = weight * inv_std
        shift = None if training else bias - mean * scale  # inference: y = x * scale + shift
        cuts = channel_blocks(x3.shape, self.dtype.itemsize)

        def run(lo: int, hi: int) -> None:
            for a, b in zip(cuts[lo:hi], cuts[lo + 1:hi + 1]):
                xb, ob, per = x3[:, a:b], out[:, a:b], (1, b - a, 1)
                if batch_stats:
                    mean[a:b] = xb.sum(axis=(0, 2)) / dt(count)
                if training:  # x - mean kept for backward (x_hat is never stored)
                    cb = np.subtract(xb, mean[a:b].reshape(per), out=centred[:, a:b])
                if batch_stats:
                    sq = np.multiply(cb, cb, out=work(cb.shape, self.dtype, "bn_square"))
                    var[a:b] = sq.sum(axis=(0, 2)) / dt(count)  # biased: what normalises (pairwise sums)
                    inv_std[a:b] = dt(1) / np.sqrt(var[a:b] + dt(self.eps))
                    np.multiply(weight[a:b], inv_std[a:b], out=scale[a:b])
                np.multiply(cb if training else xb, scale[a:b].reshape(per), out=ob)
                np.add(ob, (bias if training else shift)[a:b].reshape(per), out=ob)
                if act is not None:
                    if z is not None:
                        np.copyto(z[:, a:b], ob)
                    fused_forward(act, ob, work(ob.shape, np.bool_, "bn_positive") if positive is None
                                  else positive[:, a:b])

        parallel.split(run, len(cuts) - 1, x3.size * (6 if batch_stats else 3))
        if batch_stats:
            m = dt(self.momentum)
            rm *= dt(1) - m
            rm += m * mean
            rv *= dt(1) - m
            rv += (m * dt(count / (count - 1))) * var  # unbiased, as torch keeps it
            self.buffers["num_batches_tracked"] += 1
        if training:
            self._saved = (centred, inv_std, batch_stats, order, shape, positive)
            if z is not None:
                self.record["z"] = self._view(z, order, shape)
        return self._view(out, order, shape)

    @staticmethod
    def _view(a3: np.ndarray, order, shape) -> np.ndarray:
        """(A, C, B) ``a3`` as the (N, C, H, W) or (N, C) array of ``shape``."""
        y = nchw(a3, order, shape if len(shape) == 4 else (*shape, 1, 1))
        return y if len(shape) == 4 else y[:, :, 0, 0]

    def backward(self, grad_out: np.ndarray) -> np.ndarray | None:
        # With x_hat = (x - mean) / std and Z = weight * x_hat + bias, δ = ∂L/∂Z per value:
        #   ∂L/∂bias = Σ δ,  ∂L/∂weight = Σ δ·x_hat  (sums over N, H, W: M values per channel)
        #   ∂L/∂x = weight / std · (δ - Σδ / M - x_hat · Σ(δ·x_hat) / M)
        # the last two terms because every x moves the batch mean and variance (frozen or fixed
        # running statistics don't move: then ∂L/∂x = weight / std · δ). With the activation fused,
        # grad_out is ∂L/∂a and δ is made from it, block by block, first.
        if self._saved is None:
            raise RuntimeError("BatchNorm.backward needs a forward with training=True first")
        centred, inv_std, batch_stats, order, shape, positive = self._saved
        grad_out = np.asarray(grad_out)
        if grad_out.shape != shape:
            raise ValueError(f"BatchNorm.backward expects a gradient of shape {shape}, got {grad_out.shape}")
        g = grad_out.astype(self.dtype, copy=False)
        g3 = channel_view(as_4d(g), order)  # in the input's memory order (a copy if g has another)
        dt, c, act = self.dtype.type, self.num_features, self.fused_activation if positive is not None else None
        count = dt(centred.shape[0] * centred.shape[2])
        dweight, dbias = np.empty(c, self.dtype), np.empty(c, self.dtype)
        dx = np.empty_like(g3) if self.needs_input_grad else None
        keep = np.empty_like(g3) if act is not None and self.record is not None else None
        weight = self.params["weight"]
        cuts = channel_blocks(g3.shape, self.dtype.itemsize)

        def run(lo: int, hi: int) -> None:
            for a, b in zip(cuts[lo:hi], cuts[lo + 1:hi + 1]):
                gb, cb, per = g3[:, a:b], centred[:, a:b], (1, b - a, 1)
                if act is not None:
                    delta = work(gb.shape, self.dtype, "bn_delta") if keep is None else keep[:, a:b]
                    fused_backward(act, positive[:, a:b], gb, delta)
                    gb = delta
                dweight[a:b] = np.einsum("acb,acb->c", gb, cb) * inv_std[a:b]  # Σ δ·x_hat, no x_hat pass
                dbias[a:b] = gb.sum(axis=(0, 2))
                if dx is None:
                    continue
                k = weight[a:b] * inv_std[a:b]
                db = np.multiply(gb, k.reshape(per), out=dx[:, a:b])
                if batch_stats:  # minus x_hat·k Σ(δ·x_hat)/M = centred·(k inv_std Σ(δ·x_hat)/M), and k Σδ/M
                    tmp = np.multiply(cb, (k * inv_std[a:b] * dweight[a:b] / count).reshape(per),
                                      out=work(cb.shape, self.dtype, "bn_tmp"))
                    tmp += (k * dbias[a:b] / count).reshape(per)
                    np.subtract(db, tmp, out=db)

        parallel.split(run, len(cuts) - 1, g3.size * (6 if batch_stats else 3))
        self.grads = {"weight": dweight, "bias": dbias}
        if keep is not None:
            self.record["delta"] = self._view(keep, order, shape)
        return None if dx is None else self._view(dx, order, shape)
