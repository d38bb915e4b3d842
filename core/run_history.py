"""The runs of a saved project, recorded next to it so that they outlast the session.

Every run of ``path/to/tiny.json`` gets a folder ``path/to/tiny.runs/<run id>/`` (ids such as
``20261201-155034-1``: the start time, then a number that makes it unique) holding:

- ``run.json``: the format, id, start and end times, duration, engine and device, the status
  and message of its ``RunEnded``, the project it ran with (before training wrote its input
  normalisation into it), a one-line summary, the best validation accuracy and its epoch, and
  which of the files below it has;
- ``epochs.csv`` (one row per epoch) and ``batches.csv`` (one row per batch): the metrics;
- ``weights.npz``, the final weights, and ``best.npz``, the best epoch's when early stopping kept
  them, both weights files as ``netbuilder train --out`` writes them (``core.weights``);
- ``confusion.json``: the confusion matrix of the last validation pass.

``RunRecorder`` is fed the trainer's events and writes the folder when the run ends, whatever
its status: under a hidden temporary name, file by file (each atomically), then renamed into
place, so a half-written run is never listed. ``list_runs`` reads every run back, skipping a
corrupt or partial folder with one note naming it; ``settings_diff`` says which settings differ.
"""
from __future__ import annotations

import itertools
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from netbuilder.core.atomic import fsync_folder
from netbuilder.core.errors import ProjectError
from netbuilder.core.metrics import confusion_matrix
from netbuilder.core.project import Project
from netbuilder.core.run_files import (
    TABLE_LIMIT,
    RunHistoryError,
    optional,
    read_json,
    read_table,
    write_json,
    write_table,
)
from netbuilder.core.trainer import BatchEnd, EpochEnd, RunEnded, RunStarted
from netbuilder.core.untrusted import PROJECT_FILE_LIMIT

FORMAT = 1
RUN_FILE, EPOCHS_FILE, BATCHES_FILE = "run.json", "epochs.csv", "batches.csv"
WEIGHTS_FILE, BEST_FILE, CONFUSION_FILE = "weights.npz", "best.npz", "confusion.json"
EPOCH_COLUMNS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds", "images_per_sec")
BATCH_COLUMNS = ("epoch", "batch", "loss", "accuracy", "learning_rate")
STATUSES = ("finished", "stopped", "diverged", "failed")
STALE_PARTIAL = 3600.0  # seconds: a temporary run folder this old belongs to a process that is gone


def runs_folder(project_path: str | os.PathLike) -> Path:
    """Where the runs of the project file ``project_path`` are recorded: ``<stem>.runs`` beside it."""
    path = Path(project_path)
    return path.with_name(f"{path.stem}.runs")


