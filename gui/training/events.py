"""Qt-free pieces of a training run in the window: the run request, and what the worker computes
for the views (confusion matrix, gradient norms, dead ReLUs, class probabilities, run labels).
The confusion matrix and the probabilities are ``core.metrics``'s, the same as ``netbuilder evaluate``'s.

Everything here is plain numpy on copies, cheap enough to run in the worker between batches.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from netbuilder.core import metrics
from netbuilder.core.blocks import KINDS
from netbuilder.core.metrics import confusion_matrix
from netbuilder.core.project import Project, TrainingSettings

MODES = ("new", "continue", "checkpoint")


@dataclass(frozen=True)
class RunRequest:
    """What the controller asks the worker to run.

    ``project`` is a deep copy of the document's project (the worker never sees the document);
    ``mode`` is "new" (fresh weights), "continue" (more epochs on the last run's trainer) or
    "checkpoint" (continue the run saved in the checkpoint file ``checkpoint``). ``engine`` and
    ``device`` choose what does the arithmetic (see ``core.torch_engine.make_trainer``);
    ``record_to``, the saved project's file, has the run recorded next to it (``core.run_history``).
    """

    project: Project
    base_dir: Path | None = None
    mode: str = "new"
    checkpoint: Path | None = None
    engine: str = "numpy"
    device: str | None = None
    record_to: Path | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"run mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if (self.mode == "checkpoint") != (self.checkpoint is not None):
            raise ValueError("a checkpoint path is needed for mode 'checkpoint' and only for it")


def run_label(number: int, settings: TrainingSettings, note: str = "") -> str:
    """How the curves' legend names a run, e.g. "run 2 · adam lr 0.001 · batch 64"."""
    parts = [f"run {number}", f"{settings.optimizer} lr {settings.learning_rate:g}", f"batch {settings.batch_size}"]
    if settings.optimizer in ("momentum", "nesterov"):
        parts[1] += f" m {settings.momentum:g}"
    if settings.weight_decay:
        parts.append(f"wd {settings.weight_decay:g}")
    if settings.loss != "cross_entropy":
        parts.append(settings.loss.replace("_", " "))
    if note:
        parts.append(note)
    return " · ".join(parts)


def same_training_setup(a: Project, b: Project) -> str:
    """"" when a run of ``a`` can go on with ``b``'s settings, else what differs (for a message).

    The network, the data and every setting that shapes the trainer must match; the learning
    rate and the number of epochs may change (they apply to the continuation).
    """
    if a.blocks != b.blocks or tuple(a.input_shape) != tuple(b.input_shape) or a.num_classes != b.num_classes:
        return "the network changed"
    if dataset_source(a.dataset) != dataset_source(b.dataset):
        return "the dataset changed"
    for name in ("loss", "optimizer", "momentum", "weight_decay", "batch_size", "validation_fraction", "seed"):
        old, new = getattr(a.training, name), getattr(b.training, name)
        if old != new:
            return f"{name.replace('_', ' ')} changed from {old!r} to {new!r}"
    return ""


def dataset_source(spec) -> dict:
    """A dataset spec without the keys that describe the project's use of it (normalisation)."""
    return {k: v for k, v in spec.items() if k != "normalization"} if isinstance(spec, dict) else {}


def x_in_epochs(epoch: int, batch: int, batches_per_epoch: int) -> float:
    """Where batch ``batch`` (1-based) of ``epoch`` (1-based) sits on an axis counted in epochs."""
    return (epoch - 1) + batch / batches_per_epoch


def class_probabilities(output: np.ndarray, activation: str | None) -> np.ndarray:
    """(K,) probabilities from the last block's output (F,) for one sample
    (``core.metrics.class_probabilities``: NaN when the output is not finite)."""
    return metrics.class_probabilities(np.asarray(output).reshape(1, -1), activation)[0]


def dead_relu_fractions(blocks) -> dict[str, float]:
    """{block name: share of ReLU units that output 0 for every sample} of ``forward_blocks`` or
    ``forward_stages`` output.

    ``blocks`` is ``[(BlockInfo or Stage, output (N, ...)), ...]``; a stage is named by its path
    ("res1.batchnorm1" inside a group); a unit is one channel at one position (conv) or one feature
    (dense); only blocks whose activation is "relu" count.
    """
    out = {}
    for block, x in blocks:
        info = getattr(block, "info", block)
        spec = KINDS.get(info.kind)
        if info.block.get("activation") != "relu" or spec is None or not spec.activation_field:
            continue
        alive = (x.reshape(len(x), -1) > 0).any(axis=0)
        out[getattr(block, "path", None) or info.name] = float(1.0 - alive.mean()) if alive.size else 0.0
    return out


def dead_relu_shares(network, x: np.ndarray) -> dict[str, float]:
    """``dead_relu_fractions`` of every block of ``network`` on the batch ``x``, those inside groups
    too (by path), in the order their outputs are made; each output is let go once counted."""
    shares: dict[str, float] = {}
    network.forward_stages(x, visit=lambda stage, y: shares.update(dead_relu_fractions([(stage, y)])))
    return shares


def layer_order(network) -> list[str]:
    """The names the training views give a network's blocks, first to last: every block's path in the
    order its output is made (a group's inner blocks, then the group), with the other holders of
    parameters (a residual's skip projection, "res2.projection") just before their group."""
    order: list[str] = []

    def visit(stages) -> None:
        for stage in stages:
            visit(KINDS[stage.info.kind].inner_stages(stage))
            order.extend(prefix for prefix, _ in stage.named if prefix not in order)
            if stage.path not in order:
                order.append(stage.path)
    visit(network.stages)
    return order


class GradNorms:
    """Per-parameter L2 gradient norms, averaged over the batches seen since the last ``take``."""

    def __init__(self) -> None:
        self._sums: dict[str, float] = {}
        self._count = 0

    def add(self, norms: dict[str, float]) -> None:
        """One batch's norms, by parameter name (``Trainer.gradient_norms``)."""
        sums = self._sums
        for name, value in norms.items():
            sums[name] = sums.get(name, 0.0) + value
        self._count += 1

    def take(self) -> dict[str, float]:
        """The averages, then start over."""
        n = max(self._count, 1)
        out = {name: total / n for name, total in self._sums.items()}
        self._sums, self._count = {}, 0
        return out


class ValidationRecorder:
    """Keeps the true and predicted labels of each validation pass of a trainer.

    Installed as the trainer's ``validation_observer``, it sees exactly the predictions the
    validation metrics came from (whichever engine computed them), without a second pass over
    the validation split.
    """

    def __init__(self, network) -> None:
        self.network = network
        self.true: list[np.ndarray] = []
        self.predicted: list[np.ndarray] = []

    @classmethod
    def install(cls, trainer) -> ValidationRecorder:
        current = getattr(trainer.validation_observer, "__self__", None)
        if isinstance(current, cls):
            return current
        recorder = cls(trainer.network)
        trainer.validation_observer = recorder.record
        return recorder

    def record(self, labels: np.ndarray, outputs: np.ndarray) -> None:
        self.true.append(np.array(labels, np.int64))
        self.predicted.append(self.network.classify(outputs))

    def take(self, classes: int) -> np.ndarray | None:
        """The confusion matrix of what was recorded since the last call (None if nothing was)."""
        if not self.true:
            return None
        matrix = confusion_matrix(np.concatenate(self.true), np.concatenate(self.predicted), classes)
        self.true, self.predicted = [], []
        return matrix

    def clear(self) -> None:
        self.true, self.predicted = [], []
