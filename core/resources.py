"""The package data in ``netbuilder.resources`` (example projects, icons), found where it is installed.

Everything reads it through ``importlib.resources``: from a checkout that is the repository's
``resources/`` folder, from a wheel the copy inside site-packages.
"""
from __future__ import annotations

import atexit
import contextlib
from importlib.resources import as_file, files
from pathlib import Path

_PACKAGE = "netbuilder.resources"
_extracted = contextlib.ExitStack()  # holds files extracted from a zipped install until exit
atexit.register(_extracted.close)


def resource_path(*parts: str) -> Path:
    """A real file-system path to a file or folder of the package data (it may not exist)."""
    item = files(_PACKAGE).joinpath(*parts)
    if isinstance(item, Path):
        return item
    return _extracted.enter_context(as_file(item))  # a zipped install: extract, keep until exit


def example_names() -> list[str]:
    """The bundled example projects by name (the file stem), sorted: ``["lenet5", "mlp", ...]``."""
    return sorted(p.stem for p in resource_path("examples").glob("*.json"))


def example_path(name: str) -> Path | None:
    """The file of the bundled example ``name`` (with or without ``.json``), or None if there is none."""
    stem = name[:-5] if name.endswith(".json") else name
    if stem not in example_names():
        return None
    return resource_path("examples", f"{stem}.json")