# --- a recorded run --------------------------------------------------------------------------
@dataclass(frozen=True)
class RecordedRun:
    """One run as ``list_runs`` read it back: ``run.json``'s fields and the per-epoch metrics
    (the per-batch ones, the confusion matrix and the weights are read when asked for)."""

    folder: Path
    id: str
    started: str  # ISO 8601 local time, to the second
    ended: str
    seconds: float
    engine: str
    status: str
    message: str
    summary: str
    project: dict  # the project's JSON document as the run started
    epochs: tuple[EpochEnd, ...]
    start_epoch: int = 0  # epochs done before (a resumed or continued run numbers from start_epoch + 1)
    best_val_accuracy: float | None = None
    best_epoch: int | None = None
    best_weights_epoch: int | None = None  # the epoch whose weights best.npz holds
    weights: bool = False  # weights.npz was written
    best: bool = False  # best.npz was written
    confusion_file: bool = False

    @property
    def when(self) -> str:
        """The start, as the table shows it: "2026-12-01 15:50"."""
        return self.started[:16].replace("T", " ")

    def settings(self) -> Project:
        """The project the run ran with (ProjectError if it is not one)."""
        return Project.from_dict(self.project, source=f"{self.folder / RUN_FILE}")

    def weights_path(self, which: str = "best") -> Path | None:
        """The weights file to use: "best" (the best epoch's when recorded, else the final ones) or "final"."""
        if which == "best" and self.best:
            return self.folder / BEST_FILE
        return self.folder / WEIGHTS_FILE if self.weights else None

    def network(self, which: str = "best"):
        """(a Network with the run's weights, which epoch's they are in words); WeightsError or
        ProjectError say what is wrong with the file (read with allow_pickle=False, checked)."""
        from netbuilder.core.export import load_state
        from netbuilder.core.network import Network
        from netbuilder.core.weights import WeightsError, load_weights

        path = self.weights_path(which)
        if path is None:
            raise WeightsError(f"{self.folder}: the run has no weights (it ended before any were saved)")
        project, state = load_weights(path)
        network = Network(project)
        load_state(network, state, path)
        if path.name == BEST_FILE:
            return network, f"the weights of epoch {self.best_weights_epoch}, the best"
        return network, f"the final weights (epoch {self.start_epoch + len(self.epochs)})"

    def batches(self) -> list[tuple[int, int, float, float, float | None]]:
        """Every batch's (epoch, batch, loss, accuracy, learning rate); RunHistoryError when unreadable."""
        rows = read_table(self.folder / BATCHES_FILE, BATCH_COLUMNS, (int, int, float, float, optional))
        return [tuple(row) for row in rows]

    def confusion(self) -> dict | None:
        """{"epoch", "class_names", "matrix"} of the last validation pass, or None without one."""
        if not self.confusion_file:
            return None
        path = self.folder / CONFUSION_FILE
        data = read_json(path, TABLE_LIMIT)
        matrix = np.asarray(data.get("matrix") if isinstance(data, dict) else None, dtype=object)
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or not all(type(v) is int for v in matrix.flat):
            raise RunHistoryError(f"{path}: 'matrix' must be a square table of whole numbers")
        return {"epoch": data.get("epoch"), "class_names": list(data.get("class_names") or []),
                "matrix": np.asarray(matrix.tolist(), np.int64)}


