"""The project's ``training.class_weights``: None (every class 1), "balanced", or one positive
number a class, in class order; what the loss weighs each image's loss by (core/losses.py).

"balanced" is scikit-learn's ``n / (k * n_c)`` over the training split's labels (n images, k
classes, n_c of class c): each class then weighs as much in the loss as any other, whatever its
size. The trainer resolves it once the split is known (``resolve``); a class without training
images gets 1 and a note.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

BALANCED = "balanced"


def spec_problem(spec: Any) -> str | None:
    """What is wrong with a class_weights value, as "must be ..., got ..." (None: nothing)."""
    from netbuilder.core.project import _show

    if spec is None or spec == BALANCED:
        return None
    if isinstance(spec, str):
        return f'must be "balanced", a list of numbers (one a class) or null, got {_show(spec)}'
    if not isinstance(spec, (list, tuple)) or not spec:
        return f'must be "balanced" or a list of positive numbers, one a class, got {_show(spec)}'
    for i, v in enumerate(spec):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            return f"must hold positive numbers, one a class; weight {i + 1} (class {i}) is {_show(v)}"
    return None


def count_problem(spec: Any, outputs: int) -> str | None:
    """Why a list of weights does not fit a network of ``outputs`` outputs (one a class, or one
    binary output for two classes); None when it fits or is no list."""
    classes = 2 if outputs == 1 else outputs
    if not isinstance(spec, (list, tuple)) or len(spec) == classes:
        return None
    return (f"has {len(spec)} weight{'s' if len(spec) != 1 else ''} but the network has {classes} classes"
            f"{' (one binary output: classes 0 and 1)' if outputs == 1 else ''}; give one a class, in class "
            'order, or "balanced"')


def fixed(spec: Any) -> list[float] | None:
    """The weights a spec gives without the data: its list, or None ("balanced" waits for the split)."""
    return [float(v) for v in spec] if isinstance(spec, (list, tuple)) else None


def balanced(labels: np.ndarray, classes: int) -> tuple[np.ndarray, list[int]]:
    """n / (k * n_c) for each class of ``labels`` (int, 0 to classes - 1), and the classes that
    have no image (weight 1)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=classes)[:classes]
    n = int(counts.sum())
    weights = np.ones(classes, dtype=np.float64)
    present = counts > 0
    weights[present] = n / (classes * counts[present].astype(np.float64))
    return weights, [int(c) for c in np.flatnonzero(~present)]


def resolve(spec: Any, train_labels: np.ndarray, classes: int,
            class_names=None) -> tuple[list[float] | None, list[str]]:
    """(the weights a run trains with, the notes to tell the user) for the training split's labels."""
    if spec is None:
        return None, []
    names = [str(n) for n in class_names] if class_names is not None and len(class_names) == classes \
        else [str(c) for c in range(classes)]
    if spec == BALANCED:
        weights, empty = balanced(train_labels, classes)
        notes = [f"class weights (balanced): {describe(weights, names)}"]
        if empty:
            notes.append(f"class weights: {', '.join(names[c] for c in empty)} "
                         f"{'has' if len(empty) == 1 else 'have'} no training image: weight 1")
        return weights.tolist(), notes
    weights = fixed(spec)
    return weights, [f"class weights: {describe(weights, names)}"]


def describe(weights, names: list[str]) -> str:
    """"cat 0.62, dog 2.5, ..." (three significant digits), at most 20 classes then a count."""
    shown = [f"{name} {w:.3g}" for name, w in zip(names[:20], weights)]
    more = len(weights) - len(shown)
    return ", ".join(shown) + (f", … ({more} more)" if more > 0 else "")


def attach(network, spec: Any, train_labels: np.ndarray, class_names=None) -> tuple[list[float] | None, list[str]]:
    """Resolve ``spec`` for the training split's labels and give the weights to ``network``'s loss
    (its only loss: training and validation weigh alike); returns (the weights, the notes)."""
    outputs = network.output_features
    weights, notes = resolve(spec, train_labels, 2 if outputs == 1 else outputs, class_names)
    network.loss.class_weights = weights
    return weights, notes
