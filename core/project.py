"""The project document: one versioned JSON file describing a network, its data and its training.

A project is what the GUI edits, the CLI trains and the weights file embeds. This module reads
and writes it and checks its *structure* only (types of the top-level and training fields, blocks
being objects with a "kind"); whether the blocks make a working network is ``netbuilder.core.inference``'s
job, so a project with a bad block still loads and the GUI can show what is wrong with it.

Conventions:

- ``input_shape`` is always (channels, height, width). A flat input of n features (e.g. XOR's two
  inputs) is written (n, 1, 1) followed by a ``flatten`` block: one input-shape rule for images
  and tables alike, and the flatten makes the reshaping visible on the canvas.
- ``num_classes`` is the number of outputs of the last block; ``num_classes == 1`` means a single
  binary output (a sigmoid giving the probability of class 1), used with binary_cross_entropy or
  squared_error. ``None`` means "as many as the dataset has".
"""
from __future__ import annotations

import copy
import difflib
import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from netbuilder.core.atomic import write_atomically
from netbuilder.core.errors import Problem, ProjectError

FORMAT_VERSION = 2  # 2: group blocks (residual, branches); format-1 files open unchanged

LOSSES = ("cross_entropy", "squared_error", "binary_cross_entropy")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam")


@dataclass
class TrainingSettings:
    """How the network is trained; ranges are checked by ``netbuilder.core.inference``."""

    loss: str = "cross_entropy"  # cross_entropy | squared_error | binary_cross_entropy
    optimizer: str = "adam"  # sgd | momentum | nesterov | adam
    learning_rate: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 64
    epochs: int = 5
    validation_fraction: float = 0.1
    seed: int = 0
    augmentation: dict | None = None  # training images only: see core/augment.py (None: none)
    schedule: dict | None = None  # the learning rate over the run: see core/schedules.py (None: constant)
    early_stopping: dict | None = None  # see core/early_stopping.py (None: every epoch runs)
    class_weights: str | list | None = None  # "balanced" or one weight a class: core/class_weights.py (None: all 1)


# JSON type each training field must have: "str", "int" (bool excluded) or "number" (int or float).
_TRAINING_TYPES = {
    "loss": "str",
    "optimizer": "str",
    "learning_rate": "number",
    "momentum": "number",
    "weight_decay": "number",
    "batch_size": "int",
    "epochs": "int",
    "validation_fraction": "number",
    "seed": "int",
    "augmentation": "object",
    "schedule": "object",
    "early_stopping": "object",
    "class_weights": "weights",
}
assert set(_TRAINING_TYPES) == {f.name for f in fields(TrainingSettings)}

_TRAINING_ALIASES = {"lr": "learning_rate", "batch": "batch_size", "val_fraction": "validation_fraction",
                     "validation_split": "validation_fraction", "decay": "weight_decay"}

_TOP_LEVEL = ("format", "name", "input_shape", "num_classes", "blocks", "training", "dataset")


