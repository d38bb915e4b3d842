"""What every dataset loader returns: images and labels in the engine's layout, checked once.

Loaders (the generated shapes, and file formats such as IDX, image folders, npz, CSV) build a
``Dataset``; its constructor rejects anything the trainer could trip over later, so a bad file
fails at load time with a message naming the problem rather than mid-epoch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


class DatasetError(ValueError):
    """A dataset spec or a dataset's contents cannot be used; the message says which and why."""


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """Labelled images for classification.

    ``x_*`` are (N, C, H, W) float32 in [0, 1]; ``y_*`` are (N,) int64 in [0, num_classes).
    ``class_names[k]`` names label k. The test split is optional (both arrays or neither), and so
    is a validation split of the source's own (an image folder's ``val/``): without one, the
    trainer holds out a share of the training images.
    Loaders may hand out read-only arrays (the shapes loader does, since they are cached and
    shared); copy before modifying. A set too large for memory has ``MappedImages`` instead
    (``core.datasets.mapped``: uint8 on disk, read as float32 by rows), which index like arrays.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    class_names: list[str]
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise DatasetError(f"dataset name must be a non-empty string, got {self.name!r}")
        names = self.class_names
        if isinstance(names, str) or not isinstance(names, (list, tuple)):
            raise DatasetError(f"{self.name}: class_names must be a list of strings, got {names!r}")
        if len(names) < 2:
            raise DatasetError(f"{self.name}: a classifier needs at least 2 classes, got {list(names)!r}")
        bad = [n for n in names if not isinstance(n, str) or not n]
        if bad:
            raise DatasetError(f"{self.name}: class names must be non-empty strings, got {bad[0]!r}")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise DatasetError(f"{self.name}: class names must be unique, {dupes[0]!r} appears twice or more")
        object.__setattr__(self, "class_names", list(names))

        _check_images(self.name, "x_train", self.x_train, None)
        _check_labels(self.name, "y_train", self.y_train, len(self.x_train), len(names))
        for split in ("test", "val"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if (x is None) != (y is None):
                given, missing = (f"x_{split}", f"y_{split}") if y is None else (f"y_{split}", f"x_{split}")
                raise DatasetError(f"{self.name}: {given} was given without {missing}; give both or neither")
            if x is not None:
                _check_images(self.name, f"x_{split}", x, self.x_train.shape[1:])
                _check_labels(self.name, f"y_{split}", y, len(x), len(names))

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        c, h, w = self.x_train.shape[1:]
        return (int(c), int(h), int(w))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __repr__(self) -> str:
        val = f", val={len(self.x_val)}" if self.x_val is not None else ""
        test = f", test={len(self.x_test)}" if self.x_test is not None else ""
        return (
            f"Dataset({self.name!r}, train={len(self.x_train)}{val}{test}, "
            f"input_shape={self.input_shape}, classes={self.num_classes})"
        )


def _check_images(name: str, field: str, x: Any, chw: tuple[int, ...] | None) -> None:
    from netbuilder.core.datasets.mapped import MappedImages

    mapped = isinstance(x, MappedImages)
    if not isinstance(x, np.ndarray) and not mapped:
        raise DatasetError(f"{name}: {field} must be a numpy array, got {type(x).__name__}")
    if x.ndim != 4:
        raise DatasetError(f"{name}: {field} must be (N, C, H, W), got shape {x.shape}")
    if x.dtype != np.float32:
        raise DatasetError(f"{name}: {field} must be float32, got {x.dtype}")
    if x.shape[0] < 1 or min(x.shape[1:]) < 1:
        raise DatasetError(f"{name}: {field} must hold at least one non-empty image, got shape {x.shape}")
    if chw is not None and x.shape[1:] != chw:
        raise DatasetError(
            f"{name}: {field} images are {x.shape[1:]} (C, H, W) but training images are {chw}"
        )
    if mapped:  # bytes / 255 lie in [0, 1] by construction; scanning them would read the whole set
        return
    lo, hi = float(x.min()), float(x.max())
    # Written as negations so NaN (which fails every comparison) is caught too.
    if not (lo >= 0.0 and hi <= 1.0):
        what = "NaN or infinite values" if not (np.isfinite(lo) and np.isfinite(hi)) else f"values in [{lo:g}, {hi:g}]"
        raise DatasetError(f"{name}: {field} pixel values must lie in [0, 1], got {what}")


def _check_labels(name: str, field: str, y: Any, n: int, num_classes: int) -> None:
    if not isinstance(y, np.ndarray):
        raise DatasetError(f"{name}: {field} must be a numpy array, got {type(y).__name__}")
    if y.ndim != 1:
        raise DatasetError(f"{name}: {field} must be one label per image (N,), got shape {y.shape}")
    if y.dtype != np.int64:
        raise DatasetError(f"{name}: {field} must be int64, got {y.dtype}")
    if len(y) != n:
        images = "x_train" if field == "y_train" else "x_test"
        raise DatasetError(f"{name}: {field} has {len(y)} labels but {images} has {n} images")
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= num_classes:
        bad = lo if lo < 0 else hi
        raise DatasetError(
            f"{name}: {field} labels must be in [0, {num_classes}) for {num_classes} classes, got {bad}"
        )
