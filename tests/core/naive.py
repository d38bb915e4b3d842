"""Plain-loop reference convolution and pooling, written for readability (test-only, slow)."""
from __future__ import annotations

import numpy as np


def pad(x: np.ndarray, pads, value=0.0) -> np.ndarray:
    t, b, l, r = pads
    return np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=value)


def out_size(size: int, k: int, s: int, before: int, after: int) -> int:
    return (size + before + after - k) // s + 1


def conv_forward(x, w, b, stride, pads):
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    sh, sw = stride
    ho, wo = out_size(h, kh, sh, pads[0], pads[1]), out_size(wd, kw, sw, pads[2], pads[3])
    xp = pad(x, pads)
    y = np.zeros((n, f, ho, wo), x.dtype)
    for i in range(n):
        for o in range(f):
            for r in range(ho):
                for q in range(wo):
                    window = xp[i, :, r * sh:r * sh + kh, q * sw:q * sw + kw]
                    y[i, o, r, q] = np.sum(window * w[o]) + b[o]
    return y


def conv_backward(x, w, stride, pads, g):
    """(dx, dw, db) of sum(g * conv_forward(x, w, b))."""
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    sh, sw = stride
    xp = pad(x, pads)
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for i in range(n):
        for o in range(f):
            for r in range(g.shape[2]):
                for q in range(g.shape[3]):
                    rows, cols = slice(r * sh, r * sh + kh), slice(q * sw, q * sw + kw)
                    dw[o] += g[i, o, r, q] * xp[i, :, rows, cols]
                    dxp[i, :, rows, cols] += g[i, o, r, q] * w[o]
    t, _, l, _ = pads
    return dxp[:, :, t:t + h, l:l + wd], dw, g.sum(axis=(0, 2, 3))


def pool_forward(x, mode, size, stride, pads):
    n, c, h, wd = x.shape
    kh, kw = size
    sh, sw = stride
    ho, wo = out_size(h, kh, sh, pads[0], pads[1]), out_size(wd, kw, sw, pads[2], pads[3])
    xp = pad(x, pads, -np.inf if mode == "max" else 0.0)
    y = np.zeros((n, c, ho, wo), x.dtype)
    for i in range(n):
        for ch in range(c):
            for r in range(ho):
                for q in range(wo):
                    window = xp[i, ch, r * sh:r * sh + kh, q * sw:q * sw + kw]
                    if mode == "max":
                        y[i, ch, r, q] = window.max()
                    elif mode == "average":
                        y[i, ch, r, q] = window.sum() / (kh * kw)
                    else:
                        y[i, ch, r, q] = window.sum()
    return y


def pool_backward(x, mode, size, stride, pads, g):
    """Gradient of sum(g * pool_forward(x)); max sends it to the first largest value of a window."""
    n, c, h, wd = x.shape
    kh, kw = size
    sh, sw = stride
    xp = pad(x, pads, -np.inf if mode == "max" else 0.0)
    dxp = np.zeros_like(xp)
    for i in range(n):
        for ch in range(c):
            for r in range(g.shape[2]):
                for q in range(g.shape[3]):
                    rows, cols = slice(r * sh, r * sh + kh), slice(q * sw, q * sw + kw)
                    if mode == "max":
                        window = xp[i, ch, rows, cols]
                        a, b = np.unravel_index(np.argmax(window), window.shape)  # first in row-major order
                        dxp[i, ch, r * sh + a, q * sw + b] += g[i, ch, r, q]
                    elif mode == "average":
                        dxp[i, ch, rows, cols] += g[i, ch, r, q] / (kh * kw)
                    else:
                        dxp[i, ch, rows, cols] += g[i, ch, r, q]
    t, _, l, _ = pads
    return dxp[:, :, t:t + h, l:l + wd]
