"""Per-channel normalisation: statistics from the training split only, applied the same everywhere.

The statistics are stored in the project as ``dataset["normalization"] = {"mean": [...],
"std": [...]}`` (one number per channel), so training, the GUI's views and every export apply
one transform: ``(x - mean) / std``. Computing them on the training split alone keeps the
validation and test images unseen.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np

from netbuilder.core.datasets.base import DatasetError

MIN_STD = 1e-6  # a channel with less spread than this is constant: centred, not scaled
_CHUNK = 4096  # images per pass at most, bounding the float64 temporaries...
_CHUNK_BYTES = 32 << 20  # ...to about this size for large images (MNIST-sized ones stay at 4096)


def compute_normalization(x_train: np.ndarray, indices: np.ndarray | None = None) -> dict[str, list[float]]:
    """{"mean": [C floats], "std": [C floats]} of (N, C, H, W) images, per channel.

    ``indices`` limits the statistics to those images (e.g. the training part left after a
    validation split) without copying them all. Accumulated in float64 over chunks of images
    (two passes: mean, then squared deviations) so the result does not depend on float32
    rounding. A constant channel gets std 1.0. ``x_train`` may be ``MappedImages`` (a set read
    from disk): only a chunk of it is in memory at a time.
    """
    from netbuilder.core.datasets.mapped import is_mapped

    x = x_train if is_mapped(x_train) else np.asarray(x_train)
    if x.ndim != 4 or x.dtype.kind != "f":
        raise DatasetError(f"normalisation needs (N, C, H, W) float images, got {x.dtype} with shape {x.shape}")
    idx = np.arange(len(x)) if indices is None else np.asarray(indices)
    if len(idx) == 0:
        raise DatasetError("normalisation needs at least one training image, got none")
    n, c, h, w = len(idx), *x.shape[1:]
    count = n * h * w
    per = max(1, min(_CHUNK, _CHUNK_BYTES // (c * h * w * 8)))

    def chunks():
        for lo in range(0, n, per):
            part = idx[lo:lo + per]
            yield x[lo:lo + per] if indices is None else x[part]

    total = np.zeros(c, np.float64)
    for part in chunks():
        total += part.sum(axis=(0, 2, 3), dtype=np.float64)
    mean = total / count
    sq = np.zeros(c, np.float64)
    for part in chunks():
        d = part.astype(np.float64)
        d -= mean[None, :, None, None]  # in place: one float64 temporary per chunk
        sq += np.einsum("nchw,nchw->c", d, d)
    std = np.sqrt(sq / count)
    if not (np.isfinite(mean).all() and np.isfinite(std).all()):
        raise DatasetError("normalisation: the training images contain NaN or infinite values")
    std = np.where(std < MIN_STD, 1.0, std)
    return {"mean": [float(v) for v in mean], "std": [float(v) for v in std]}


def check_normalization(stats: Any, channels: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) as float64 (C,) arrays; DatasetError names what is wrong with ``stats``."""
    if not isinstance(stats, Mapping) or set(stats) != {"mean", "std"}:
        raise DatasetError(
            f'normalization must be {{"mean": [...], "std": [...]}} (one number per channel), got {stats!r}'
        )
    out = []
    for key in ("mean", "std"):
        v = stats[key]
        if (
            not isinstance(v, (list, tuple))
            or not v
            or not all(isinstance(e, numbers.Real) and not isinstance(e, bool) and math.isfinite(e) for e in v)
        ):
            raise DatasetError(f"normalization {key} must be a non-empty list of finite numbers, got {v!r}")
        out.append(np.array(v, np.float64))
    mean, std = out
    if len(mean) != len(std):
        raise DatasetError(f"normalization has {len(mean)} means but {len(std)} stds; one of each per channel")
    if (std <= 0).any():
        raise DatasetError(f"normalization std values must be > 0, got {stats['std']!r}")
    if channels is not None and len(mean) != channels:
        raise DatasetError(f"normalization is for {len(mean)} channel(s) but the images have {channels}")
    return mean, std


def apply_normalization(x: np.ndarray, stats: Mapping[str, Any]) -> np.ndarray:
    """``(x - mean) / std`` per channel for (N, C, H, W) images: a new float32 array (float64 stays float64)."""
    x = np.asarray(x)
    if x.ndim != 4:
        raise DatasetError(f"normalisation applies to (N, C, H, W) images, got shape {x.shape}")
    mean, std = check_normalization(stats, x.shape[1])
    dtype = np.float64 if x.dtype == np.float64 else np.float32
    out = x.astype(dtype, copy=True)
    out -= mean.astype(dtype)[None, :, None, None]
    out /= std.astype(dtype)[None, :, None, None]
    return out


def invert_normalization(x: np.ndarray, stats: Mapping[str, Any]) -> np.ndarray:
    """Undo ``apply_normalization`` (for showing a normalised image): ``x * std + mean``."""
    x = np.asarray(x)
    if x.ndim != 4:
        raise DatasetError(f"normalisation applies to (N, C, H, W) images, got shape {x.shape}")
    mean, std = check_normalization(stats, x.shape[1])
    dtype = np.float64 if x.dtype == np.float64 else np.float32
    out = x.astype(dtype, copy=True)
    out *= std.astype(dtype)[None, :, None, None]
    out += mean.astype(dtype)[None, :, None, None]
    return out