# --- recording -------------------------------------------------------------------------------
class RunRecorder:
    """Records one run of the project file ``project_path``: ``attach`` it to the trainer, feed it
    every event (``event``); at ``RunEnded`` it writes the run's folder (``folder``), or says in
    ``problem`` why it could not (the run itself goes on regardless).

    ``project`` is read at once: the settings the run starts with, before training adds the input
    normalisation (which the weights files carry). ``class_names`` name the confusion matrix's rows.
    """

    def __init__(self, project_path: str | os.PathLike, project: Project, class_names=None):
        self.project_path = Path(project_path)
        self.settings = project.to_dict()
        self.class_names = [str(c) for c in class_names or []]
        self.folder: Path | None = None
        self.problem = ""
        self._trainer = None
        self._previous = None
        self._engine = ""
        self._wall = time.time()
        self._clock = time.perf_counter()
        self._start_epoch = 0
        self._epochs: list[EpochEnd] = []
        self._batches: list[tuple] = []
        self._true: list[np.ndarray] = []
        self._predicted: list[np.ndarray] = []
        self._last_pass: tuple[int, np.ndarray, np.ndarray] | None = None

    def attach(self, trainer, class_names=None) -> None:
        """Watch ``trainer``'s validation passes (after any observer it has) and take its weights at the end."""
        from netbuilder.core.training_run import describe_engine

        self._trainer = trainer
        self._engine = describe_engine(trainer)
        if class_names is not None:
            self.class_names = [str(c) for c in class_names]
        self._previous = trainer.validation_observer
        trainer.validation_observer = self._observe

    def _observe(self, labels: np.ndarray, outputs: np.ndarray) -> None:
        if self._previous is not None:
            self._previous(labels, outputs)
        self._true.append(np.array(labels, np.int64))
        self._predicted.append(np.asarray(self._trainer.network.classify(outputs), np.int64))

    def event(self, event) -> None:
        """One of the trainer's events; the ``RunEnded`` writes the record."""
        if isinstance(event, BatchEnd):
            self._batches.append((event.epoch, event.batch, event.loss, event.accuracy, event.learning_rate))
        elif isinstance(event, EpochEnd):
            self._epochs.append(event)
            if self._true:
                self._last_pass = (event.epoch, np.concatenate(self._true), np.concatenate(self._predicted))
            self._true, self._predicted = [], []
        elif isinstance(event, RunStarted):
            self._wall, self._clock = time.time(), time.perf_counter()
            self._start_epoch = event.start_epoch
        elif isinstance(event, RunEnded):
            self.finish(event)

    def finish(self, ended: RunEnded) -> Path | None:
        """Write the record of the run that ended so (once); returns its folder, None when it could not be."""
        trainer, self._trainer = self._trainer, None
        if trainer is not None and trainer.validation_observer == self._observe:
            trainer.validation_observer = self._previous
        if self.folder is not None or self.problem:
            return self.folder
        try:
            self.folder = self._write(ended, trainer)
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self.problem = f"the run was not recorded in {runs_folder(self.project_path)}: {reason}"
        return self.folder

    def _write(self, ended: RunEnded, trainer) -> Path:
        from netbuilder.core.weights import WeightsError, save_weights

        seconds = max(time.perf_counter() - self._clock, 0.0)
        runs = runs_folder(self.project_path)
        created = not runs.is_dir()
        runs.mkdir(exist_ok=True)
        try:
            run_id, temp = _reserve(runs, self._wall)
        except BaseException:
            _remove_if_empty(runs, created)
            raise
        try:
            written, problems = {}, []
            early = getattr(trainer, "early_stopping", None)
            best_weights = getattr(early, "best_weights", None) if early is not None else None
            for name, state in ((WEIGHTS_FILE, trainer.weights() if trainer is not None else None),
                                (BEST_FILE, best_weights or None)):
                if state is None:
                    continue
                try:
                    save_weights(temp / name, state, trainer.project)
                    written[name] = True
                except WeightsError as exc:  # not finite: the record says so and goes without them
                    problems.append(str(exc).replace(str(temp), run_id))
            if self._last_pass is not None:
                write_json(temp / CONFUSION_FILE, self._confusion(trainer))
            write_table(temp / EPOCHS_FILE, EPOCH_COLUMNS,
                         [[getattr(e, c) for c in EPOCH_COLUMNS] for e in self._epochs])
            write_table(temp / BATCHES_FILE, BATCH_COLUMNS, self._batches)
            best_acc, best_epoch = _best_accuracy(self._epochs)
            record = {
                "format": FORMAT, "id": run_id,
                "started": datetime.fromtimestamp(self._wall).astimezone().isoformat(timespec="seconds"),
                "ended": datetime.now().astimezone().isoformat(timespec="seconds"),
                "seconds": round(seconds, 3), "engine": self._engine, "status": ended.status,
                "message": ended.message, "start_epoch": self._start_epoch,
                "summary": summary_line(ended.status, ended.epochs_done - self._start_epoch, best_acc, best_epoch,
                                        seconds, self.settings),
                "best_val_accuracy": best_acc, "best_epoch": best_epoch,
                "best_weights_epoch": early.best_epoch if BEST_FILE in written else None,
                "weights": WEIGHTS_FILE in written, "best": BEST_FILE in written,
                "confusion": self._last_pass is not None, "problems": problems,
                "project": self.settings,
            }
            write_json(temp / RUN_FILE, record)  # last: a folder without it is no run
            os.rename(temp, runs / run_id)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            _remove_if_empty(runs, created)
            raise
        fsync_folder(runs)
        return runs / run_id

    def _confusion(self, trainer) -> dict:
        epoch, true, predicted = self._last_pass
        outputs = trainer.network.output_features if trainer is not None else 0
        classes = max(2 if outputs == 1 else outputs, len(self.class_names), int(true.max(initial=-1)) + 1)
        names = self.class_names + [str(k) for k in range(len(self.class_names), classes)]
        return {"epoch": epoch, "class_names": names[:classes],
                "matrix": confusion_matrix(true, predicted, classes).tolist()}


