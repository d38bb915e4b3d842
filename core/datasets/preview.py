"""What the GUI's data panel shows before training: sample images per class, class counts, fit.

``preview_dataset`` reads as little as it can: for IDX files the labels and only the sampled
images (a gzip file is decompressed up to the last sample), for an image folder a directory
listing and the sampled files, for an .npz the labels and the sampled rows of ``x``. CSV and
other kinds are loaded whole. Samples are the first ``per_class`` images of each class in
file order, so the same source always previews the same.
"""
from __future__ import annotations

import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from netbuilder.core.datasets.base import Dataset, DatasetError

IMBALANCE_RATIO = 2.0  # a class with fewer than 1/2 of the largest class's images is pointed out


@dataclass
class Preview:
    """Sample images and counts of a dataset; ``samples[k]`` is (n_k, C, H, W) float32 in [0, 1]."""

    name: str
    class_names: list[str]
    counts: list[int]  # training images per class
    test_counts: list[int] | None
    samples: list[np.ndarray]
    input_shape: tuple[int, int, int]
    notes: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def preview_dataset(spec: Mapping[str, Any], base_dir: str | Path | None = None, per_class: int = 8) -> Preview:
    """A Preview of the dataset ``spec`` describes, without loading a large one whole."""
    from netbuilder.core.datasets.registry import SPEC_KEYS, check_spec

    if not isinstance(per_class, int) or isinstance(per_class, bool) or per_class < 1:
        raise DatasetError(f"per_class must be a whole number >= 1, got {per_class!r}")
    base = Path(base_dir) if base_dir is not None else None
    kind = spec.get("kind") if isinstance(spec, Mapping) else None
    if kind in ("idx", "fashion-mnist", "mnist"):
        return _preview_idx(spec, base, per_class)
    if kind == "folder":
        return _preview_folder(spec, base, per_class)
    if kind == "npz":
        return _preview_npz(spec, base, per_class)
    if kind in SPEC_KEYS:
        check_spec(spec)
    from netbuilder.core.datasets import load_dataset

    return preview_from_dataset(load_dataset({k: v for k, v in spec.items() if k != "normalization"}, base), per_class)


def preview_from_dataset(ds: Dataset, per_class: int = 8) -> Preview:
    """A Preview of an already loaded Dataset."""
    k = ds.num_classes
    counts = np.bincount(ds.y_train, minlength=k).tolist()
    test_counts = np.bincount(ds.y_test, minlength=k).tolist() if ds.y_test is not None else None
    picks = first_per_class(ds.y_train, k, per_class)
    samples = [ds.x_train[idx].copy() for idx in picks]
    return Preview(ds.name, list(ds.class_names), counts, test_counts, samples, ds.input_shape,
                   imbalance_notes(counts, ds.class_names))


def first_per_class(labels: np.ndarray, num_classes: int, per_class: int) -> list[np.ndarray]:
    """For each class, the indices of its first ``per_class`` samples (in order)."""
    order = np.argsort(labels, kind="stable")
    starts = np.searchsorted(labels[order], np.arange(num_classes))
    ends = np.searchsorted(labels[order], np.arange(num_classes), side="right")
    return [order[s:min(e, s + per_class)] for s, e in zip(starts, ends)]


def imbalance_notes(counts: list[int], class_names: list[str], ratio: float = IMBALANCE_RATIO) -> list[str]:
    """Sentences pointing out empty classes and classes far smaller than the largest."""
    notes = []
    top = max(counts) if counts else 0
    biggest = class_names[int(np.argmax(counts))] if counts else ""
    empty = [n for n, c in zip(class_names, counts) if c == 0]
    if empty:
        notes.append(f"{len(empty)} class(es) have no training images: {', '.join(repr(n) for n in empty[:10])}")
    small = [(n, c) for n, c in zip(class_names, counts) if 0 < c and c * ratio <= top]
    if small:
        listed = ", ".join(f"{n!r} ({c})" for n, c in small[:10])
        notes.append(
            f"imbalanced classes: {listed} {'has' if len(small) == 1 else 'have'} at most 1/{ratio:g} of the "
            f"images of {biggest!r} ({top}); the network may learn to favour the larger classes. "
            'Training with "class_weights": "balanced" (the Train panel\'s Class weights) weighs every class alike'
        )
    return notes


def fit_problems(project: Any, input_shape: tuple[int, int, int], num_classes: int) -> list[str]:
    """Why a dataset of ``input_shape`` (C, H, W) and ``num_classes`` does not fit ``project`` (empty: it fits)."""
    problems = []
    if tuple(project.input_shape) != tuple(input_shape):
        problems.append(
            f"the project takes {_shape(project.input_shape)} inputs but the dataset's images are {_shape(input_shape)}"
        )
    k = project.num_classes
    if k is not None and k != num_classes and not (k == 1 and num_classes == 2):
        problems.append(f"the project has {k} outputs but the dataset has {num_classes} classes")
    return problems


