"""A folder of images with one sub-folder per class, read with Pillow (PNG, JPEG, BMP, GIF, TIFF, WebP).

Layout: ``root/<class>/**/<image>``. Class names are the sub-folder names, and their order gives
the label indices: ``class_order="sorted"`` sorts them plainly, as torchvision's ImageFolder and
Keras do (``class10`` before ``class2``); ``"natural"`` sorts numbers by value (``class2`` before
``class10``). If ``root`` holds ``train/`` with ``val/`` (or ``valid/``, ``validation/``) and/or
``test/``, each with class sub-folders, they are the splits.

Each image is prepared by ``core.images.decode_image``, the one implementation that
``netbuilder predict`` and the window's Try view use too. Resizing to the target (C, H, W), by ``resize``:
  "fit" (default): scaled with its proportions kept so the whole image fits, the rest padded black.
      Nothing of the object is cut off, and images already of the target's proportions are
      simply resized.
  "crop": scaled with its proportions kept to cover the target; the overflow cut equally both sides.
  "pad": not scaled; centred on a black canvas (cut if larger), for images near the right size.
  "stretch": scaled to the target, proportions not kept.
Colour: every image is converted to grey (C=1, ITU-R 601 luma) or RGB (C=3); transparency is
composited onto black; 16-bit images keep their full range. Conversions and resizes are counted
and reported.

Unreadable files: a file with an image extension that Pillow cannot read (corrupt, truncated,
not really an image) is skipped, counted and named in the report, because one broken download
among thousands should not block training; ``on_bad_file="error"`` stops at the first instead.
A class left with no readable image is always an error. Files with other extensions (README.txt,
.DS_Store) are ignored and counted. Loading runs on a thread pool with a progress callback.

A set whose float32 size is above ``cache.map_threshold()`` is decoded once, in chunks, into a uint8
cache on disk (``core.datasets.cache``) and handed out as ``MappedImages``; later loads read the
cache while no file changed. Images of more than 8 bits per channel are rounded to 8 bits there.
"""
from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from netbuilder.core.datasets import cache
from netbuilder.core.datasets.base import Dataset, DatasetError
from netbuilder.core.datasets.mapped import MappedImages, is_mapped
from netbuilder.core.datasets.npz import natural_sorted
from netbuilder.core.images import RESIZE_MODES, SIXTEEN_BIT_MODES, check_input_shape, decode_image, failure_reason

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm", ".pnm"}
)
CLASS_ORDERS = ("sorted", "natural")
VAL_NAMES = ("val", "valid", "validation")
BAD_FILE_POLICIES = ("skip", "error")
_CACHE_CHUNK_BYTES = 8 << 20  # float32 images decoded at a time while building the cache
_GREY_MODES = frozenset({"1", "L", "LA", "La", "F", *SIXTEEN_BIT_MODES})
_CHUNK = 32  # files per pool task: few enough callbacks, fine enough progress

# progress(done, total, what): files handled so far of ``total``, and the current phase.
Progress = Callable[[int, int, str], None]


@dataclass
class FolderScan:
    """The class sub-folders of one split and their image files (sorted), before any decoding."""

    root: Path
    class_names: list[str]
    files: list[list[Path]]
    ignored: list[Path] = field(default_factory=list)  # files without an image extension

    @property
    def counts(self) -> list[int]:
        return [len(f) for f in self.files]


@dataclass
class FolderReport:
    """What happened while reading a folder, for the user: skips, conversions, resizes."""

    input_shape: tuple[int, int, int]
    resize: str
    loaded: int = 0
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (file, reason)
    ignored: int = 0
    converted: Counter = field(default_factory=Counter)  # source mode -> images converted from it
    resized: int = 0
    cache: list[str] = field(default_factory=list)  # where the set is cached, what was rounded there

    def notes(self) -> list[str]:
        c, h, w = self.input_shape
        out = []
        if self.skipped:
            shown = "; ".join(f"{p.name}: {why}" for p, why in self.skipped[:5])
            more = f"; and {len(self.skipped) - 5} more" if len(self.skipped) > 5 else ""
            out.append(f"skipped {len(self.skipped)} unreadable image file(s): {shown}{more}")
        if self.ignored:
            out.append(f"ignored {self.ignored} file(s) without an image extension")
        if self.converted:
            target = "grey" if c == 1 else "RGB"
            modes = ", ".join(f"{m}: {n}" for m, n in sorted(self.converted.items()))
            out.append(f"converted {sum(self.converted.values())} image(s) to {target} ({modes})")
        if self.resized:
            out.append(f"resized {self.resized} of {self.loaded} image(s) to {h}x{w} ({self.resize})")
        return out + self.cache


@dataclass
class SplitRoots:
    """The folders of an image dataset's splits: ``train`` always, ``val`` and ``test`` if given."""

    train: Path
    val: Path | None = None
    test: Path | None = None


