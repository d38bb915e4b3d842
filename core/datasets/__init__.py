"""Datasets: one ``Dataset`` shape for every source, chosen by a project's ``dataset`` spec.

A spec is a dict such as ``{"kind": "shapes", "train_size": 12000}``; ``load_dataset`` hands it
to the loader registered for its kind. Without a "kind" the built-in shapes set is used.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from netbuilder.core.datasets.base import Dataset, DatasetError
from netbuilder.core.datasets.registry import FILE_LOADERS, load_project_dataset
from netbuilder.core.datasets.shapes import load_shapes
from netbuilder.core.datasets.split import train_val_split
from netbuilder.core.datasets.xor import load_xor

# kind -> loader(spec, base_dir) -> Dataset; base_dir resolves relative file paths in a spec
# (the project file's folder). File-format loaders register here as they are written.
LOADERS: dict[str, Callable[[Mapping[str, Any], Path | None], Dataset]] = {
    "shapes": load_shapes,
    "xor": load_xor,
    **FILE_LOADERS,  # fashion-mnist, mnist, idx, folder, npz, csv
}
# Keys of a project's dataset spec that describe the project's use of the data, not the source.
PROJECT_KEYS = ("normalization",)
DEFAULT_KIND = "shapes"


def load_dataset(spec: Mapping[str, Any], base_dir: str | Path | None = None) -> Dataset:
    """The dataset ``spec`` describes; DatasetError names an unknown kind or a bad setting."""
    if not isinstance(spec, Mapping):
        raise DatasetError(f"dataset spec must be a mapping with a 'kind', got {spec!r}")
    kind = spec.get("kind", DEFAULT_KIND)
    loader = LOADERS.get(kind) if isinstance(kind, str) else None
    if loader is None:
        raise DatasetError(f"unknown dataset kind {kind!r}; known kinds: {', '.join(sorted(LOADERS))}")
    spec = {k: v for k, v in spec.items() if k not in PROJECT_KEYS}
    return loader(spec, Path(base_dir) if base_dir is not None else None)


__all__ = ["Dataset", "DatasetError", "LOADERS", "DEFAULT_KIND", "load_dataset", "load_project_dataset",
           "train_val_split"]