def _reserve(runs: Path, started: float) -> tuple[str, Path]:
    """A fresh run id from the start time, and its temporary folder, created (so no other
    process takes it); temporary folders that a killed process left are removed first."""
    now = time.time()
    for entry in runs.iterdir():
        if entry.name.startswith(".") and entry.name.endswith(".partial"):
            try:
                if now - entry.stat().st_mtime > STALE_PARTIAL:
                    shutil.rmtree(entry, ignore_errors=True)
            except OSError:
                continue
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(started))
    for n in itertools.count(1):
        run_id = f"{stamp}-{n}"
        temp = runs / f".{run_id}.partial"
        if (runs / run_id).exists():
            continue
        try:
            temp.mkdir()
        except FileExistsError:
            continue
        if (runs / run_id).exists():  # renamed into place between the two checks
            temp.rmdir()
            continue
        return run_id, temp
    raise AssertionError("unreachable")


def _remove_if_empty(folder: Path, created: bool) -> None:
    """Take back a runs folder made for a record that could not be written."""
    if created:
        try:
            folder.rmdir()
        except OSError:
            pass


def _best_accuracy(epochs) -> tuple[float | None, int | None]:
    scored = [(e.val_accuracy, e.epoch) for e in epochs if e.val_accuracy is not None and math.isfinite(e.val_accuracy)]
    if not scored:
        return None, None
    best = max(acc for acc, _ in scored)
    return best, next(epoch for acc, epoch in scored if acc == best)


def summary_line(status: str, epochs: int, best_acc: float | None, best_epoch: int | None, seconds: float,
                 project: dict) -> str:
    """The run in one line: "finished · 2 epochs · best val acc 93.3% (epoch 2) · 12.3 s · adam lr 0.001 · batch 64"."""
    training = project.get("training") if isinstance(project.get("training"), dict) else {}
    parts = [status, f"{epochs} epoch{'s' if epochs != 1 else ''}"]
    if best_acc is not None:
        parts.append(f"best val acc {100 * best_acc:.1f}% (epoch {best_epoch})")
    parts.append(duration_text(seconds))
    if "optimizer" in training and "learning_rate" in training:
        parts.append(f"{training['optimizer']} lr {training['learning_rate']:g}")
    if "batch_size" in training:
        parts.append(f"batch {training['batch_size']}")
    return " · ".join(parts)


