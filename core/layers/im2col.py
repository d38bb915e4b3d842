"""im2col / col2im on batch-innermost (C, H, W, N) arrays, for convolutions and pooling.

With the batch as the innermost axis, a window row of Wo pixels is one contiguous run of
Wo * N values (stride 1), so copies and adds run at memcpy speed even for small images.
Columns are laid out (C, kh, kw, Ho, Wo, N), i.e. a (C*kh*kw, Ho*Wo*N) matrix, and a
convolution weight (F, C*kh*kw) @ cols comes out (F, Ho, Wo, N): the same layout again.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided


def offset_slices(i: int, j: int, stride: tuple[int, int], out_hw: tuple[int, int]) -> tuple[slice, slice]:
    """(rows, cols) of a padded input read by kernel offset (i, j) for every output pixel."""
    (sh, sw), (ho, wo) = stride, out_hw
    return slice(i, i + (ho - 1) * sh + 1, sh), slice(j, j + (wo - 1) * sw + 1, sw)


def window_view(src: np.ndarray, kernel, stride, out_hw) -> np.ndarray:
    """Read-only (C, kh, kw, Ho, Wo, N) view of every kernel offset of (C, Hp, Wp, N) ``src``."""
    c, _, _, n = src.shape
    sc, sy, sx, sn = src.strides
    (kh, kw), (sh, sw), (ho, wo) = kernel, stride, out_hw
    return as_strided(src, (c, kh, kw, ho, wo, n), (sc, sy, sx, sy * sh, sx * sw, sn), writeable=False)


def col2im(dcols: np.ndarray, dxp: np.ndarray, kernel, stride, out_hw) -> None:
    """Add (C, kh, kw, Ho, Wo, N) column gradients onto the (C, Hp, Wp, N) ``dxp``, in place.

    One add per kernel offset, each over distinct pixels, so no scatter-add is needed.
    """
    kh, kw = kernel
    for i in range(kh):
        for j in range(kw):
            rows, cols = offset_slices(i, j, stride, out_hw)
            target = dxp[:, rows, cols]
            np.add(target, dcols[:, i, j], out=target)