def split_roots(root: str | Path) -> SplitRoots:
    """``root/train`` with ``root/val`` (``valid``, ``validation``) and/or ``root/test`` when
    ``train`` and one of them exist (names in any case); otherwise ``root`` is the training set."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: image folder {'not found' if not root.exists() else 'is not a folder'}")
    subdirs = {d.name.lower(): d for d in root.iterdir() if d.is_dir() and not _hidden(d.name)}
    val = next((subdirs[n] for n in VAL_NAMES if n in subdirs), None)
    test = subdirs.get("test")
    if "train" in subdirs and (val is not None or test is not None):
        return SplitRoots(subdirs["train"], val, test)
    return SplitRoots(root)


def scan_folder(root: str | Path, require_classes: bool = True, class_order: str = "sorted") -> FolderScan:
    """The class sub-folders of ``root`` in ``class_order`` and their image files; no image is opened.

    With ``require_classes`` (training data) at least two classes, each with an image file,
    are required.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: image folder {'not found' if not root.exists() else 'is not a folder'}")
    if class_order not in CLASS_ORDERS:
        raise DatasetError(f"image folder: class_order must be 'sorted' or 'natural', got {class_order!r}")
    found_classes = [d.name for d in root.iterdir() if d.is_dir() and not _hidden(d.name)]
    classes = sorted(found_classes) if class_order == "sorted" else natural_sorted(found_classes)
    files, ignored = [], [p for p in root.iterdir() if p.is_file() and not _hidden(p.name)]
    for name in classes:
        found = []
        for dirpath, dirnames, filenames in os.walk(root / name):
            dirnames[:] = [d for d in dirnames if not _hidden(d)]
            for f in filenames:
                if _hidden(f):
                    continue
                p = Path(dirpath) / f
                # Only regular files: a FIFO named like an image would hang the reader.
                regular = p.suffix.lower() in IMAGE_EXTENSIONS and os.path.isfile(p)
                (found if regular else ignored).append(p)
        files.append(sorted(found, key=lambda p: _natural_key(str(p.relative_to(root)))))
    if require_classes:
        if len(classes) < 2:
            got = f"only {classes[0]!r}" if classes else "none"
            raise DatasetError(
                f"{root}: an image folder needs at least two class sub-folders (one per class, holding its "
                f"images), found {got}"
            )
        for name, f in zip(classes, files):
            if not f:
                raise DatasetError(
                    f"{root / name}: class {name!r} has no image files ({', '.join(sorted(IMAGE_EXTENSIONS))})"
                )
    return FolderScan(root, classes, files, ignored)