def match_project(project: Any, input_shape: tuple[int, int, int], num_classes: int) -> Any:
    """A copy of ``project`` whose input shape and class count match the dataset.

    The last block, when its own units produce the old class count (a dense block), is resized too.
    """
    from netbuilder.core.blocks import kind_of

    out = project.copy()
    old = out.num_classes
    out.input_shape = tuple(int(v) for v in input_shape)
    if old is not None and not (old == 1 and num_classes == 2):
        out.num_classes = int(num_classes)
        last = out.blocks[-1] if out.blocks else None
        spec = kind_of(last) if isinstance(last, dict) else None
        if spec is not None and spec.field("units") is not None and last.get("units") == old:
            last["units"] = int(num_classes)
    return out


def _shape(s) -> str:
    c, h, w = s
    return f"{c}x{h}x{w} (channels x height x width)"


def _preview_idx(spec, base, per_class) -> Preview:
    from netbuilder.core.datasets.idx import check_label_range, idx_labels, read_idx_rows
    from netbuilder.core.datasets.registry import idx_sources

    src = idx_sources(spec, base)
    names = src["class_names"]
    y = idx_labels(src["train_labels"], len(names) if names else None)
    yt = idx_labels(src["test_labels"], len(names) if names else None) if "test_labels" in src else None
    if names is None:
        top = max(int(y.max()), int(yt.max()) if yt is not None else 0)
        names = [str(i) for i in range(max(top + 1, 2))]
    check_label_range(y, len(names), str(src["train_labels"]))
    k = len(names)
    picks = first_per_class(y, k, per_class)
    flat = np.concatenate(picks)
    rows, dims = read_idx_rows(src["train_images"], flat.tolist())
    if len(dims) != 3 or rows.dtype != np.uint8:
        raise DatasetError(
            f"{src['train_images']}: an images file holds (count, rows, columns) unsigned bytes, got shape {dims}"
        )
    if dims[0] != len(y):
        raise DatasetError(
            f"{src['train_images']}: {dims[0]} images but {Path(src['train_labels']).name} has {len(y)} labels; "
            "the counts must match"
        )
    if src.get("transpose"):
        rows = rows.transpose(0, 2, 1)
    images = (rows[:, None].astype(np.float32) / np.float32(255)).astype(np.float32)
    splits = np.cumsum([len(p) for p in picks])[:-1]
    counts = np.bincount(y, minlength=k).tolist()
    name = src["name"] or Path(src["train_images"]).parent.name
    return Preview(name, list(names), counts, np.bincount(yt, minlength=k).tolist() if yt is not None else None,
                   np.split(images, splits), tuple(int(v) for v in images.shape[1:]), imbalance_notes(counts, names))


def _preview_folder(spec, base, per_class) -> Preview:
    from netbuilder.core.datasets import folder
    from netbuilder.core.datasets.registry import FOLDER_ORDER_WHEN_UNSET, check_spec, resolve_path

    check_spec(spec)
    root = resolve_path(spec["path"], base)
    test_root = resolve_path(spec["test_path"], base) if "test_path" in spec else None
    val_root = resolve_path(spec["val_path"], base) if "val_path" in spec else None
    if test_root is None and val_root is None:
        roots = folder.split_roots(root)
        root, val_root, test_root = roots.train, roots.val, roots.test
    order = spec.get("class_order", FOLDER_ORDER_WHEN_UNSET)
    scan = folder.scan_folder(root, class_order=order)
    test = folder.scan_folder(test_root, require_classes=False, class_order=order) if test_root is not None else None
    unknown = [c for c in (test.class_names if test else []) if c not in scan.class_names]
    if unknown:
        raise DatasetError(
            f"{test.root / unknown[0]}: test class {unknown[0]!r} is not among the training classes {scan.class_names}"
        )
    shape = spec.get("input_shape")
    sample_files = [files[:per_class] for files in scan.files]
    notes: list[str] = []
    if shape is None:
        flat = [(p, k) for k, fs in enumerate(sample_files) for p in fs]
        shape = folder._infer_shape(flat, "skip", {}, None, 1)
        notes.append(f"input shape {list(shape)} estimated from the sampled images")
    resize = spec.get("resize", "fit")
    samples, unreadable, none_read = [], 0, []
    for name, files in zip(scan.class_names, sample_files):
        arrs = []
        for p in files:
            try:
                arrs.append(folder.load_image(p, shape, resize))
            except DatasetError:
                raise
            except Exception:  # any failure decoding one file makes that file unusable
                unreadable += 1
        samples.append(np.stack(arrs) if arrs else np.zeros((0, *shape), np.float32))
        if not arrs:
            none_read.append(name)
    if unreadable:
        notes.append(f"{unreadable} sampled file(s) could not be read; they will be skipped when loading")
    if none_read:
        notes.append(f"no sampled image of class(es) {', '.join(repr(n) for n in none_read)} could be read")
    test_counts = None
    if test is not None:
        by_name = dict(zip(test.class_names, test.counts))
        test_counts = [by_name.get(n, 0) for n in scan.class_names]
    if scan.ignored:
        notes.append(f"{len(scan.ignored)} file(s) without an image extension will be ignored")
    if val_root is not None:
        val = folder.scan_folder(val_root, require_classes=False, class_order=order)
        notes.append(f"validation: the {sum(val.counts):,} images of {val_root.name}/ (instead of a share of "
                     "the training images)")
    name = spec.get("name") or resolve_path(spec["path"], base).resolve().name
    return Preview(name, scan.class_names, scan.counts, test_counts, samples, tuple(shape),
                   imbalance_notes(scan.counts, scan.class_names) + notes)


