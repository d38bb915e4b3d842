"""How well a classifier does, computed once for the command line (``netbuilder evaluate``) and
the window (the confusion matrix, the evaluation report): plain numpy.

- ``confusion_matrix(true, predicted, classes)``: (K, K) counts, rows the true class, columns
  the predicted one.
- ``class_probabilities(outputs, activation)``: (N, K) probabilities from the network's outputs
  (a softmax output as it is; one sigmoid output p as [1 - p, p]; anything else through a softmax).
- ``evaluate_network(network, x, y, class_names)``: that report for a network on raw images, and
  ``evaluation_split(project, dataset, "test" | "val")`` the held-out images to give it (the
  validation split as training holds it out).
- ``classification_report(true, probabilities, class_names, predicted=None)``: accuracy,
  per-class precision, recall, F1 and support, their macro and weighted averages, the confusion
  matrix and the most confidently wrong samples, as a ``ClassificationReport`` (``to_dict()`` for
  JSON).

Conventions: a class never predicted has precision 0, one never present recall 0, and F1 is 0
where precision + recall is 0 (no 0/0 warnings, as scikit-learn's ``zero_division=0``). The
macro average is the plain mean over the classes that occur (true or predicted: support > 0 or
predicted at least once), the weighted average weights each class by its support (so the
weighted recall is the accuracy), as scikit-learn's ``classification_report`` computes them.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


def confusion_matrix(true: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """(K, K) int64 counts, rows = true class, columns = predicted class; labels outside 0..K-1 are
    left out."""
    true = np.asarray(true, np.int64).reshape(-1)
    predicted = np.asarray(predicted, np.int64).reshape(-1)
    if true.shape != predicted.shape:
        raise ValueError(f"{len(true)} true labels but {len(predicted)} predictions")
    keep = (true >= 0) & (true < classes) & (predicted >= 0) & (predicted < classes)
    flat = np.bincount(true[keep] * classes + predicted[keep], minlength=classes * classes)
    return flat.reshape(classes, classes)


def class_probabilities(outputs: np.ndarray, activation: str | None) -> np.ndarray:
    """(N, K) float64 probabilities from the last block's outputs (N, F).

    A softmax output already is one; one sigmoid output p gives [1 - p, p] (an output of another
    activation goes through a sigmoid first); any other output (identity, relu...) is passed
    through a softmax so that the classes still compare. A row with a non-finite output is NaN.
    """
    out = np.asarray(outputs, np.float64)
    out = out.reshape(len(out), -1)
    n, f = out.shape
    bad = ~np.isfinite(out).all(axis=1)
    if f == 1:
        z = out[:, 0]
        with np.errstate(over="ignore", invalid="ignore"):
            p = z if activation == "sigmoid" else 1 / (1 + np.exp(-z))
        p = np.clip(np.nan_to_num(p), 0, 1)
        probs = np.stack([1 - p, p], axis=1)
    elif activation == "softmax":
        probs = out.copy()
    else:
        safe = np.where(bad[:, None], 0.0, out)
        e = np.exp(safe - safe.max(axis=1, keepdims=True))
        probs = e / e.sum(axis=1, keepdims=True)
    probs[bad] = np.nan
    return probs


def predicted_classes(probabilities: np.ndarray) -> np.ndarray:
    """(N,) the most probable class of each row (the first on a tie; 0 for a NaN row)."""
    p = np.asarray(probabilities, np.float64)
    return np.argmax(np.nan_to_num(p, nan=-1.0), axis=1).astype(np.int64)


@dataclass(frozen=True)
class Mistake:
    """A wrongly classified sample: its index in the data, true and predicted class, and the
    probability the network gave the predicted class."""

    index: int
    true: int
    predicted: int
    confidence: float


def most_confidently_wrong(true: np.ndarray, probabilities: np.ndarray, predicted: np.ndarray | None = None,
                           count: int = 8) -> list[Mistake]:
    """The ``count`` wrong samples whose predicted class had the highest probability, most confident
    first (ties: the lower index first). NaN rows are not among them."""
    true = np.asarray(true, np.int64).reshape(-1)
    p = np.asarray(probabilities, np.float64)
    pred = predicted_classes(p) if predicted is None else np.asarray(predicted, np.int64).reshape(-1)
    conf = p[np.arange(len(p)), np.clip(pred, 0, p.shape[1] - 1)] if len(p) else np.zeros(0)
    wrong = np.flatnonzero((pred != true) & np.isfinite(conf))
    order = wrong[np.lexsort((wrong, -conf[wrong]))][:max(int(count), 0)]
    return [Mistake(int(i), int(true[i]), int(pred[i]), float(conf[i])) for i in order]


def per_class(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, f1 float64, support int64), each (K,), from a confusion matrix."""
    m = np.asarray(matrix, np.int64)
    tp = np.diag(m).astype(np.float64)
    support = m.sum(axis=1)
    predicted = m.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(tp), where=both > 0)
    return precision, recall, f1, support