def duration_text(seconds: float) -> str:
    """"8.4 s", "3 min 05 s", "2 h 07 min"."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(round(seconds))
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


# --- reading back ----------------------------------------------------------------------------
def list_runs(project_path: str | os.PathLike) -> tuple[list[RecordedRun], list[str]]:
    """Every readable run of the project file ``project_path``, oldest first, and one note for
    each folder skipped (corrupt or incomplete: bad JSON, a missing file, a wrong type). Never
    raises for what is in the folder; no runs folder is no runs."""
    runs_dir = runs_folder(project_path)
    try:
        entries = sorted(runs_dir.iterdir())
    except FileNotFoundError:
        return [], []
    except OSError as exc:
        return [], [f"{runs_dir}: cannot be read: {exc.strerror or exc}"]
    runs, notes = [], []
    for folder in entries:
        if folder.name.startswith(".") or folder.is_symlink() or not folder.is_dir():
            continue  # a run being written (or left half-written), or not ours
        try:
            runs.append(read_run(folder))
        except (RunHistoryError, ProjectError, OSError) as exc:
            notes.append(f"{runs_dir.name}/{folder.name} skipped: {_short(exc, folder)}")
    runs.sort(key=lambda r: (r.started, _id_order(r.id)))
    return runs, notes


def read_run(folder: Path) -> RecordedRun:
    """One recorded run (RunHistoryError names the file and what is wrong with it)."""
    path = folder / RUN_FILE
    data = read_json(path, PROJECT_FILE_LIMIT + (1 << 20))
    if not isinstance(data, dict):
        raise RunHistoryError(f"{path}: not a JSON object")
    version = data.get("format")
    if type(version) is int and version > FORMAT:
        raise RunHistoryError(f"{path}: format {version} is from a newer netbuilder (this one reads {FORMAT})")
    wanted = {"format": int, "id": str, "started": str, "ended": str, "seconds": (int, float), "engine": str,
              "status": str, "message": str, "summary": str, "project": dict, "start_epoch": int,
              "weights": bool, "best": bool, "confusion": bool}
    for key, kind in wanted.items():
        if key not in data:
            raise RunHistoryError(f"{path}: {key!r} is missing")
        if type(data[key]) not in (kind if isinstance(kind, tuple) else (kind,)):
            raise RunHistoryError(f"{path}: {key!r} must be {_type_word(kind)}, got {type(data[key]).__name__}")
    if data["status"] not in STATUSES:
        raise RunHistoryError(f"{path}: status {data['status']!r} is not one of {', '.join(STATUSES)}")
    for key, kind in (("best_val_accuracy", (int, float)), ("best_epoch", (int,)), ("best_weights_epoch", (int,))):
        if data.get(key) is not None and type(data[key]) not in kind:
            raise RunHistoryError(f"{path}: {key!r} must be {_type_word(kind)} or null")
    Project.from_dict(data["project"], source=f"{path} (its project)")  # a project, or ProjectError
    for name, there in ((WEIGHTS_FILE, data["weights"]), (BEST_FILE, data["best"]),
                        (CONFUSION_FILE, data["confusion"]), (EPOCHS_FILE, True), (BATCHES_FILE, True)):
        if there and not (folder / name).is_file():
            raise RunHistoryError(f"{folder / name}: missing")
    rows = read_table(folder / EPOCHS_FILE, EPOCH_COLUMNS, (int, float, float, optional, optional, float, float))
    return RecordedRun(
        folder=folder, id=folder.name, started=data["started"], ended=data["ended"], seconds=float(data["seconds"]),
        engine=data["engine"], status=data["status"], message=data["message"], summary=data["summary"],
        project=data["project"], epochs=tuple(EpochEnd(*row) for row in rows), start_epoch=data["start_epoch"],
        best_val_accuracy=data.get("best_val_accuracy"), best_epoch=data.get("best_epoch"),
        best_weights_epoch=data.get("best_weights_epoch"), weights=data["weights"], best=data["best"],
        confusion_file=data["confusion"])


def settings_diff(runs) -> dict[str, list]:
    """{setting: [its value in each run]} for every setting that is not the same in all of ``runs``,
    by dotted key ("training.learning_rate", "blocks[2].filters"); absent settings are None."""
    flat = [flatten_settings({k: v for k, v in run.project.items() if k not in ("format", "name")}) for run in runs]
    diff = {}
    for key in dict.fromkeys(key for f in flat for key in f):
        values = [f.get(key) for f in flat]
        if len({json.dumps(v, sort_keys=True) for v in values}) > 1:
            diff[key] = values
    return diff


def flatten_settings(value: Any, prefix: str = "") -> dict[str, Any]:
    """A project document as {dotted key: value}: objects by key, lists of objects by index."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten_settings(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        out = {}
        for i, item in enumerate(value):
            out.update(flatten_settings(item, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def setting_text(value: Any) -> str:
    """A setting's value for a table cell ("—" when the run did not have it)."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:g}"
    return value if isinstance(value, str) else json.dumps(value)


def _type_word(kind) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    words = {int: "a whole number", float: "a number", str: "text", dict: "an object", bool: "true or false"}
    return "a number" if set(kinds) == {int, float} else " or ".join(words[k] for k in kinds)


def _short(exc: Exception, folder: Path) -> str:
    """The reason in one line, without the folder's full path (the note names it already)."""
    text = " ".join(str(exc).split())
    return text.replace(f"{folder}{os.sep}", "").replace(str(folder), "the folder")


def _id_order(run_id: str) -> tuple:
    stamp, _, number = run_id.rpartition("-")
    return (stamp, int(number)) if number.isdigit() else (run_id, 0)
