"""Checkpoints: everything a run needs to go on exactly as if it had never stopped, in one .npz.

A checkpoint is taken between epochs and holds the weights, the optimiser's state (step count,
momentum / Adam moments, live learning rate), the random generator states (``bit_generator.state``
as JSON: no pickle anywhere), the trainer's running shuffle order, the epoch count and the
history so far. ``Trainer.from_checkpoint`` resumes from it; N epochs, a checkpoint, then M more
give the same weights bit for bit as an unbroken run of N + M with the same seed.

File layout (read with ``allow_pickle=False``): ``__project__`` (project JSON, UTF-8 uint8, as
in weights files), ``__checkpoint__`` (the JSON below, UTF-8 uint8), ``weights/<name>``,
``optimizer/<key>`` (``Optimizer.state_dict`` keys), ``order`` and ``batch_losses`` (all batch
losses, flat, float64; the JSON's ``batches`` says how many per epoch).
"""
from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from netbuilder.core.atomic import write_atomically
from netbuilder.core.errors import ProjectError
from netbuilder.core.project import Project, parse_project
from netbuilder.core.weights import PROJECT_KEY, WeightsError, read_npz, value_problem

FORMAT = 1
META_KEY = "__checkpoint__"
_WEIGHTS, _OPTIMIZER, _BEST = "weights/", "optimizer/", "best/"


class CheckpointError(WeightsError):
    """A checkpoint cannot be written, read or used; the message names the file and the reason."""


@dataclass
class Checkpoint:
    """The state of a training run at the end of epoch ``epoch`` (0: before the first)."""

    project: Project
    epoch: int
    weights: dict[str, np.ndarray]
    optimizer: str  # the project's optimizer kind the state belongs to (sgd | momentum | nesterov | adam)
    optimizer_state: dict[str, np.ndarray]
    learning_rate: float  # the live rate (it may have been changed during the run)
    rng_state: dict  # the trainer's generator: ``rng.bit_generator.state``
    order: np.ndarray  # the trainer's training-sample order, shuffled in place each epoch
    dropout_rng_states: dict[str, dict] = field(default_factory=dict)  # dropout blocks with their own generator
    history: list[dict] = field(default_factory=list)  # EpochEnd fields of every completed epoch
    batch_losses: list[list[float]] = field(default_factory=list)  # per epoch
    engine: str = "numpy"  # the engine that trained it ("numpy" or "torch"); either resumes it
    augment_rng_state: dict | None = None  # the augmentation's generator (None: from before augmentation)
    schedule_state: dict | None = None  # base rate, last factor and plateau's progress (None: from before)
    early_stopping_state: dict | None = None  # the best figure, its epoch and the epochs waited since
    best_weights: dict[str, np.ndarray] = field(default_factory=dict)  # the best epoch's, for early stopping


def save_checkpoint(path: str | os.PathLike, checkpoint: Checkpoint) -> None:
    """Write ``checkpoint`` to ``path`` atomically (a temporary file renamed over it)."""
    path = Path(path)
    meta = {
        "format": FORMAT,
        "epoch": int(checkpoint.epoch),
        "optimizer": checkpoint.optimizer,
        "learning_rate": float(checkpoint.learning_rate),
        "rng_state": checkpoint.rng_state,
        "dropout_rng_states": checkpoint.dropout_rng_states,
        "history": checkpoint.history,
        "batches": [len(b) for b in checkpoint.batch_losses],
        "engine": checkpoint.engine,
        "augment_rng_state": checkpoint.augment_rng_state,
        "schedule_state": checkpoint.schedule_state,
        "early_stopping_state": checkpoint.early_stopping_state,
    }
    arrays = {PROJECT_KEY: _text_array(checkpoint.project.to_json()), META_KEY: _text_array(json.dumps(meta))}
    arrays.update({_WEIGHTS + k: np.asarray(v) for k, v in checkpoint.weights.items()})
    arrays.update({_OPTIMIZER + k: np.asarray(v) for k, v in checkpoint.optimizer_state.items()})
    arrays.update({_BEST + k: np.asarray(v) for k, v in checkpoint.best_weights.items()})
    arrays["order"] = np.asarray(checkpoint.order, np.int64)
    arrays["batch_losses"] = np.array([v for b in checkpoint.batch_losses for v in b], np.float64)

    try:
        write_atomically(path, lambda fh: np.savez(fh, **arrays))
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot write the checkpoint: {exc.strerror or exc}") from None