@dataclass(frozen=True)
class ClassificationReport:
    """The figures of one evaluation; arrays are indexed by class."""

    class_names: list[str]
    matrix: np.ndarray  # (K, K) int64, rows true, columns predicted
    accuracy: float
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray  # int64: true samples per class
    macro: dict[str, float]  # precision, recall, f1: mean over the classes that occur
    weighted: dict[str, float]  # the same weighted by support
    mistakes: list[Mistake] = field(default_factory=list)  # the most confidently wrong, most confident first

    @property
    def total(self) -> int:
        return int(self.support.sum())

    @property
    def correct(self) -> int:
        return int(np.trace(self.matrix))

    def to_dict(self) -> dict:
        """Plain JSON-able values: lists and floats (NaN as None)."""
        def num(v) -> float | None:
            v = float(v)
            return v if math.isfinite(v) else None

        return {
            "accuracy": num(self.accuracy), "correct": self.correct, "total": self.total,
            "class_names": list(self.class_names),
            "per_class": [{"class": name, "precision": num(p), "recall": num(r), "f1": num(f), "support": int(s)}
                          for name, p, r, f, s in zip(self.class_names, self.precision, self.recall, self.f1,
                                                      self.support)],
            "macro_avg": {k: num(v) for k, v in self.macro.items()},
            "weighted_avg": {k: num(v) for k, v in self.weighted.items()},
            "confusion_matrix": self.matrix.tolist(),
            "most_confidently_wrong": [
                {"index": m.index, "true": m.true, "true_name": self.class_names[m.true],
                 "predicted": m.predicted, "predicted_name": self.class_names[m.predicted],
                 "confidence": num(m.confidence)} for m in self.mistakes],
        }


def classification_report(true: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str] | None = None,
                          predicted: np.ndarray | None = None, wrong: int = 8) -> ClassificationReport:
    """Every figure of ``true`` labels (N,) against ``probabilities`` (N, K).

    ``predicted`` (N,) defaults to each row's most probable class; pass ``network.classify(outputs)``
    to count exactly the engine's decisions. ``class_names`` defaults to "class 0", "class 1", ...
    ``wrong`` is how many of the most confidently wrong samples to keep.
    """
    p = np.asarray(probabilities, np.float64)
    true = np.asarray(true, np.int64).reshape(-1)
    if p.ndim != 2 or len(p) != len(true):
        raise ValueError(f"{len(true)} labels but probabilities of shape {p.shape}")
    k = p.shape[1]
    if len(true) and (true.min() < 0 or true.max() >= k):
        raise ValueError(f"labels must be 0..{k - 1} for {k} classes, got {int(true.min())}..{int(true.max())}")
    names = [str(n) for n in class_names] if class_names is not None else [f"class {i}" for i in range(k)]
    if len(names) < k:
        names += [f"class {i}" for i in range(len(names), k)]
    names = names[:k]
    pred = predicted_classes(p) if predicted is None else np.asarray(predicted, np.int64).reshape(-1)
    matrix = confusion_matrix(true, pred, k)
    precision, recall, f1, support = per_class(matrix)
    occurs = (support > 0) | (matrix.sum(axis=0) > 0)
    total = int(support.sum())

    def averages(weights) -> dict[str, float]:
        if weights.sum() <= 0:
            return {"precision": 0.0, "recall": 0.0, "f1": 0.0}
        return {name: float(np.average(v, weights=weights))
                for name, v in (("precision", precision), ("recall", recall), ("f1", f1))}

    return ClassificationReport(
        class_names=names, matrix=matrix, accuracy=float(np.trace(matrix) / total) if total else 0.0,
        precision=precision, recall=recall, f1=f1, support=support,
        macro=averages(occurs.astype(np.float64)), weighted=averages(support.astype(np.float64)),
        mistakes=most_confidently_wrong(true, p, pred, wrong),
    )