@dataclass
class Project:
    """A network (its blocks), its input, its classes, its dataset and its training settings."""

    name: str = "Untitled"
    input_shape: tuple[int, int, int] = (1, 28, 28)  # channels, height, width
    num_classes: int | None = 10  # None: taken from the dataset; 1: one binary output
    blocks: list[dict] = field(default_factory=list)  # plain dicts, see core/blocks.py
    training: TrainingSettings = field(default_factory=TrainingSettings)
    dataset: dict = field(default_factory=lambda: {"kind": "shapes"})  # kind + kind-specific keys

    def to_dict(self) -> dict:
        """The JSON-ready document, "format" first (a deep copy: editing it leaves the project alone)."""
        return {
            "format": FORMAT_VERSION,
            "name": self.name,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "blocks": copy.deepcopy(self.blocks),
            "training": _training_dict(self.training),
            "dataset": copy.deepcopy(self.dataset),
        }

    def to_json(self) -> str:
        """The document as JSON text: indent 2, keys in a stable order, trailing newline.

        Raises ProjectError if a value cannot be written as standard JSON (NaN, infinity, objects).
        """
        try:
            return _dumps(self.to_dict(), "") + "\n"
        except (TypeError, ValueError, RecursionError) as exc:
            raise ProjectError(f"project {self.name!r} cannot be written as JSON: {exc}") from None

    @classmethod
    def from_dict(cls, data: Any, source: str | None = None) -> Project:
        """Build a project from a parsed document, reporting every structural problem at once."""
        try:
            return cls._from_dict(data, source)
        except RecursionError:
            raise ProjectError("the document is nested too deeply", source) from None

    @classmethod
    def _from_dict(cls, data: Any, source: str | None) -> Project:
        problems: list[Problem] = []
        if not isinstance(data, dict):
            raise ProjectError(
                [Problem(f"a project must be a JSON object {{...}}, got {_json_type(data)} {_show(data)}",
                         value=data)],
                source,
            )

        version = data.get("format")
        if "format" not in data:
            problems.append(Problem(
                f'no "format" field: this does not look like a netbuilder project (expected "format": '
                f"{FORMAT_VERSION})", field="format"))
        elif not _is_int(version):
            problems.append(Problem(
                f"format must be a whole number (the file format version), got {_show(version)}",
                field="format", value=version))
        elif version > FORMAT_VERSION:
            # A newer layout may differ anywhere: further complaints would only be noise.
            raise ProjectError([Problem(
                f"format {version} is newer than this version of netbuilder supports "
                f"(format {FORMAT_VERSION}); update netbuilder to open it",
                field="format", value=version)], source)
        elif version < 1:
            problems.append(Problem(
                f"format must be between 1 and {FORMAT_VERSION}, got {version}", field="format", value=version))

        for key in data:
            if key not in _TOP_LEVEL:
                problems.append(Problem(
                    f"unknown top-level field {_show(key)}{_suggest(key, _TOP_LEVEL)}; known fields: "
                    + ", ".join(_TOP_LEVEL), field=str(key), value=data[key]))

        project = cls()
        name = data.get("name", project.name)
        if isinstance(name, str):
            project.name = name
        else:
            problems.append(Problem(f"name must be a string, got {_show(name)}", field="name", value=name))

        shape = data.get("input_shape", list(project.input_shape))
        if isinstance(shape, list) and len(shape) == 3 and all(_is_int(v) for v in shape):
            project.input_shape = (shape[0], shape[1], shape[2])
        else:
            problems.append(Problem(
                f"input_shape must be [channels, height, width] (three whole numbers), got {_show(shape)}",
                field="input_shape", value=shape))

        classes = data.get("num_classes", project.num_classes)
        if classes is None or _is_int(classes):
            project.num_classes = classes
        else:
            problems.append(Problem(
                f"num_classes must be a whole number or null (take it from the dataset), got {_show(classes)}",
                field="num_classes", value=classes))

        blocks = data.get("blocks", [])
        if not isinstance(blocks, list):
            problems.append(Problem(
                f"blocks must be a list of blocks [...], got {_json_type(blocks)} {_show(blocks)}",
                field="blocks", value=blocks))
        else:
            for i, block in enumerate(blocks):
                if not isinstance(block, dict):
                    problems.append(Problem(
                        f"block {i + 1}: a block must be an object like {{\"kind\": \"conv\", ...}}, "
                        f"got {_json_type(block)} {_show(block)}", block=i, value=block))
                elif "kind" not in block:
                    from netbuilder.core.blocks import KINDS

                    problems.append(Problem(
                        f'block {i + 1}: no "kind" field; every block needs one ({", ".join(KINDS)})',
                        block=i, field="kind"))
                elif not isinstance(block["kind"], str):
                    problems.append(Problem(
                        f"block {i + 1}: kind must be a string such as \"conv\", got {_show(block['kind'])}",
                        block=i, field="kind", value=block["kind"]))
            project.blocks = copy.deepcopy(blocks)

        training = data.get("training", {})
        if isinstance(training, dict):
            project.training = _training_from_dict(training, problems)
        else:
            problems.append(Problem(
                f"training must be an object {{...}}, got {_json_type(training)} {_show(training)}",
                field="training", value=training))

        dataset = data.get("dataset", project.dataset)
        if not isinstance(dataset, dict):
            problems.append(Problem(
                f'dataset must be an object like {{"kind": "shapes"}}, got {_json_type(dataset)} {_show(dataset)}',
                field="dataset", value=dataset))
        elif not isinstance(dataset.get("kind"), str):
            problems.append(Problem(
                f'dataset needs a "kind" string such as "shapes", got {_show(dataset.get("kind"))}',
                field="dataset.kind", value=dataset.get("kind")))
        else:
            project.dataset = copy.deepcopy(dataset)

        if problems:
            raise ProjectError(problems, source)
        return project

    def copy(self) -> Project:
        """A deep copy: editing it never touches this project."""
        return copy.deepcopy(self)


def _training_dict(settings: TrainingSettings) -> dict:
    """The training settings as JSON, leaving out an augmentation that is not there (files from
    before it existed stay byte for byte as they were)."""
    data = asdict(settings)
    # newer than format 2's first files: left out when unset
    for key in ("augmentation", "schedule", "early_stopping", "class_weights"):
        if data.get(key) is None:
            del data[key]
    return data