def is_checkpoint(path: str | os.PathLike) -> bool:
    """True if ``path`` is a readable .npz holding a checkpoint (False for anything else)."""
    try:
        with zipfile.ZipFile(path) as z:
            return META_KEY + ".npy" in z.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint; ``CheckpointError`` names the file and what is wrong with it."""
    path = Path(path)

    def missing(names: list[str]) -> str:
        hint = " (it is a weights file: train with it from the start instead)" if PROJECT_KEY in names else ""
        return f"not a netbuilder checkpoint ({META_KEY!r} missing){hint}"

    arrays = read_npz(path, "checkpoint", CheckpointError, META_KEY, missing)

    try:
        meta = json.loads(_text(arrays.pop(META_KEY)))
        project = parse_project(_text(arrays.pop(PROJECT_KEY)), source=f"{path} (embedded project)")
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            version = meta.get("format") if isinstance(meta, dict) else meta
            raise ValueError(f"unsupported checkpoint format {version!r} (this netbuilder reads format {FORMAT})")
        _check_meta(meta)
        losses = arrays.pop("batch_losses")
        counts = [int(n) for n in meta["batches"]]
        if sum(counts) != losses.size:
            raise ValueError(f"{losses.size} batch losses stored but {sum(counts)} expected")
        ends = np.cumsum([0] + counts)
        checkpoint = Checkpoint(
            project=project,
            epoch=int(meta["epoch"]),
            weights={k[len(_WEIGHTS):]: v for k, v in arrays.items() if k.startswith(_WEIGHTS)},
            optimizer=str(meta["optimizer"]),
            optimizer_state={k[len(_OPTIMIZER):]: v for k, v in arrays.items() if k.startswith(_OPTIMIZER)},
            learning_rate=float(meta["learning_rate"]),
            rng_state=dict(meta["rng_state"]),
            order=np.asarray(arrays.pop("order"), np.int64),
            dropout_rng_states=dict(meta["dropout_rng_states"]),
            history=list(meta["history"]),
            batch_losses=[losses[a:b].tolist() for a, b in zip(ends[:-1], ends[1:])],
            engine=str(meta.get("engine", "numpy")),
            augment_rng_state=dict(meta["augment_rng_state"]) if meta.get("augment_rng_state") else None,
            schedule_state=_schedule_state(meta.get("schedule_state")),
            early_stopping_state=_early_state(meta.get("early_stopping_state")),
            best_weights={k[len(_BEST):]: v for k, v in arrays.items() if k.startswith(_BEST)},
        )
    except (WeightsError, ProjectError):
        raise
    except _BadMeta as exc:
        raise CheckpointError(f"{path}: the checkpoint is damaged: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a damaged checkpoint can fail in many ways; name the file
        raise CheckpointError(f"{path}: the checkpoint is damaged: {type(exc).__name__}: {exc}") from None
    if "steps" not in checkpoint.optimizer_state:
        raise CheckpointError(f"{path}: the checkpoint is damaged: no optimizer step count")
    problems = [p for p in (value_problem(f"weights {n}", a) for n, a in checkpoint.weights.items()) if p]
    problems += [p for p in (value_problem(f"optimizer {n}", a) for n, a in checkpoint.optimizer_state.items())
                 if p]
    problems += [p for p in (value_problem(f"best weights {n}", a) for n, a in checkpoint.best_weights.items()) if p]
    if problems:
        raise CheckpointError(f"{path}: refused: " + "; ".join(problems))
    return checkpoint


class _BadMeta(ValueError):
    """A field of a checkpoint's metadata that cannot be right (the message names it)."""