def read_image_folder(
    root: str | Path,
    input_shape: Sequence[int] | None = None,
    resize: str = "fit",
    test_root: str | Path | None = None,
    on_bad_file: str = "skip",
    class_order: str = "sorted",
    val_root: str | Path | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
    name: str | None = None,
    notes: list[str] | None = None,
) -> tuple[Dataset, FolderReport]:
    """A Dataset from an image folder, and the report of what was skipped or converted.

    ``input_shape`` (C, H, W) with C 1 or 3 is the target; without it the most common image
    size is used, grey if every image is grey, else RGB. ``notes`` receives the report's notes.
    Without ``test_root`` and ``val_root``, ``root``'s own train/val/test sub-folders are used
    when it has them (``split_roots``).
    """
    if resize not in RESIZE_MODES:
        raise DatasetError(f"image folder: resize must be one of {', '.join(RESIZE_MODES)}, got {resize!r}")
    if on_bad_file not in BAD_FILE_POLICIES:
        raise DatasetError(f"image folder: on_bad_file must be 'skip' or 'error', got {on_bad_file!r}")
    given = Path(root)
    if test_root is None and val_root is None:
        roots = split_roots(root)
        root, val_root, test_root = roots.train, roots.val, roots.test
    train = scan_folder(root, class_order=class_order)
    extra = {"val": val_root, "test": test_root}  # the held-out splits, scanned against train's classes
    scans = {k: scan_folder(r, require_classes=False, class_order=class_order) for k, r in extra.items()
             if r is not None}
    items = [(p, k) for k, fs in enumerate(train.files) for p in fs]
    n_train = len(items)
    spans = {}  # split -> (start, stop) in items
    for split, scan in scans.items():
        unknown = [c for c in scan.class_names if c not in train.class_names]
        if unknown:
            raise DatasetError(
                f"{scan.root / unknown[0]}: {split} class {unknown[0]!r} is not among the training classes "
                f"{train.class_names}"
            )
        start = len(items)
        items += [(p, train.class_names.index(scan.class_names[k])) for k, fs in enumerate(scan.files) for p in fs]
        spans[split] = (start, len(items))

    skipped: dict[int, str] = {}
    if input_shape is None:
        input_shape = _infer_shape(items[:n_train], on_bad_file, skipped, progress, workers)
    shape = _check_shape(input_shape)
    c, h, w = shape
    report = FolderReport(shape, resize, ignored=len(train.ignored) + sum(len(s.ignored) for s in scans.values()))
    if cache.should_map(len(items) * c * h * w * 4):
        roots = [root] + [r for r in (val_root, test_root) if r is not None]
        options = {"shape": list(shape), "resize": resize, "on_bad_file": on_bad_file, "class_order": class_order,
                   "classes": train.class_names, "splits": {"train": n_train, **spans}}
        x, modes, resized, report.cache = _decode_cached(roots, name or given.resolve().name, options, items, shape,
                                                         resize, on_bad_file, skipped, progress, workers)
    else:
        x, modes, resized = _decode_all(items, shape, resize, on_bad_file, skipped, progress, workers)

    ok = np.ones(len(items), bool)
    for i, why in sorted(skipped.items()):
        ok[i] = False
        report.skipped.append((items[i][0], why))
    labels = np.array([k for _, k in items], np.int64)
    target = "L" if c == 1 else "RGB"
    report.converted = Counter(m for i, m in enumerate(modes) if ok[i] and m != target)
    report.resized = int(resized[ok].sum())
    report.loaded = int(ok.sum())

    train_ok = ok[:n_train]
    counts = np.bincount(labels[:n_train][train_ok], minlength=len(train.class_names))
    for k, cnt in enumerate(counts):
        if cnt == 0:
            reasons = [why for i, why in skipped.items() if i < n_train and labels[i] == k]
            raise DatasetError(
                f"{train.root / train.class_names[k]}: class {train.class_names[k]!r} has no readable image: "
                f"all {len(train.files[k])} file(s) were skipped (first: {reasons[0] if reasons else '?'})"
            )
    x_train = _part(x, 0, n_train, train_ok)
    y_train = labels[:n_train][train_ok]
    held = {"val": (None, None), "test": (None, None)}
    for split, (start, stop) in spans.items():
        keep = ok[start:stop]
        if keep.any():
            held[split] = (_part(x, start, stop, keep), labels[start:stop][keep])
    if notes is not None:
        notes.extend(report.notes())
    ds = Dataset(name or given.resolve().name, x_train, y_train, train.class_names, *held["test"], *held["val"])
    return ds, report


def _part(x, start: int, stop: int, keep: np.ndarray):
    """Images ``start:stop`` of ``x`` where ``keep``: a view of a mapped set, else an array."""
    if is_mapped(x):
        return x.subset(slice(start, stop)) if keep.all() else x.subset(np.flatnonzero(keep) + start)
    return x[start:stop] if keep.all() else x[start:stop][keep]


def load_image(path: str | Path, input_shape: Sequence[int], resize: str = "fit") -> np.ndarray:
    """One image file as (C, H, W) float32 in [0, 1], converted and resized as the module says
    (``core.images.decode_image``: the one implementation, shared with ``netbuilder predict``)."""
    return decode_image(Path(path), check_input_shape(input_shape), resize).array


_check_shape = check_input_shape


def _infer_shape(items, on_bad_file, skipped, progress, workers) -> tuple[int, int, int]:
    """The most common size among the images, grey if all are grey: read from headers only."""
    from PIL import Image

    def header(path: Path):
        with Image.open(path) as im:
            return im.size, _is_grey(im)

    results = _run(items, header, on_bad_file, skipped, progress, workers, "reading image sizes")
    sizes = Counter(r[0] for r in results if r is not None)
    if not sizes:
        raise DatasetError(f"{items[0][0].parent.parent}: none of the {len(items)} image files could be read")
    (w, h), _ = sizes.most_common(1)[0]
    grey = all(r[1] for r in results if r is not None)
    return (1 if grey else 3, h, w)


def _is_grey(im) -> bool:
    if im.mode in _GREY_MODES:
        return True
    if im.mode in ("P", "PA"):
        pal = im.getpalette() or []
        return all(pal[i] == pal[i + 1] == pal[i + 2] for i in range(0, len(pal) - 2, 3))
    return False


def _decode_all(items, shape, resize, on_bad_file, skipped, progress, workers):
    c, h, w = shape
    x = np.zeros((len(items), c, h, w), np.float32)
    modes: list[str | None] = [None] * len(items)
    resized = np.zeros(len(items), bool)

    def one(i: int, path: Path):
        prepared = decode_image(path, shape, resize)
        x[i] = prepared.array
        modes[i] = prepared.mode
        resized[i] = prepared.resized

    todo = [(p, k) if i not in skipped else None for i, (p, k) in enumerate(items)]
    _run(todo, one, on_bad_file, skipped, progress, workers, "loading images", with_index=True)
    return x, modes, resized


