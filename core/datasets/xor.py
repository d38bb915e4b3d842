"""The XOR truth table as a dataset: the textbook test that a hidden layer is needed.

Inputs are (2, 1, 1) "images" (a flat input of two features, see core/project.py); the four
rows repeat ``repeat`` times so a batch can hold them all.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from netbuilder.core.datasets.base import Dataset, DatasetError

TABLE_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
TABLE_Y = np.array([0, 1, 1, 0], dtype=np.int64)


def load_xor(spec: Mapping[str, Any], base_dir: Path | None = None) -> Dataset:
    unknown = sorted(set(spec) - {"kind", "repeat"})
    if unknown:
        raise DatasetError(f"xor dataset: unknown setting {unknown[0]!r} (known: repeat)")
    repeat = spec.get("repeat", 1)
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
        raise DatasetError(f"xor dataset: repeat must be a whole number >= 1, got {repeat!r}")
    x = np.tile(TABLE_X, (repeat, 1)).reshape(-1, 2, 1, 1)
    y = np.tile(TABLE_Y, repeat)
    return Dataset("XOR", x, y, ["false", "true"])