# --- a network on held-out data ----------------------------------------------------------------
def evaluation_split(project, dataset, split: str) -> tuple[np.ndarray, np.ndarray, str]:
    """(x, y, what) of ``split``: "test", the dataset's test split; "val", the validation split
    training holds out (the dataset's own, else ``train_val_split`` of the training data by the
    project's validation_fraction and seed, as ``Trainer`` does). ValueError when there is none."""
    from netbuilder.core.datasets.split import train_val_split

    if split not in ("test", "val"):
        raise ValueError(f"the split to evaluate on is 'test' or 'val', got {split!r}")
    has_test = dataset.x_test is not None and len(dataset.x_test) > 0
    y = np.asarray(dataset.y_train, np.int64)
    if dataset.x_val is not None:
        val, x_all, y_all = None, dataset.x_val, np.asarray(dataset.y_val, np.int64)
    else:
        _, val = train_val_split(y, project.training.validation_fraction, project.training.seed)
        x_all, y_all = dataset.x_train, y
    has_val = val is None or len(val) > 0
    if not has_test and not has_val:
        raise ValueError(f"the dataset {dataset.name!r} has no test split and the project holds out no validation "
                         f"split (validation_fraction {project.training.validation_fraction}): no images were kept "
                         "from training to evaluate on")
    if split == "test":
        if not has_test:
            raise ValueError(f"the dataset {dataset.name!r} has no test split; evaluate on training's "
                             "validation split with --split val")
        return dataset.x_test, np.asarray(dataset.y_test, np.int64), "test split"
    if not has_val:
        raise ValueError(f"the project holds out no validation split (validation_fraction "
                         f"{project.training.validation_fraction}); evaluate on the test split")
    if val is None:
        return x_all, y_all, "validation split"
    from netbuilder.core.datasets.mapped import is_mapped  # a set on disk: a view, not a float copy
    return x_all.subset(val) if is_mapped(x_all) else x_all[val], y_all[val], "validation split"


def evaluate_network(network, x: np.ndarray, y: np.ndarray, class_names: Sequence[str] | None = None,
                     wrong: int = 8) -> ClassificationReport:
    """``classification_report`` of a ``core.network.Network`` on raw [0, 1] images ``x`` (N, C, H, W)
    and labels ``y``: the engine's outputs (``network.predict``, which applies the normalisation) and
    its own decisions (``network.classify``)."""
    from netbuilder.core.datasets.mapped import is_mapped  # a set on disk is predicted batch by batch

    outputs = network.predict(x if is_mapped(x) else np.asarray(x, network.dtype))
    activation = network.stages[-1].info.block.get("activation")
    return classification_report(y, class_probabilities(outputs, activation), class_names,
                                 predicted=network.classify(outputs), wrong=wrong)


__all__ = ["evaluation_split", "evaluate_network", "confusion_matrix", "class_probabilities", "predicted_classes",
           "Mistake", "most_confidently_wrong", "per_class", "ClassificationReport", "classification_report"]