def _preview_npz(spec, base, per_class) -> Preview:
    from netbuilder.core.datasets.npz import _TRAIN_KEYS, _load_npz, encode_labels, images_to_unit
    from netbuilder.core.datasets.registry import check_spec, resolve_path

    check_spec(spec)
    path = resolve_path(spec["path"], base)
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile):
        # Not a zip (or unreadable): the full reader gives the precise message.
        _load_npz(path)
        raise DatasetError(f"{path}: not a readable .npz file") from None
    with zf:
        members = {n[:-4]: n for n in zf.namelist() if n.endswith(".npy")}
        xkey, ykey = next(((x, y) for x, y in _TRAIN_KEYS if x in members and y in members), (None, None))
        x_rows = _npz_rows(zf, members[xkey], path, xkey) if xkey else None
    if x_rows is None:  # missing keys, Fortran order, or damage: the full reader explains or copes
        from netbuilder.core.datasets.registry import load_npz_spec

        return preview_from_dataset(load_npz_spec(spec, base), per_class)
    ys = [(_load_npz_only(path, ykey), f"{path} [{ykey}]")]
    if "y_test" in members:
        ys.append((_load_npz_only(path, "y_test"), f"{path} [y_test]"))
    labels, names = encode_labels(ys, spec.get("class_names"))
    y = labels[0]
    shape, read_rows = x_rows
    if shape[0] != len(y):
        raise DatasetError(f"{path} [{xkey}]: {shape[0]} images but {len(y)} labels in {ykey}; the counts must match")
    picks = first_per_class(y, len(names), per_class)
    flat = np.concatenate(picks)
    notes: list[str] = []
    x = images_to_unit(read_rows(flat), f"{path} [{xkey}]", spec.get("layout"), spec.get("image_shape"), notes)
    splits = np.cumsum([len(p) for p in picks])[:-1]
    counts = np.bincount(y, minlength=len(names)).tolist()
    test_counts = np.bincount(labels[1], minlength=len(names)).tolist() if len(labels) > 1 else None
    return Preview(spec.get("name") or path.stem, names, counts, test_counts, np.split(x, splits),
                   tuple(int(v) for v in x.shape[1:]), imbalance_notes(counts, names) + notes)


def _load_npz_only(path: Path, key: str) -> np.ndarray:
    with np.load(path, allow_pickle=False) as archive:
        try:
            return archive[key]
        except ValueError:
            raise DatasetError(
                f"{path}: array {key!r} holds pickled Python objects; refused (loading a pickle can run arbitrary "
                "code)"
            ) from None


def _npz_rows(zf: zipfile.ZipFile, member: str, path: Path, key: str):
    """(shape, read(indices) -> rows) for a C-order array member, or None to fall back to a full load."""
    from numpy.lib import format as npformat

    try:
        f = zf.open(member)
        version = npformat.read_magic(f)
        readers = {(1, 0): npformat.read_array_header_1_0, (2, 0): npformat.read_array_header_2_0}
        if version not in readers:
            f.close()
            return None
        shape, fortran, dtype = readers[version](f)
        offset = f.tell()
    except Exception:  # damaged or unusual: the full reader names the problem
        return None
    if dtype.hasobject:
        f.close()
        raise DatasetError(
            f"{path}: array {key!r} holds pickled Python objects; refused (loading a pickle can run arbitrary code)"
        )
    if fortran or len(shape) < 2:
        f.close()
        return None
    row_items = int(np.prod(shape[1:], dtype=np.int64))

    def read(indices: np.ndarray) -> np.ndarray:
        out = np.empty((len(indices), *shape[1:]), dtype)
        with f:
            for j in np.argsort(indices, kind="stable"):
                f.seek(offset + int(indices[j]) * row_items * dtype.itemsize)
                data = f.read(row_items * dtype.itemsize)
                if len(data) != row_items * dtype.itemsize:
                    raise DatasetError(f"{path}: array {key!r} is truncated at image {int(indices[j])}")
                out[j] = np.frombuffer(data, dtype, row_items).reshape(shape[1:])
        return out

    return tuple(shape), read
