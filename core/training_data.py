"""The images one run trains and validates on: checked against the network, split, normalised.

``TrainingData`` is where the trainer's data comes from: it checks the dataset against the
network (shape, classes, labels), joins a source's own validation split after the training
images, holds out a stratified share otherwise, computes the input normalisation from the
training split, and hands out batches (``gather``) and validation chunks (``rows``) in the
network's dtype. Nothing else in the trainer reads the dataset's arrays.

A set too large for memory (``MappedImages``: uint8 on disk) stays there: ``x`` is a view of its
training then validation rows, and each batch is read and converted to float as it is gathered.
"""
from __future__ import annotations

import numpy as np

from netbuilder.core.datasets.mapped import is_mapped
from netbuilder.core.datasets.normalize import compute_normalization
from netbuilder.core.datasets.split import train_val_split
from netbuilder.core.errors import TrainingError


class TrainingData:
    """``x`` (N, C, H, W) and ``y`` (N,) int64 of training then validation images, with the
    indices of each split; see the module."""

    def __init__(self, project, dataset, network, validation_fraction: float, seed: int):
        x, y = dataset.x_train, np.asarray(dataset.y_train)
        expected = tuple(network.project.input_shape)
        if tuple(x.shape[1:]) != expected:
            raise TrainingError(
                f"the dataset's images are {dims(x.shape[1:])} (channels x height x width) but the "
                f"network's input is {dims(expected)}; change the project's input shape or the dataset")
        outputs = network.output_features
        classes = 2 if outputs == 1 else outputs  # one sigmoid output separates two classes
        needed = max(int(getattr(dataset, "num_classes", 0) or 0), int(y.max()) + 1 if len(y) else 0)
        if len(y) and y.min() < 0:
            raise TrainingError(f"the dataset has a negative label ({int(y.min())}); labels must be 0, 1, 2, ...")
        if needed > classes:
            raise TrainingError(
                f"the dataset has {needed} classes but the network has {outputs} output"
                f"{'s' if outputs != 1 else ''}, enough for {classes}; set the last block's units "
                f"(and the project's num_classes) to {needed}")
        x_val = getattr(dataset, "x_val", None)
        self.mapped = is_mapped(x)
        if x_val is not None:  # the source's own validation split: after the training images
            n = len(x)
            # A mapped set's splits are views of one store: joined without reading an image.
            if self.mapped and is_mapped(x_val):
                x = x.join(x_val)
            else:
                x = np.concatenate([np.asarray(x), np.asarray(x_val)])
            self.mapped = is_mapped(x)
            y = np.concatenate([y, np.asarray(dataset.y_val)])
        self.dtype = network.dtype
        self.x = x if self.mapped else np.asarray(x, dtype=network.dtype)  # no copy for the usual float32 data
        self._scratch = None  # a mapped set's uint8 batch buffer, reused
        self.y = y.astype(np.int64, copy=False)
        if x_val is not None:
            self.train_idx, self.val_idx = np.arange(n, dtype=np.int64), np.arange(n, len(y), dtype=np.int64)
        else:
            self.train_idx, self.val_idx = train_val_split(self.y, validation_fraction, seed)
        # Input normalisation: statistics of the training split alone, stored in the project so
        # that the saved weights, the views and every export apply the same transform. A project
        # that says "normalization": null trains on the raw [0, 1] pixels.
        if isinstance(project.dataset, dict) and "normalization" not in project.dataset and len(self.train_idx):
            project.dataset["normalization"] = compute_normalization(self.x, self.train_idx)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """(C, H, W) of one image."""
        return tuple(self.x.shape[1:])

    def gather(self, idx: np.ndarray, xb: np.ndarray, yb: np.ndarray) -> None:
        """Fill ``xb``/``yb`` (buffers of len(idx) rows) with the images and labels at ``idx``."""
        if self.mapped:  # the batch's bytes from disk, to float in ``xb``: no full-size float copy anywhere
            if self._scratch is None or len(self._scratch) < len(idx):
                self._scratch = np.empty((len(idx), *self.sample_shape), np.uint8)
            self.x.gather(idx, xb, self._scratch)
        else:
            np.take(self.x, idx, axis=0, out=xb, mode="clip")
        np.take(self.y, idx, out=yb, mode="clip")

    def rows(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """New arrays of the images and labels at ``idx`` (validation chunks, sample pickers)."""
        return np.asarray(self.x[idx], self.dtype), self.y[idx]

    def view(self, idx: np.ndarray):
        """The images and labels at ``idx`` as ``rows`` gives them, except that a mapped set's
        images stay a view on disk (a whole split that may not fit in memory), read as indexed."""
        return (self.x.subset(idx), self.y[idx]) if self.mapped else self.rows(idx)


def dims(shape) -> str:
    """A shape as the app writes it: ``1 x 28 x 28``."""
    return " x ".join(str(int(d)) for d in shape)
