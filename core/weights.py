"""Weights files: a ``.npz`` holding every parameter under its stable name plus the project.

Layout: one array per parameter (``conv1.weight``, ``conv1.bias``, ...) and ``__project__``, the
project's JSON as UTF-8 bytes in a uint8 array, so the file alone rebuilds the network and is
read with ``allow_pickle=False`` (no object arrays anywhere). Problems with a file raise
``WeightsError`` (a ValueError) naming the file; a bad embedded project raises ``ProjectError``.
"""
from __future__ import annotations

import os
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from netbuilder.core.atomic import write_atomically
from netbuilder.core.project import Project, parse_project
from netbuilder.core.untrusted import check_npz, check_regular_file

PROJECT_KEY = "__project__"


class WeightsError(ValueError):
    """A weights file cannot be read, written or used; the message names the file and the reason."""


def value_problem(name: str, value) -> str | None:
    """What is wrong with a parameter's values, or None: weights must be real, finite numbers."""
    a = np.asarray(value)
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        what = "complex numbers" if np.issubdtype(a.dtype, np.complexfloating) else f"{a.dtype} values"
        return f"{name} holds {what}, not real numbers"
    if np.issubdtype(a.dtype, np.floating):
        bad = int(a.size - np.count_nonzero(np.isfinite(a)))
        if bad:
            return f"{name} has {bad:,} NaN or infinite value{'s' if bad != 1 else ''} (of {a.size:,})"
    return None


def save_weights(path: str | os.PathLike, network_or_state, project: Project) -> None:
    """Write the parameters and ``project`` to ``path`` (exactly that name) atomically.

    ``network_or_state`` is a Network or a ``{name: array}`` dict. The data goes to a temporary
    file in the same folder, which then replaces ``path``: readers never see half a file.
    """
    path = Path(path)
    state = network_or_state.state_dict() if hasattr(network_or_state, "state_dict") else network_or_state
    if not isinstance(state, Mapping):
        raise TypeError(f"expected a Network or a dict of arrays, got {type(network_or_state).__name__}")
    if PROJECT_KEY in state:
        raise WeightsError(f"{path}: {PROJECT_KEY!r} is reserved and cannot be a parameter name")
    problems = [p for p in (value_problem(name, value) for name, value in state.items()) if p]
    if problems:
        raise WeightsError(f"{path}: not written: " + "; ".join(problems))
    arrays = {name: np.asarray(value) for name, value in state.items()}
    arrays[PROJECT_KEY] = np.frombuffer(project.to_json().encode("utf-8"), dtype=np.uint8)

    try:
        write_atomically(path, lambda fh: np.savez(fh, **arrays))
    except OSError as exc:
        raise WeightsError(f"{path}: cannot write the weights file: {exc.strerror or exc}") from None


def read_npz(path: Path, what: str, error: type[Exception], required: str,
             missing: Callable[[list[str]], str]) -> dict[str, np.ndarray]:
    """Every array of a netbuilder ``.npz`` (never unpickled), or ``error`` naming the file.

    ``what`` names the kind of file in messages ("weights file"); ``required`` is the array
    that marks the kind, and ``missing(names in the file)`` the sentence said when it is absent.
    """
    if path.exists() and not path.is_dir():
        size = check_regular_file(path, error, what)
        if not zipfile.is_zipfile(path):
            # np.load would take it for a pickle and suggest loading it unsafely: never.
            raise error(f"{path}: {_not_a_zip(path, size, what)}")
        check_npz(path, error)
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise error(f"{path}: a single .npy array, not a {what} (.npz)")
        with data:
            if required not in data.files:
                raise error(f"{path}: {missing(list(data.files))}")
            return {name: data[name] for name in data.files}
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except IsADirectoryError:
        raise error(f"{path}: is a folder, not a {what}") from None
    except error:
        raise
    except OSError as exc:
        raise error(f"{path}: cannot read the file: {exc.strerror or exc}") from None
    except (ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise error(f"{path}: not a valid {what} (.npz), or it is truncated: {exc}") from None


def _not_a_zip(path: Path, size: int, what: str) -> str:
    """What a file that is not a zip archive is, for the message."""
    with open(path, "rb") as fh:
        head = fh.read(6)
    if head == b"\x93NUMPY":
        return f"a single .npy array, not a {what} (.npz)"
    if head.startswith(b"PK"):
        return f"not a valid {what} (.npz): the zip archive is truncated or damaged"
    return f"not a valid {what} (.npz): {'an empty file' if size == 0 else 'not a zip archive'}"


def load_weights(path: str | os.PathLike) -> tuple[Project, dict[str, np.ndarray]]:
    """The project and the ``{name: array}`` parameters stored in a weights file."""
    path = Path(path)
    arrays = read_npz(path, "weights file", WeightsError, PROJECT_KEY,
                      lambda _: f"no project inside ({PROJECT_KEY!r} missing); not a netbuilder weights file")

    raw = arrays.pop(PROJECT_KEY)
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise WeightsError(f"{path}: {PROJECT_KEY!r} must be UTF-8 bytes (1-D uint8), got {raw.dtype} {raw.shape}")
    try:
        text = raw.tobytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WeightsError(f"{path}: the embedded project is not UTF-8 text ({exc.reason})") from None
    project = parse_project(text, source=f"{path} (embedded project)")
    problems = [p for p in (value_problem(name, a) for name, a in arrays.items()) if p]
    if problems:
        raise WeightsError(f"{path}: refused: " + "; ".join(problems))
    return project, arrays


def load_into(network, path: str | os.PathLike) -> Project:
    """Copy a weights file's parameters and buffers into ``network``; returns the file's project.

    Every missing, unexpected or differently shaped array is named with its block and both
    shapes (``netbuilder.core.export.load_state``); on any mismatch the network is left unchanged.
    """
    from netbuilder.core.export import load_state

    project, state = load_weights(path)
    load_state(network, state, path)
    return project


def _shape(shape) -> str:
    return "(" + " x ".join(str(d) for d in shape) + ")" if len(shape) else "(scalar)"

