"""MNIST-format IDX files, raw or gzip: the format of MNIST, Fashion-MNIST, KMNIST and EMNIST.

An IDX file is a 4-byte magic number (two zero bytes, a type code, a dimension count), one
big-endian uint32 per dimension, then the values in C order. Images files are (N, rows, cols)
unsigned bytes, labels files (N,) integers. Every check names the file; a file is accepted
only when its size matches its header exactly, so a truncated download never loads.

Images larger than ``cache.map_threshold()`` as float32 are not read into memory: a raw file is
memory-mapped where it is, a gzip one is decompressed once into a uint8 cache
(``core.datasets.cache``) and mapped from there; either way they come as ``MappedImages``.
"""
from __future__ import annotations

import contextlib
import gzip
import re
import struct
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from netbuilder.core.datasets.base import Dataset, DatasetError
from netbuilder.core.datasets.mapped import MappedImages

# IDX type code -> (numpy dtype, readable name).
IDX_TYPES = {
    0x08: (np.dtype(np.uint8), "unsigned byte"),
    0x09: (np.dtype(np.int8), "signed byte"),
    0x0B: (np.dtype(">i2"), "16-bit integer"),
    0x0C: (np.dtype(">i4"), "32-bit integer"),
    0x0D: (np.dtype(">f4"), "32-bit float"),
    0x0E: (np.dtype(">f8"), "64-bit float"),
}

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
MNIST_CLASSES = tuple(str(d) for d in range(10))

# The standard names, and the variants unpacking tools and mirrors produce:
# train-images-idx3-ubyte, train-images.idx3-ubyte, emnist-letters-train-images-idx3-ubyte.gz, ...
_NAME = re.compile(
    r"^(?P<prefix>.*?)(?P<split>train|t10k|test)[-_.](?P<what>images|labels)"
    r"[-_.]idx(?P<ndim>\d)[-_.]ubyte(?P<gz>\.gz)?$",
    re.IGNORECASE,
)


def read_file_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when they start with the gzip magic (whatever the extension)."""
    from netbuilder.core.memory import size_text
    from netbuilder.core.untrusted import check_regular_file, memory_cap

    path = Path(path)
    if path.exists() and not path.is_dir():
        check_regular_file(path, DatasetError, "data file")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DatasetError(f"{path}: is a folder, expected a file") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if data[:2] != b"\x1f\x8b":
        return data
    cap = memory_cap()
    try:  # streamed with a limit: a small file may inflate to gigabytes (a zip bomb)
        inflater = zlib.decompressobj(wbits=31)
        out = inflater.decompress(data, cap + 1)
        if len(out) > cap:
            raise DatasetError(f"{path}: gzip data unpacks to more than {size_text(cap)} (half this machine's "
                               f"memory) from {size_text(len(data))}; refused")
        if not inflater.eof:
            raise EOFError
        return out
    except EOFError:
        raise DatasetError(f"{path}: gzip data ends early: the file is truncated (an incomplete download?)") from None
    except (gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise DatasetError(f"{path}: corrupt gzip data ({exc})") from None


def parse_idx_header(data: bytes, source: str) -> tuple[np.dtype, tuple[int, ...], int]:
    """(dtype, dims, data offset) of IDX bytes, checking the magic number only."""
    if len(data) < 4:
        raise DatasetError(f"{source}: {len(data)} bytes is too short for an IDX file (4-byte magic number)")
    magic = int.from_bytes(data[:4], "big")
    if data[0] != 0 or data[1] != 0 or data[2] not in IDX_TYPES or data[3] == 0:
        raise DatasetError(
            f"{source}: not an IDX file: magic number 0x{magic:08X}; IDX files start 0x0000, a type code "
            "and a dimension count (0x00000803 for an images file, 0x00000801 for a labels file)"
        )
    dtype = IDX_TYPES[data[2]][0]
    ndim = data[3]
    offset = 4 + 4 * ndim
    if len(data) < offset:
        raise DatasetError(
            f"{source}: truncated: the header declares {ndim} dimensions but the file ends at byte {len(data)}"
        )
    dims = struct.unpack(f">{ndim}I", data[4:offset])
    return dtype, tuple(int(d) for d in dims), offset


def parse_idx(data: bytes, source: str) -> np.ndarray:
    """The array in IDX bytes (a read-only view of ``data``); ``source`` names the file in errors."""
    dtype, dims, offset = parse_idx_header(data, source)
    count = int(np.prod(dims, dtype=np.int64))
    expected = count * dtype.itemsize
    got = len(data) - offset
    shape = " x ".join(str(d) for d in dims)
    if got < expected:
        raise DatasetError(
            f"{source}: truncated: the header declares {shape} values ({expected} bytes) but only {got} bytes follow"
        )
    if got > expected:
        raise DatasetError(
            f"{source}: {got - expected} unexpected bytes after the {shape} values the header declares "
            "(wrong dimensions in the header, or not an IDX file)"
        )
    return np.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(dims)


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in an IDX file (raw or gzip)."""
    path = Path(path)
    return parse_idx(read_file_bytes(path), str(path))