def _training_from_dict(data: dict, problems: list[Problem]) -> TrainingSettings:
    settings = TrainingSettings()
    for key, value in data.items():
        expected = _TRAINING_TYPES.get(key)
        where = f"training.{key}"
        if expected is None:
            problems.append(Problem(
                f"unknown training field {_show(key)}{_suggest(_TRAINING_ALIASES.get(key, key), _TRAINING_TYPES)}; "
                "known fields: "
                + ", ".join(_TRAINING_TYPES), field=where, value=value))
        elif expected == "str" and not isinstance(value, str):
            problems.append(Problem(f"{where} must be a string, got {_show(value)}", field=where, value=value))
        elif expected == "int" and not _is_int(value):
            problems.append(Problem(
                f"{where} must be a whole number, got {_show(value)}", field=where, value=value))
        elif expected == "object" and not (value is None or isinstance(value, dict)):
            example = '{"kind": "cosine"}' if key == "schedule" else '{"flip": 0.5}'
            problems.append(Problem(f"{where} must be an object like {example} or null, got {_show(value)}",
                                    field=where, value=value))
        elif expected == "weights" and not (value is None or isinstance(value, (str, list))):
            problems.append(Problem(f'{where} must be "balanced", a list of numbers (one a class) or null, '
                                    f"got {_show(value)}", field=where, value=value))
        elif expected == "number" and not (_is_int(value) or isinstance(value, float)):
            problems.append(Problem(f"{where} must be a number, got {_show(value)}", field=where, value=value))
        else:
            setattr(settings, key, float(value) if expected == "number" else value)
    return settings


def parse_project(text: str, source: str | None = None) -> Project:
    """A project from JSON text; syntax errors name the source, line and column."""
    if not isinstance(text, str):
        raise ProjectError(f"expected JSON text, got {type(text).__name__}", source)
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ProjectError([Problem(
            f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")], source) from None
    except _NonStandardJSON as exc:
        raise ProjectError([Problem(f"invalid JSON: {exc} is not allowed (use a number)")], source) from None
    except RecursionError:
        raise ProjectError([Problem("invalid JSON: nested too deeply")], source) from None
    except ValueError as exc:  # e.g. an integer literal with thousands of digits
        raise ProjectError([Problem(f"invalid JSON: {exc}")], source) from None
    return Project.from_dict(data, source)


def load_project(path: str | os.PathLike) -> Project:
    """Read a project file; a missing, unreadable or non-UTF-8 file raises ProjectError naming it."""
    path = Path(path)
    source = str(path)
    if path.exists() and not path.is_dir():  # a FIFO or /dev/zero would hang or fill the memory
        from netbuilder.core.untrusted import PROJECT_FILE_LIMIT, check_regular_file

        check_regular_file(path, lambda message: ProjectError(message.split(": ", 1)[1], source),
                           "project file", PROJECT_FILE_LIMIT)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ProjectError("no such file", source) from None
    except IsADirectoryError:
        raise ProjectError("is a folder, not a project file", source) from None
    except OSError as exc:
        raise ProjectError(f"cannot read the file: {exc.strerror or exc}", source) from None
    try:
        text = raw.decode("utf-8-sig")  # tolerate a byte-order mark left by some editors
    except UnicodeDecodeError as exc:
        raise ProjectError(
            f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); is this a project file?",
            source) from None
    return parse_project(text, source)


def save_project(project: Project, path: str | os.PathLike) -> None:
    """Write ``project`` to ``path`` atomically: a reader sees the old file or the new one, never half.

    The text goes to a temporary file in the same folder, is flushed to disk, then renamed over
    ``path``. On failure the temporary file is removed, the old file is untouched and
    ProjectError names the file.
    """
    path = Path(path)
    text = project.to_json().encode("utf-8")
    try:
        write_atomically(path, lambda fh: fh.write(text))
    except OSError as exc:
        raise ProjectError(f"cannot write the file: {exc.strerror or exc}", str(path)) from None


def _dumps(value: Any, indent: str) -> str:
    """JSON with objects indented by 2 and lists of plain values on one line ("input_shape": [1, 28, 28])."""
    if isinstance(value, dict) and value:
        inner = indent + "  "
        items = (f"{inner}{json.dumps(str(k), ensure_ascii=False)}: {_dumps(v, inner)}" for k, v in value.items())
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(value, (list, tuple)) and any(isinstance(v, (dict, list, tuple)) for v in value):
        inner = indent + "  "
        return "[\n" + ",\n".join(inner + _dumps(v, inner) for v in value) + "\n" + indent + "]"
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


class _NonStandardJSON(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _NonStandardJSON(name)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _show(value: Any, limit: int = 60) -> str:
    """A value as the user wrote it (JSON notation), shortened if long."""
    if isinstance(value, float) and not math.isfinite(value):
        text = "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    else:
        try:
            text = json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _suggest(word: Any, choices) -> str:
    """' (did you mean "x"?)' for the closest choice, or '' if nothing is close."""
    if not isinstance(word, str):
        return ""
    match = difflib.get_close_matches(word.lower(), list(choices), n=1, cutoff=0.6)
    return f' (did you mean "{match[0]}"?)' if match else ""
