"""CSV files with one image per row: a label column and pixel columns (Kaggle-style digit sets).

The first row is a header when at least half its cells are not numbers. The label column is the one
named "label" (any case) or ``label_column`` (a name or 0-based index), else the first. The
fast path is numpy's C parser; when it fails, a line-by-line scan finds the first bad line
(ragged row, non-number) so the error can name it.
"""
from __future__ import annotations

import csv
import io
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from netbuilder.core.datasets.base import Dataset, DatasetError
from netbuilder.core.datasets.npz import check_count, check_same_shape, encode_labels, images_to_unit


def read_csv(
    path: str | Path,
    test_path: str | Path | None = None,
    label_column: str | int | None = None,
    image_shape: Sequence[int] | None = None,
    layout: str | None = None,
    class_names: Sequence[str] | None = None,
    name: str | None = None,
    notes: list[str] | None = None,
) -> Dataset:
    """A Dataset from a CSV (and optionally a second CSV of the same layout as the test split).

    Rows are reshaped to ``image_shape`` (C, H, W) or, by default, to a square grey image;
    see ``netbuilder.core.datasets.npz.images_to_unit`` for the pixel scales accepted.
    """
    path = Path(path)
    notes = notes if notes is not None else []
    pixels, labels, lines = _read_table(path, label_column)
    x = images_to_unit(pixels, str(path), layout, image_shape, notes, _line_at(lines))
    splits = [(labels, str(path), _line_at(lines))]
    x_test = None
    if test_path is not None:
        test_path = Path(test_path)
        tp, tl, tlines = _read_table(test_path, label_column)
        x_test = images_to_unit(tp, str(test_path), layout, image_shape, [], _line_at(tlines))
        splits.append((tl, str(test_path), _line_at(tlines)))
    ys, names = encode_labels(splits, class_names, notes)
    check_count(x, ys[0], str(path), "the label column")
    if x_test is not None:
        check_same_shape(x, x_test, str(test_path))
    return Dataset(name or path.stem, x, ys[0], names, x_test, ys[1] if x_test is not None else None)


def _line_at(lines: np.ndarray):
    return lambda i: f"line {int(lines[i])}"


def _read_table(path: Path, label_column: str | int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pixels (N, D) float32, labels (N,) as numbers or text, 1-based line number of each row)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DatasetError(f"{path}: is a folder, expected a .csv file") from None
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not a text file (byte {exc.start} is not UTF-8)") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read ({exc.strerror or exc})") from None

    first_line = next((ln for ln in text.splitlines() if ln.strip()), None)
    if first_line is None:
        raise DatasetError(f"{path}: empty file")
    first = next(csv.reader([first_line]))
    # A header is mostly names; a data row with a text label has one non-number among many.
    text_cells = sum(not _is_number(c) for c in first)
    header = [c.strip() for c in first] if 2 * text_cells >= len(first) else None
    ncols = len(first)
    if ncols < 2:
        raise DatasetError(f"{path}: line 1 has {ncols} column; expected a label column and pixel columns")
    label = _label_index(path, header, label_column, ncols)
    pixel_cols = [i for i in range(ncols) if i != label]
    # numpy skips blank lines; keep the line number of each data row for messages.
    lines = np.array([n for n, ln in enumerate(text.splitlines(), start=1) if ln.strip()], np.int64)
    lines = lines[1:] if header is not None else lines
    if len(lines) == 0:
        raise DatasetError(f"{path}: no data rows" + (" after the header" if header else ""))
    # loadtxt accepts rows longer than the columns it is asked for: check raggedness first.
    _check_ragged(path, text, ncols)
    read = dict(delimiter=",", skiprows=1 if header is not None else 0, ndmin=2, quotechar='"')
    with warnings.catch_warnings():
        # numpy warns that blank lines are not counted as rows: the line numbers above account for that.
        warnings.filterwarnings("ignore", message="Input line", category=UserWarning)
        pixels, labels = _parse(path, text, read, ncols, label, pixel_cols)
    if len(pixels) != len(lines):  # e.g. quoted fields spanning lines: fall back to row numbers
        lines = np.arange(len(pixels)) + (2 if header is not None else 1)
    return pixels, labels, lines


def _parse(path, text, read, ncols, label, pixel_cols):
    try:
        # One pass for the usual all-numeric table (float32 holds class indices exactly).
        table = np.loadtxt(io.StringIO(text), dtype=np.float32, **read)
        labels = table[:, label].copy()
        pixels = np.delete(table, label, axis=1)
    except ValueError:
        try:  # text labels ("cat", "dog")
            pixels = np.loadtxt(io.StringIO(text), dtype=np.float32, usecols=pixel_cols, **read)
            labels = np.char.strip(np.loadtxt(io.StringIO(text), dtype=str, usecols=[label], **read)[:, 0])
        except ValueError as exc:
            _locate_problem(path, text, ncols, label)
            raise DatasetError(f"{path}: cannot be read as numbers ({str(exc).splitlines()[0]})") from None
    return pixels, labels


def _label_index(path: Path, header: list[str] | None, label_column: str | int | None, ncols: int) -> int:
    if label_column is None:
        if header is not None:
            for i, h in enumerate(header):
                if h.lower() in ("label", "labels", "class", "target", "y"):
                    return i
        return 0
    if isinstance(label_column, bool) or not isinstance(label_column, (int, str)):
        raise DatasetError(f"{path}: label_column must be a column name or a 0-based index, got {label_column!r}")
    if isinstance(label_column, int):
        if not 0 <= label_column < ncols:
            raise DatasetError(f"{path}: label_column {label_column} is out of range for {ncols} columns")
        return label_column
    if header is None or label_column not in header:
        if header:
            have = f"columns: {', '.join(header[:8])}{', ...' if len(header) > 8 else ''}"
        else:
            have = "the file has no header row"
        raise DatasetError(f"{path}: no column named {label_column!r} ({have})")
    return header.index(label_column)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def _check_ragged(path: Path, text: str, ncols: int) -> None:
    counts = np.array([ln.count(",") for ln in text.splitlines() if ln.strip()])
    if '"' in text:  # quoted commas: count properly
        _locate_problem(path, text, ncols, None)
        return
    bad = counts != ncols - 1
    if bad.any():
        _locate_problem(path, text, ncols, None)


def _locate_problem(path: Path, text: str, ncols: int, label: int | None) -> None:
    """Raise naming the first ragged line, or (with ``label``) the first non-number pixel cell."""
    first_data = None
    for lineno, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or all(not c.strip() for c in row):
            continue
        if first_data is None:
            first_data = lineno
        if len(row) != ncols:
            raise DatasetError(
                f"{path}: line {lineno} has {len(row)} values but line {first_data} has {ncols}; every row must have "
                "the same number of columns (a ragged row)"
            )
        if label is None or (lineno == first_data and 2 * sum(not _is_number(c) for c in row) >= len(row)):
            continue  # the header row
        for col, cell in enumerate(row):
            if col != label and not _is_number(cell):
                raise DatasetError(f"{path}: line {lineno}, column {col + 1}: {cell.strip()!r} is not a number")