@contextlib.contextmanager
def _read_errors(path: Path):
    """Reading an IDX file's header or rows: a missing, cut-short or unreadable file as one DatasetError."""
    try:
        yield
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except EOFError:
        raise DatasetError(f"{path}: gzip data ends early: the file is truncated (an incomplete download?)") from None
    except (gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise DatasetError(f"{path}: cannot be read ({exc})") from None


def read_idx_rows(path: str | Path, indices: Sequence[int]) -> tuple[np.ndarray, tuple[int, ...]]:
    """(the entries at ``indices`` along axis 0, the file's full dims), reading no further than needed.

    For previews of large files: a raw file is read by seeking, a gzip one is decompressed
    only up to the last index asked for.
    """
    path = Path(path)
    with _read_errors(path):
        with open(path, "rb") as f:
            is_gz = f.read(2) == b"\x1f\x8b"
        opener = gzip.open if is_gz else open
        with opener(path, "rb") as f:
            head = f.read(4)
            rest = f.read(4 * head[3]) if len(head) == 4 else b""
            dtype, dims, offset = parse_idx_header(head + rest, str(path))
            row = int(np.prod(dims[1:], dtype=np.int64)) * dtype.itemsize
            if not is_gz:  # a raw file's size is known without reading it: check it as read_idx does
                size, expected = path.stat().st_size, offset + dims[0] * row
                if size != expected:
                    what = "truncated" if size < expected else f"{size - expected} unexpected bytes at the end"
                    raise DatasetError(f"{path}: {what}: the header declares {' x '.join(map(str, dims))} values")
            out = np.empty((len(indices), *dims[1:]), dtype)
            for j, i in sorted(enumerate(indices), key=lambda t: t[1]):
                if not 0 <= i < dims[0]:
                    raise DatasetError(f"{path}: index {i} is out of range for {dims[0]} entries")
                f.seek(offset + i * row)
                data = f.read(row)
                if len(data) != row:
                    raise DatasetError(
                        f"{path}: truncated: entry {i} of the {dims[0]} the header declares is cut short"
                    )
                out[j] = np.frombuffer(data, dtype).reshape(dims[1:])
    return out, dims


def idx_images(path: str | Path, transpose: bool = False) -> np.ndarray:
    """An IDX images file as (N, 1, rows, cols) float32 in [0, 1].

    ``transpose`` swaps rows and columns (EMNIST stores its images transposed).
    """
    path = Path(path)
    raw = read_idx(path)
    if raw.ndim != 3:
        hint = " (this looks like a labels file)" if raw.ndim == 1 else ""
        raise DatasetError(
            f"{path}: an images file has 3 dimensions (count, rows, columns), got {raw.ndim}: shape {raw.shape}{hint}"
        )
    if raw.dtype != np.uint8:
        raise DatasetError(f"{path}: images must be unsigned bytes (IDX type 0x08), got {raw.dtype.name} values")
    if min(raw.shape) == 0:
        raise DatasetError(f"{path}: holds no images (shape {raw.shape})")
    if transpose:
        raw = raw.transpose(0, 2, 1)
    n, h, w = raw.shape
    x = np.empty((n, 1, h, w), np.float32)
    np.divide(raw.reshape(n, 1, h, w), np.float32(255), out=x)
    return x


def read_idx_header(path: str | Path) -> tuple[np.dtype, tuple[int, ...], int, bool]:
    """(dtype, dims, data offset, whether gzip) of an IDX file, reading its header only."""
    from netbuilder.core.untrusted import check_regular_file

    path = Path(path)
    if path.exists() and not path.is_dir():
        check_regular_file(path, DatasetError, "data file")  # a FIFO would hang the read
    with _read_errors(path):
        with open(path, "rb") as f:
            is_gz = f.read(2) == b"\x1f\x8b"
        with (gzip.open if is_gz else open)(path, "rb") as f:
            head = f.read(4)
            head += f.read(4 * head[3]) if len(head) == 4 else b""
    dtype, dims, offset = parse_idx_header(head, str(path))
    return dtype, dims, offset, is_gz


def mapped_idx_images(path: str | Path, transpose: bool = False, notes: list[str] | None = None,
                      progress: Callable[[int, int, str], None] | None = None) -> MappedImages:
    """An IDX images file as ``MappedImages`` (N, 1, rows, cols): a raw file mapped where it is, a
    gzip one decompressed once into the uint8 cache. ``notes`` receives where they are read from."""
    from netbuilder.core.datasets import cache
    from netbuilder.core.memory import size_text

    path = Path(path)
    dtype, dims, offset, is_gz = read_idx_header(path)
    if len(dims) != 3:
        raise DatasetError(f"{path}: an images file has 3 dimensions (count, rows, columns), got {len(dims)}")
    if dtype != np.uint8:
        raise DatasetError(f"{path}: images must be unsigned bytes (IDX type 0x08), got {dtype.name} values")
    if min(dims) == 0:
        raise DatasetError(f"{path}: holds no images (shape {dims})")
    n, h, w = dims
    if is_gz:
        cached = cache.cached_or_built("idx", [path], [path], path.name, {"dims": list(dims)},
                                       lambda: {"images": (dims, np.uint8)},
                                       lambda maps: _gunzip_into(path, offset, maps["images"], progress))
        base, where = cached.arrays["images"], cache.shown_path(cached.folder)
        note = f"{path.name}: {cached.note()}"
    else:
        size, expected = path.stat().st_size, offset + n * h * w
        if size != expected:
            what = "truncated" if size < expected else f"{size - expected} unexpected bytes at the end"
            raise DatasetError(f"{path}: {what}: the header declares {n} x {h} x {w} values")
        base = np.memmap(path, np.uint8, "r", offset=offset, shape=dims)
        where = str(path)
        note = f"{path.name}: read by memory map as uint8 ({size_text(n * h * w)})"
        cache.announce(path.name, note)
    if notes is not None:
        notes.append(note)
    base = base.reshape(n, 1, h, w)
    return MappedImages(base.transpose(0, 1, 3, 2) if transpose else base, where=where)


def _gunzip_into(path: Path, offset: int, out: np.ndarray, progress) -> dict:
    """Decompress the values of a gzip IDX file into ``out`` (a writable map), chunk by chunk."""
    from netbuilder.core.datasets import cache

    flat = memoryview(out.reshape(-1))
    row = out[0].size
    step = cache.BuildProgress(f"caching {path.name} as uint8", len(out), progress)
    pos = 0
    try:
        with gzip.open(path, "rb") as f:
            f.read(offset)
            while pos < len(flat):
                got = f.readinto(flat[pos:pos + (16 << 20)])
                if not got:
                    raise DatasetError(f"{path}: truncated: the header declares {len(out)} images but the data "
                                       f"ends after {pos // row}")
                pos += got
                step(pos // row)
            if f.read(1):
                raise DatasetError(f"{path}: unexpected bytes after the {' x '.join(map(str, out.shape))} values the "
                                   "header declares (wrong dimensions in the header, or not an IDX file)")
    except EOFError:
        raise DatasetError(f"{path}: gzip data ends early: the file is truncated (an incomplete download?)") from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise DatasetError(f"{path}: corrupt gzip data ({exc})") from None
    return {}


def idx_labels(path: str | Path, num_classes: int | None = None) -> np.ndarray:
    """An IDX labels file as (N,) int64; values must be in [0, num_classes) when that is given."""
    path = Path(path)
    raw = read_idx(path)
    if raw.ndim != 1:
        hint = " (this looks like an images file)" if raw.ndim == 3 else ""
        raise DatasetError(f"{path}: a labels file has 1 dimension, got {raw.ndim}: shape {raw.shape}{hint}")
    if raw.dtype.kind == "f":
        raise DatasetError(f"{path}: labels must be integers, got {raw.dtype.name} values (IDX float type)")
    if len(raw) == 0:
        raise DatasetError(f"{path}: holds no labels")
    y = raw.astype(np.int64)
    check_label_range(y, num_classes, str(path))
    return y


def check_label_range(y: np.ndarray, num_classes: int | None, source: str) -> None:
    """Raise naming the first label below 0 (or at/above ``num_classes``) and its index."""
    bad = y < 0 if num_classes is None else (y < 0) | (y >= num_classes)
    if bad.any():
        i = int(np.argmax(bad))
        allowed = ">= 0" if num_classes is None else f"in [0, {num_classes}) for {num_classes} classes"
        raise DatasetError(f"{source}: label {int(y[i])} at index {i} is out of range: labels must be {allowed}")


def find_idx_files(folder: str | Path) -> dict[str, Path]:
    """The IDX files in ``folder`` by role: train_images, train_labels and, if present, test_*.

    Recognises the standard names with or without .gz and common variants (dots for dashes,
    a prefix such as "emnist-letters-"). Where both a raw and a .gz copy exist the raw one is used.
    """
    folder = Path(folder)
    if not folder.is_dir():
        what = "not found" if not folder.exists() else "is not a folder"
        raise DatasetError(f"{folder}: IDX folder {what}")
    found: dict[tuple[str, str], dict[str, list[Path]]] = {}
    for entry in sorted(folder.iterdir()):
        m = _NAME.match(entry.name)
        if m is None or not entry.is_file():
            continue
        split = "train" if m["split"].lower() == "train" else "test"
        role = f"{split}_{m['what'].lower()}"
        found.setdefault((m["prefix"], role), {}).setdefault("gz" if m["gz"] else "raw", []).append(entry)
    prefixes = sorted({p for p, _ in found})
    if not prefixes:
        raise DatasetError(
            f"{folder}: no IDX files found; expected train-images-idx3-ubyte and train-labels-idx1-ubyte "
            "(optionally .gz, plus t10k-images/t10k-labels for a test split), or name the files in the spec"
        )
    if len(prefixes) > 1:
        raise DatasetError(
            f"{folder}: IDX files of several datasets ({', '.join(repr(p) for p in prefixes)}); "
            "name the files to use with train_images/train_labels in the spec"
        )
    prefix = prefixes[0]
    files = {}
    for (_prefix, role), copies in found.items():
        files[role] = (copies.get("raw") or copies["gz"])[0]
    for need in ("train_images", "train_labels"):
        if need not in files:
            other = "train_labels" if need == "train_images" else "train_images"
            have = f"found {files[other].name} but " if other in files else ""
            raise DatasetError(f"{folder}: {have}no {need.replace('_', ' ')} file ({prefix}train-{need[6:]}-idx...)")
    if ("test_images" in files) != ("test_labels" in files):
        have, missing = ("test_images", "test_labels") if "test_images" in files else ("test_labels", "test_images")
        raise DatasetError(f"{folder}: found {files[have].name} but no {missing.replace('_', ' ')} file to go with it")
    return files


def load_idx(
    train_images: str | Path,
    train_labels: str | Path,
    test_images: str | Path | None = None,
    test_labels: str | Path | None = None,
    class_names: Sequence[str] | None = None,
    name: str | None = None,
    transpose: bool = False,
    notes: list[str] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> Dataset:
    """A Dataset from IDX files; without ``class_names`` classes are named "0".."K-1".

    K is then the largest label + 1 across both splits. Errors name the file and, for labels,
    the index of the first bad one. A set too large for memory comes as ``MappedImages`` (see
    the module); ``notes`` then receives where it is read from, ``progress`` a cache build's steps.
    """
    if (test_images is None) != (test_labels is None):
        raise DatasetError("IDX dataset: give test_images and test_labels together, or neither")
    k = len(class_names) if class_names is not None else None
    if _too_big(train_images, test_images):
        def images(path):
            return mapped_idx_images(path, transpose, notes, progress)
    else:
        def images(path):
            return idx_images(path, transpose)
    x_train = images(train_images)
    y_train = idx_labels(train_labels, k)
    _check_counts(x_train, y_train, train_images, train_labels)
    x_test = y_test = None
    if test_images is not None:
        x_test = images(test_images)
        y_test = idx_labels(test_labels, k)
        _check_counts(x_test, y_test, test_images, test_labels)
        if x_test.shape[1:] != x_train.shape[1:]:
            raise DatasetError(
                f"{test_images}: test images are {x_test.shape[2]}x{x_test.shape[3]} but the training images "
                f"in {Path(train_images).name} are {x_train.shape[2]}x{x_train.shape[3]}"
            )
    if class_names is None:
        top = int(max(y_train.max(), y_test.max() if y_test is not None else 0))
        class_names = [str(i) for i in range(max(top + 1, 2))]
    if len(np.unique(y_train)) < 2:
        raise DatasetError(
            f"{train_labels}: every label is {int(y_train[0])}; a classifier needs images of at least two classes"
        )
    return Dataset(
        name or Path(train_images).parent.name or "idx",
        x_train, y_train, list(class_names), x_test, y_test,
    )


def _too_big(*paths) -> bool:
    """Whether these images files together are above the memory-mapping threshold as float32;
    False when a header cannot be read (the in-memory reader then says what is wrong)."""
    from netbuilder.core.datasets import cache

    total = 0
    for path in paths:
        if path is not None:
            try:
                total += int(np.prod(read_idx_header(path)[1], dtype=np.int64)) * 4
            except (DatasetError, IndexError):
                return False
    return cache.should_map(total)


def _check_counts(x: np.ndarray, y: np.ndarray, images: str | Path, labels: str | Path) -> None:
    if len(x) != len(y):
        raise DatasetError(
            f"{images}: {len(x)} images but {Path(labels).name} has {len(y)} labels; the counts must match"
        )
