"""Dataset specs for files a person brings: checking them, resolving paths, calling the loaders.

A spec is the project's ``dataset`` dict. Kinds and their keys (paths relative to the project
file's folder, ``base_dir``; every kind also takes "name" and "normalization"):

  {"kind": "fashion-mnist"} / {"kind": "mnist"}     + "download": true to fetch when not found
  {"kind": "idx", "path": folder}                    the standard MNIST file names in a folder
  {"kind": "idx", "train_images": f, "train_labels": f, "test_images": f, "test_labels": f}
                                                     + "class_names": [...], "transpose": bool
  {"kind": "folder", "path": folder}                 + "test_path", "val_path", "input_shape": [C, H, W],
                                                       "resize": fit|crop|pad|stretch, "on_bad_file": skip|error,
                                                       "class_order": sorted|natural
  {"kind": "npz", "path": file}                      + "test_path", "layout", "image_shape", "class_names"
  {"kind": "csv", "path": file}                      + "test_path", "label_column", "image_shape", "layout",
                                                       "class_names"

Loaders import lazily, so ``import netbuilder.core.datasets`` stays cheap (Pillow only loads for folders).
What a loader detected or converted is logged to the "netbuilder.datasets" logger as warnings.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from netbuilder.core.datasets.base import Dataset, DatasetError

log = logging.getLogger("netbuilder.datasets")

COMMON_KEYS = ("kind", "name", "normalization")
SPEC_KEYS: dict[str, tuple[str, ...]] = {
    "fashion-mnist": ("download",),
    "mnist": ("download",),
    "idx": ("path", "train_images", "train_labels", "test_images", "test_labels", "class_names", "transpose"),
    "folder": ("path", "test_path", "val_path", "input_shape", "resize", "on_bad_file", "class_order"),
    "npz": ("path", "test_path", "layout", "image_shape", "class_names"),
    "csv": ("path", "test_path", "label_column", "image_shape", "layout", "class_names"),
}
_PATH_KEYS = ("path", "test_path", "val_path", "train_images", "train_labels", "test_images", "test_labels")
# An image folder's classes are numbered in plain sorted order, as torchvision and Keras do; the app
# writes "class_order" into every folder spec it makes. A spec without the key was written before
# the choice existed, when the order was natural (class2 before class10): it keeps that order, so
# weights trained on it still name the right classes.
FOLDER_ORDER_WHEN_UNSET = "natural"
_MAX_UP = 2  # spec_path keeps a path relative while it climbs at most this many folders


def check_spec(spec: Mapping[str, Any]) -> str:
    """The spec's kind, after checking its keys and value types; DatasetError names the first problem."""
    if not isinstance(spec, Mapping):
        raise DatasetError(f"dataset spec must be a mapping with a 'kind', got {spec!r}")
    kind = spec.get("kind")
    if kind not in SPEC_KEYS:
        raise DatasetError(f"dataset kind must be one of {', '.join(SPEC_KEYS)}, got {kind!r}")
    known = COMMON_KEYS + SPEC_KEYS[kind]
    for key, value in spec.items():
        if key not in known:
            raise DatasetError(f"{kind} dataset: unknown key {key!r} (value {value!r}); known keys: {', '.join(known)}")
        if key in _PATH_KEYS or key == "name":
            if not isinstance(value, str) or not value.strip():
                raise DatasetError(f"{kind} dataset: {key} must be a non-empty string, got {value!r}")
        elif key in ("download", "transpose"):
            if not isinstance(value, bool):
                raise DatasetError(f"{kind} dataset: {key} must be true or false, got {value!r}")
        elif key == "class_names":
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
                raise DatasetError(f"{kind} dataset: class_names must be a list of non-empty strings, got {value!r}")
        elif key in ("input_shape", "image_shape"):
            if (
                not isinstance(value, (list, tuple)) or len(value) != 3
                or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
            ):
                raise DatasetError(
                    f"{kind} dataset: {key} must be [channels, height, width] (3 positive whole numbers), got "
                    f"{value!r}"
                )
        elif key in ("resize", "on_bad_file", "layout", "class_order"):
            if not isinstance(value, str):
                raise DatasetError(f"{kind} dataset: {key} must be a string, got {value!r}")
        elif key == "label_column":
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                raise DatasetError(
                    f"{kind} dataset: label_column must be a column name or a 0-based index, got {value!r}"
                )
    if kind in ("folder", "npz", "csv") and "path" not in spec:
        raise DatasetError(f'{kind} dataset: no "path"; give the {"folder" if kind == "folder" else "file"} to read')
    if kind == "idx":
        named = [k for k in ("train_images", "train_labels") if k in spec]
        if "path" in spec and named:
            raise DatasetError('idx dataset: give either "path" (a folder) or train_images/train_labels, not both')
        if "path" not in spec and len(named) < 2:
            raise DatasetError(
                'idx dataset: give "path" (a folder with the MNIST file names) or both train_images and '
                'train_labels'
            )
        if ("test_images" in spec) != ("test_labels" in spec):
            raise DatasetError("idx dataset: give test_images and test_labels together, or neither")
    return kind


