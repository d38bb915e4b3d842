"""Batch normalisation over (N, C, H, W) or (N, C) input, as torch's BatchNorm2d / BatchNorm1d.

Each channel is shifted and scaled to zero mean and unit variance over the batch (and the image),
then given a learnt scale and shift: deep networks train faster and with larger learning rates.
"""
from __future__ import annotations

import numpy as np

from netbuilder.core.layers.base import Layer

# Memory orders of an (N, C, H, W) array, as the axis order that is C-contiguous: batch-innermost
# (C, H, W, N) from a convolution, channel-major (C, N, H, W), plain NCHW (also (N, C) input).
LAYOUTS = ((1, 2, 3, 0), (1, 0, 2, 3), (0, 1, 2, 3))


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
    return a.reshape([shape[k] for k in order]).transpose(np.argsort(order))


def as_4d(x: np.ndarray) -> np.ndarray:
    return x if x.ndim == 4 else x[:, :, None, None]


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
        c = self.num_features
        self.params = {"weight": np.ones(c, self.dtype), "bias": np.zeros(c, self.dtype)}
        # As torch names them; num_batches_tracked counts the batches the statistics have seen
        # (torch needs it in a state_dict; with a fixed momentum it changes nothing).
        self.buffers = {"running_mean": np.zeros(c, self.dtype), "running_var": np.ones(c, self.dtype),
                        "num_batches_tracked": np.zeros((), np.int64)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._saved: tuple | None = None  # x - mean as (A, C, B), 1/std, batch statistics?, order, shape

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
        per_channel = (1, c, 1)
        rm, rv = self.buffers["running_mean"], self.buffers["running_var"]
        out = np.empty_like(x3)
        # One value per channel has no variance to take (torch raises): such a batch, e.g. the last
        # one of an epoch after a dense block, is normalised with the running statistics instead.
        batch_stats = training and not self.frozen and count >= 2
        if batch_stats:
            mean = x3.sum(axis=(0, 2)) / dt(count)
            centred = np.subtract(x3, mean.reshape(per_channel))
            np.multiply(centred, centred, out=out)  # out is scratch until y is written into it
            var = out.sum(axis=(0, 2)) / dt(count)  # biased: what normalises (pairwise sums, as the mean)
            m = dt(self.momentum)
            rm *= dt(1) - m
            rm += m * mean
            rv *= dt(1) - m
            rv += (m * dt(count / (count - 1))) * var  # unbiased, as torch keeps it
            self.buffers["num_batches_tracked"] += 1
        else:
            mean, var = rm, rv
            centred = np.subtract(x3, mean.reshape(per_channel)) if training else None
        inv_std = dt(1) / np.sqrt(var + dt(self.eps))
        # y = weight * x_hat + bias = (x - mean) * scale + bias, scale = weight / std
        scale = self.params["weight"] * inv_std
        if training:  # x - mean and 1/std kept for backward (x_hat = centred * inv_std, never stored)
            np.multiply(centred, scale.reshape(per_channel), out=out)
            np.add(out, self.params["bias"].reshape(per_channel), out=out)
            self._saved = (centred, inv_std, batch_stats, order, shape)
        else:  # inference: one multiply-add per value, y = x * scale + shift
            np.multiply(x3, scale.reshape(per_channel), out=out)
            np.add(out, (self.params["bias"] - mean * scale).reshape(per_channel), out=out)
        y = nchw(out, order, x4.shape)
        return y if len(shape) == 4 else y[:, :, 0, 0]

    def backward(self, grad_out: np.ndarray) -> np.ndarray | None:
        # With x_hat = (x - mean) / std and Z = weight * x_hat + bias, δ = ∂L/∂Z per value:
        #   ∂L/∂bias = Σ δ,  ∂L/∂weight = Σ δ·x_hat  (sums over N, H, W: M values per channel)
        #   ∂L/∂x = weight / std · (δ - Σδ / M - x_hat · Σ(δ·x_hat) / M)
        # the last two terms because every x moves the batch mean and variance (frozen or fixed
        # running statistics don't move: then ∂L/∂x = weight / std · δ).
        if self._saved is None:
            raise RuntimeError("BatchNorm.backward needs a forward with training=True first")
        centred, inv_std, batch_stats, order, shape = self._saved
        grad_out = np.asarray(grad_out)
        if grad_out.shape != shape:
            raise ValueError(f"BatchNorm.backward expects a gradient of shape {shape}, got {grad_out.shape}")
        g = grad_out.astype(self.dtype, copy=False)
        g3 = channel_view(as_4d(g), order)  # in the input's memory order (a copy if g has another)
        dweight = np.einsum("acb,acb->c", g3, centred) * inv_std  # Σ δ·x_hat, without an x_hat pass
        dbias = g3.sum(axis=(0, 2))
        self.grads = {"weight": dweight, "bias": dbias}
        if not self.needs_input_grad:
            return None
        dt, per_channel = self.dtype.type, (1, self.num_features, 1)
        k = self.params["weight"] * inv_std
        dx = np.multiply(g3, k.reshape(per_channel))
        if batch_stats:  # minus x_hat · k Σ(δ·x_hat) / M = centred · (k inv_std Σ(δ·x_hat) / M), and k Σδ / M
            count = dt(centred.shape[0] * centred.shape[2])
            tmp = np.multiply(centred, (k * inv_std * dweight / count).reshape(per_channel))
            tmp += (k * dbias / count).reshape(per_channel)
            np.subtract(dx, tmp, out=dx)
        y = nchw(dx, order, as_4d(g).shape)
        return y if len(shape) == 4 else y[:, :, 0, 0]