def _decode_cached(roots, label, options, items, shape, resize, on_bad_file, skipped, progress, workers):
    """What ``_decode_all`` gives, from the uint8 cache of these files (built, chunk by chunk,
    when there is none or it is stale), with the report's lines about the cache."""
    c, h, w = shape
    n = len(items)

    def arrays():
        return {"images": ((n, c, h, w), np.uint8), "modes": ((n,), np.uint8), "resized": ((n,), np.uint8)}

    def fill(maps):
        names: list[str] = []
        found = dict(skipped)  # header failures found while inferring the shape stay skipped
        per = max(1, min(n, _CACHE_CHUNK_BYTES // (c * h * w * 4)))
        buf = np.empty((per, c, h, w), np.float32)
        rounded = 0
        step = cache.BuildProgress(f"caching {n:,} images as uint8", n, progress)
        for lo in range(0, n, per):
            hi = min(lo + per, n)
            part, modes, resized = buf[:hi - lo], [None] * (hi - lo), np.zeros(hi - lo, np.uint8)
            part.fill(0)

            def one(i: int, path: Path, part=part, modes=modes, resized=resized):
                prepared = decode_image(path, shape, resize)
                part[i], modes[i], resized[i] = prepared.array, prepared.mode, prepared.resized

            todo = [item if lo + i not in found else None for i, item in enumerate(items[lo:hi])]
            failed: dict[int, str] = {}
            _run(todo, one, on_bad_file, failed, lambda d, _t, _w, lo=lo: step(lo + d), workers, step.what,
                 with_index=True)
            found.update({lo + i: why for i, why in failed.items()})
            np.multiply(part, 255, out=part)
            u8 = np.rint(part)
            np.clip(u8, 0, 255, out=u8)
            np.abs(np.subtract(part, u8, out=part), out=part)  # how far from a byte: > 0 for 16-bit images
            rounded += int(np.count_nonzero(part.reshape(len(part), -1).max(axis=1) > 1e-3))
            maps["images"][lo:hi] = u8
            for j, mode in enumerate(modes):
                if mode is not None and mode not in names:
                    names.append(mode)
                maps["modes"][lo + j] = names.index(mode) if mode is not None else 255
            maps["resized"][lo:hi] = resized
        return {"modes": names, "skipped": sorted([i, why] for i, why in found.items()), "rounded": rounded}

    def valid(meta) -> bool:
        try:
            return (isinstance(meta["modes"], list) and len(meta["modes"]) < 255 and isinstance(meta["rounded"], int)
                    and all(0 <= int(i) < n and isinstance(why, str) for i, why in meta["skipped"]))
        except (KeyError, TypeError, ValueError):
            return False

    cached = cache.cached_or_built("folder", roots, [p for p, _ in items], label, options, arrays, fill, valid)
    meta = cached.meta
    skipped.update({int(i): why for i, why in meta["skipped"]})
    names = np.full(256, None, object)
    names[:len(meta["modes"])] = meta["modes"]
    lines = [cached.note()]
    if meta["rounded"]:
        lines.append(f"rounded {meta['rounded']:,} image(s) of more than 8 bits per channel to 8 bits in the cache")
    x = MappedImages(cached.arrays["images"], where=cache.shown_path(cached.folder))
    return x, names[np.asarray(cached.arrays["modes"])], np.asarray(cached.arrays["resized"], bool), lines


def _run(items, fn, on_bad_file, skipped, progress, workers, what, with_index=False):
    """fn over items' paths on a thread pool; failures go to ``skipped`` (or raise with "error")."""
    results = [None] * len(items)
    n = len(items)

    def work(lo: int, hi: int):
        failures = []
        for i in range(lo, hi):
            if items[i] is None:
                continue
            try:
                results[i] = fn(i, items[i][0]) if with_index else fn(items[i][0])
            except Exception as exc:  # any failure decoding one file makes that file unusable
                failures.append((i, failure_reason(exc)))
        return hi - lo, failures

    workers = workers or min(8, (os.cpu_count() or 1) + 2)
    done = 0
    if progress:
        progress(0, n, what)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(work, lo, min(lo + _CHUNK, n)) for lo in range(0, n, _CHUNK)]
        try:
            for fut in as_completed(futures):
                count, failures = fut.result()
                for i, why in failures:
                    if on_bad_file == "error":
                        raise DatasetError(f"{items[i][0]}: cannot be read as an image: {why}")
                    skipped[i] = why
                done += count
                if progress:
                    progress(done, n, what)
        except BaseException:
            for f in futures:
                f.cancel()
            raise
    return results


def _hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX" or name in ("Thumbs.db", "desktop.ini")


def _natural_key(s: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)]