def resolve_path(value: str, base_dir: Path | None) -> Path:
    """A spec path as a filesystem path: ~ expanded, relative ones taken from ``base_dir``."""
    path = Path(value).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    return path


def spec_path(path: str | Path, base_dir: str | Path | None) -> str:
    """How to store ``path`` in a spec: relative to ``base_dir`` (forward slashes) where it is
    inside it or a folder or two above, else absolute (e.g. a system folder)."""
    path = Path(path).expanduser().absolute()
    if base_dir is None:
        return path.as_posix()
    try:
        rel = os.path.relpath(path, Path(base_dir).expanduser().absolute())
    except ValueError:  # another drive on Windows
        return path.as_posix()
    parts = Path(rel).parts
    if sum(p == ".." for p in parts) > _MAX_UP:
        return path.as_posix()
    return Path(rel).as_posix()


def make_spec(kind: str, path: str | Path | None, base_dir: str | Path | None = None, **options: Any) -> dict:
    """A checked spec for ``kind`` reading ``path`` (stored relative to ``base_dir`` where it can be).
    A new image-folder spec numbers its classes in sorted order unless ``class_order`` says otherwise."""
    spec: dict[str, Any] = {"kind": kind}
    if path is not None:
        spec["path"] = spec_path(path, base_dir)
    if kind == "folder":
        options.setdefault("class_order", "sorted")
    for key, value in options.items():
        if key in _PATH_KEYS and value is not None:
            value = spec_path(value, base_dir)
        if value is not None:
            spec[key] = list(value) if isinstance(value, tuple) else value
    check_spec(spec)
    return spec


def load_project_dataset(project: Any, base_dir: str | Path | None = None) -> Dataset:
    """The Dataset a project's ``dataset`` spec names (``load_dataset`` drops its normalisation key).

    An image folder without its own "input_shape" is resized to the project's input shape.
    """
    from netbuilder.core.datasets import load_dataset

    spec = dict(project.dataset)
    if spec.get("kind") == "folder" and "input_shape" not in spec:
        spec["input_shape"] = [int(v) for v in project.input_shape]
    return load_dataset(spec, base_dir)


def known_train_size(spec: Mapping[str, Any]) -> int | None:
    """How many training images a built-in dataset spec gives, without loading it; None for files."""
    kind = spec.get("kind") if isinstance(spec, Mapping) else None
    if kind in ("fashion-mnist", "mnist"):
        return 60000
    try:
        if kind == "shapes":
            from netbuilder.core.datasets.shapes import parse_spec
            return parse_spec(spec)["train_size"]
        if kind == "xor":
            from netbuilder.core.datasets.xor import load_xor
            return len(load_xor(spec).x_train)
    except DatasetError:
        return None
    return None