def _check_meta(meta: dict) -> None:
    """Every field of a checkpoint's metadata, checked; _BadMeta names the first bad one."""
    def whole(key: str, value) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise _BadMeta(f"{key} must be a whole number >= 0, got {value!r}")
        return value

    for key in ("epoch", "batches", "optimizer", "learning_rate", "rng_state", "dropout_rng_states", "history"):
        if key not in meta:
            raise _BadMeta(f"{key!r} is missing")
    whole("epoch", meta["epoch"])
    if not isinstance(meta["batches"], list):
        raise _BadMeta(f"batches must be a list of batch counts, got {meta['batches']!r}")
    for n in meta["batches"]:
        whole("each of batches", n)
    if len(meta["batches"]) != meta["epoch"]:
        raise _BadMeta(f"batches has {len(meta['batches'])} epochs' counts but epoch is {meta['epoch']}")
    if not isinstance(meta["optimizer"], str):
        raise _BadMeta(f"optimizer must be a name, got {meta['optimizer']!r}")
    if meta.get("engine", "numpy") not in ("numpy", "torch"):  # written before engines existed: numpy's
        raise _BadMeta(f"engine must be 'numpy' or 'torch', got {meta['engine']!r}")
    lr = meta["learning_rate"]
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not np.isfinite(lr) or lr <= 0:
        raise _BadMeta(f"learning_rate must be a positive number, got {lr!r}")
    states = meta["dropout_rng_states"]
    if not isinstance(states, dict):
        raise _BadMeta(f"dropout_rng_states must be an object, got {states!r}")
    named = [("rng_state", meta["rng_state"])] + [(f"dropout_rng_states[{k!r}]", v) for k, v in states.items()]
    if meta.get("augment_rng_state") is not None:  # absent from checkpoints made before augmentation
        named.append(("augment_rng_state", meta["augment_rng_state"]))
    for key, state in named:
        try:
            np.random.default_rng().bit_generator.state = state
        except (TypeError, ValueError, KeyError) as exc:
            raise _BadMeta(f"{key} is not a random generator's state ({exc})") from None
    if not isinstance(meta["history"], list) or not all(isinstance(h, dict) for h in meta["history"]):
        raise _BadMeta("history must be a list of per-epoch objects")


def _schedule_state(state) -> dict | None:
    """A checkpoint's schedule state, checked (_BadMeta names what is wrong); None when absent."""
    if state is None:
        return None
    ok = (isinstance(state, dict) and all(isinstance(state.get(k), (int, float)) and not isinstance(state.get(k), bool)
                                          and np.isfinite(state[k]) and state[k] > 0 for k in ("base_lr", "factor"))
          and isinstance(state.get("scale"), (int, float)) and isinstance(state.get("waited"), int)
          and (state.get("best") is None or isinstance(state.get("best"), (int, float))))
    if not ok:
        raise _BadMeta(f"schedule_state is not a schedule's state, got {state!r}"[:200])
    return dict(state)


def _early_state(state) -> dict | None:
    """A checkpoint's early-stopping state, checked; None when absent."""
    if state is None:
        return None
    ok = (isinstance(state, dict) and isinstance(state.get("best_epoch"), int) and isinstance(state.get("waited"), int)
          and (state.get("best") is None or isinstance(state.get("best"), (int, float))))
    if not ok:
        raise _BadMeta(f"early_stopping_state is not an early-stopping state, got {state!r}"[:200])
    return dict(state)


def _text_array(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def _text(raw: np.ndarray) -> str:
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise ValueError(f"expected UTF-8 bytes (1-D uint8), got {raw.dtype} {raw.shape}")
    return raw.tobytes().decode("utf-8")
