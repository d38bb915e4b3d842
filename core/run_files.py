"""The files of a recorded run (``core.run_history``): JSON and CSV, each written atomically and read
back as untrusted input — regular files only, bounded sizes, no NaN in JSON, every value checked —
with one-line errors (``RunHistoryError``) that name the file and the problem."""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from netbuilder.core.atomic import write_atomically
from netbuilder.core.untrusted import check_regular_file

TABLE_LIMIT = 1 << 30  # a metrics table: about 20 million batches


class RunHistoryError(ValueError):
    """A recorded run's file cannot be read; the message names the file and the problem."""


def write_json(path: Path, data) -> None:
    text = json.dumps(_finite(data), indent=2, allow_nan=False, ensure_ascii=False) + "\n"
    write_atomically(path, lambda fh: fh.write(text.encode("utf-8")))


def _finite(value):
    """``value`` with NaN and infinities as None (JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_table(path: Path, columns, rows) -> None:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(["" if v is None else repr(float(v)) if isinstance(v, float) else v for v in row]
                     for row in rows)
    data = out.getvalue().encode("utf-8")
    write_atomically(path, lambda fh: fh.write(data))


def optional(text: str) -> float | None:
    return None if text == "" else float(text)


def read_table(path: Path, columns, kinds) -> list[list]:
    text = read_text(path, TABLE_LIMIT)
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or tuple(rows[0]) != tuple(columns):
        raise RunHistoryError(f"{path}: the first line must be {','.join(columns)}")
    out = []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(columns):
            raise RunHistoryError(f"{path}: line {number} has {len(row)} values, not {len(columns)}")
        try:
            out.append([kind(value) for kind, value in zip(kinds, row)])
        except ValueError:
            raise RunHistoryError(f"{path}: line {number} holds something that is not a number") from None
    return out


def read_text(path: Path, limit: int) -> str:
    check_regular_file(path, RunHistoryError, "run file", limit)
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise RunHistoryError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise RunHistoryError(f"{path}: cannot read the file: {exc.strerror or exc}") from None


def read_json(path: Path, limit: int):
    def refuse(name: str):
        raise RunHistoryError(f"{path}: {name} is not a JSON number")

    try:
        return json.loads(read_text(path, limit), parse_constant=refuse)
    except json.JSONDecodeError as exc:
        raise RunHistoryError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise RunHistoryError(f"{path}: nested too deeply") from None