def idx_sources(spec: Mapping[str, Any], base_dir: Path | None) -> dict[str, Any]:
    """Keyword arguments for ``netbuilder.core.datasets.idx.load_idx`` from an idx/fashion-mnist/mnist spec."""
    from netbuilder.core.datasets import download, idx

    kind = check_spec(spec)
    if kind in ("fashion-mnist", "mnist"):
        folder = download.locate(kind)
        if folder is None:
            if not spec.get("download", False):
                source = download.SOURCES[kind]
                places = [*source.system_dirs, str(download.user_cache_dir() / kind)]
                hint = " or apt-get install dataset-fashion-mnist" if kind == "fashion-mnist" else ""
                raise DatasetError(
                    f"{source.title} not found in {' or '.join(places)}; set \"download\": true to fetch it{hint}"
                )
            folder = download.fetch(kind, progress=_log_download)
        files = idx.find_idx_files(folder)
        names = idx.FASHION_MNIST_CLASSES if kind == "fashion-mnist" else idx.MNIST_CLASSES
        return {**files, "class_names": list(names), "name": spec.get("name", download.SOURCES[kind].title)}
    if "path" in spec:
        files = idx.find_idx_files(resolve_path(spec["path"], base_dir))
    else:
        roles = ("train_images", "train_labels", "test_images", "test_labels")
        files = {k: resolve_path(spec[k], base_dir) for k in roles if k in spec}
    return {
        **files,
        "class_names": spec.get("class_names"),
        "name": spec.get("name"),
        "transpose": spec.get("transpose", False),
    }


def load_idx_spec(spec: Mapping[str, Any], base_dir: Path | None = None) -> Dataset:
    from netbuilder.core.datasets.idx import load_idx

    notes: list[str] = []
    ds = load_idx(**idx_sources(spec, base_dir), notes=notes)
    _log_notes(ds, notes)
    return ds


def load_folder_spec(spec: Mapping[str, Any], base_dir: Path | None = None) -> Dataset:
    from netbuilder.core.datasets.folder import read_image_folder

    check_spec(spec)
    notes: list[str] = []
    ds, _ = read_image_folder(
        resolve_path(spec["path"], base_dir),
        input_shape=spec.get("input_shape"),
        resize=spec.get("resize", "fit"),
        test_root=resolve_path(spec["test_path"], base_dir) if "test_path" in spec else None,
        val_root=resolve_path(spec["val_path"], base_dir) if "val_path" in spec else None,
        on_bad_file=spec.get("on_bad_file", "skip"),
        class_order=spec.get("class_order", FOLDER_ORDER_WHEN_UNSET),
        name=spec.get("name"),
        notes=notes,
    )
    _log_notes(ds, notes)
    return ds


def load_npz_spec(spec: Mapping[str, Any], base_dir: Path | None = None) -> Dataset:
    from netbuilder.core.datasets.npz import read_npz

    check_spec(spec)
    notes: list[str] = []
    ds = read_npz(
        resolve_path(spec["path"], base_dir),
        test_path=resolve_path(spec["test_path"], base_dir) if "test_path" in spec else None,
        layout=spec.get("layout"),
        image_shape=spec.get("image_shape"),
        class_names=spec.get("class_names"),
        name=spec.get("name"),
        notes=notes,
    )
    _log_notes(ds, notes)
    return ds


def load_csv_spec(spec: Mapping[str, Any], base_dir: Path | None = None) -> Dataset:
    from netbuilder.core.datasets.csvfile import read_csv

    check_spec(spec)
    notes: list[str] = []
    ds = read_csv(
        resolve_path(spec["path"], base_dir),
        test_path=resolve_path(spec["test_path"], base_dir) if "test_path" in spec else None,
        label_column=spec.get("label_column"),
        image_shape=spec.get("image_shape"),
        layout=spec.get("layout"),
        class_names=spec.get("class_names"),
        name=spec.get("name"),
        notes=notes,
    )
    _log_notes(ds, notes)
    return ds


FILE_LOADERS: dict[str, Callable[[Mapping[str, Any], Path | None], Dataset]] = {
    "fashion-mnist": load_idx_spec,
    "mnist": load_idx_spec,
    "idx": load_idx_spec,
    "folder": load_folder_spec,
    "npz": load_npz_spec,
    "csv": load_csv_spec,
}


def _log_notes(ds: Dataset, notes: list[str]) -> None:
    for note in notes:
        log.warning("%s: %s", ds.name, note)


def _log_download(done: int, total: int | None, what: str) -> None:
    if done == 0:
        size = f" ({total / 1e6:.1f} MB)" if total else ""
        log.warning("downloading %s%s", what, size)
