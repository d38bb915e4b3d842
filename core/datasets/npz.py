"""NumPy .npz files with ``x`` and ``y`` arrays, and the array checks shared with CSV.

``x`` may be (N, C, H, W), (N, H, W, C), (N, H, W) or flat (N, H*W); the layout is detected
from where a small channel axis (1 to 4) sits and reported, or given as ``layout``. Pixel
values are taken as [0, 1] floats or [0, 255] integers. Labels may be integers, whole-number
floats, strings (named classes, sorted) or one-hot rows. Files are read with
``allow_pickle=False``: an object array is refused, since unpickling can run arbitrary code.
"""
from __future__ import annotations

import math
import re
import zipfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from netbuilder.core.datasets.base import Dataset, DatasetError

LAYOUTS = ("NCHW", "NHWC", "NHW", "flat")
_MAX_CHANNELS = 4  # grey, grey + alpha, RGB, RGBA
# Accepted array names: (images, labels) for the training and the test split.
_TRAIN_KEYS = (("x", "y"), ("x_train", "y_train"))
_TEST_KEYS = (("x_test", "y_test"),)


def read_npz(
    path: str | Path,
    test_path: str | Path | None = None,
    layout: str | None = None,
    image_shape: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
    name: str | None = None,
    notes: list[str] | None = None,
) -> Dataset:
    """A Dataset from an .npz holding x and y (or x_train/y_train; x_test/y_test give a test split).

    ``test_path`` names a second .npz whose x and y are the test split. ``notes`` (if given)
    receives what was detected or converted, phrased for a person.
    """
    path = Path(path)
    notes = notes if notes is not None else []
    arrays = _load_npz(path)
    x, y, xkey, ykey = _pick(arrays, _TRAIN_KEYS, path, required=True)
    xt, yt, xtkey, ytkey = _pick(arrays, _TEST_KEYS, path, required=False)
    if test_path is not None:
        if xt is not None:
            raise DatasetError(f"{path}: has x_test/y_test arrays and test_path {test_path} is given too; use one")
        test_path = Path(test_path)
        xt, yt, xtkey, ytkey = _pick(_load_npz(test_path), _TRAIN_KEYS + _TEST_KEYS, test_path, required=True)
    test_src = test_path or path
    used = {xkey, ykey, xtkey, ytkey, "class_names"} if test_path is None else {xkey, ykey, "class_names"}
    ignored = [k for k in arrays if k not in used]
    if ignored:
        notes.append(f"{path}: ignored array(s) {', '.join(repr(k) for k in ignored)}")
    names = class_names
    if names is None and "class_names" in arrays:
        names = _class_names_array(arrays["class_names"], path)

    x_train = images_to_unit(x, f"{path} [{xkey}]", layout, image_shape, notes)
    x_test = None if xt is None else images_to_unit(xt, f"{test_src} [{xtkey}]", layout, image_shape, [])
    labels, names = encode_labels(
        [(y, f"{path} [{ykey}]"), *([] if yt is None else [(yt, f"{test_src} [{ytkey}]")])], names, notes
    )
    check_count(x_train, labels[0], f"{path} [{xkey}]", ykey)
    if x_test is not None:
        check_count(x_test, labels[1], f"{test_src} [{xtkey}]", ytkey)
        check_same_shape(x_train, x_test, f"{test_src} [{xtkey}]")
    return Dataset(name or path.stem, x_train, labels[0], names, x_test, labels[1] if x_test is not None else None)


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    from netbuilder.core.untrusted import check_npz, check_regular_file

    if path.exists() and not path.is_dir():
        check_regular_file(path, DatasetError, "dataset file")
        check_npz(path, DatasetError)
    try:
        with open(path, "rb") as f:
            head = f.read(6)
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DatasetError(f"{path}: is a folder, expected an .npz file") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    # Checked here because np.load takes any other bytes for a pickle and says so confusingly.
    if not (head.startswith(b"PK") or head == b"\x93NUMPY"):
        raise DatasetError(f"{path}: not an .npz file: it starts with {head!r}, not a zip archive's signature (PK)")
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DatasetError(f"{path}: is a folder, expected an .npz file") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise DatasetError(f"{path}: not a readable .npz file ({_short(exc)})") from None
    if isinstance(archive, np.ndarray):
        raise DatasetError(
            f"{path}: is a single-array .npy file; save images and labels together with np.savez(path, x=..., "
            "y=...)"
        )
    arrays = {}
    with archive:
        for key in archive.files:
            try:
                arrays[key] = archive[key]
            except ValueError as exc:
                if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
                    raise DatasetError(
                        f"{path}: array {key!r} holds pickled Python objects; refused because loading a pickle can "
                        "run arbitrary code. Save plain numeric arrays (e.g. x.astype(np.uint8))"
                    ) from None
                raise DatasetError(f"{path}: array {key!r} cannot be read ({_short(exc)})") from None
            except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
                raise DatasetError(f"{path}: array {key!r} is damaged or truncated ({_short(exc)})") from None
    return arrays


def _pick(arrays, candidates, path, required):
    for xkey, ykey in candidates:
        if xkey in arrays or ykey in arrays:
            if xkey not in arrays or ykey not in arrays:
                have, missing = (xkey, ykey) if xkey in arrays else (ykey, xkey)
                raise DatasetError(
                    f"{path}: has {have!r} but no {missing!r} array; arrays found: {', '.join(arrays) or 'none'}"
                )
            return arrays[xkey], arrays[ykey], xkey, ykey
    if required:
        raise DatasetError(
            f"{path}: no images and labels: expected arrays 'x' and 'y' (or 'x_train' and 'y_train'), "
            f"found: {', '.join(repr(k) for k in arrays) or 'none'}"
        )
    return None, None, None, None


def _class_names_array(arr: np.ndarray, path: Path) -> list[str]:
    if arr.ndim != 1 or arr.dtype.kind not in "US":
        raise DatasetError(
            f"{path}: 'class_names' must be a 1-D array of strings, got {arr.dtype} with shape {arr.shape}"
        )
    return [v.decode() if isinstance(v, bytes) else str(v) for v in arr.tolist()]


def detect_layout(shape: tuple[int, ...], source: str) -> str:
    """"NCHW", "NHWC", "NHW" or "flat" for an images array of ``shape``, from its small channel axis."""
    if len(shape) == 2:
        return "flat"
    if len(shape) == 3:
        return "NHW"
    if len(shape) != 4:
        raise DatasetError(
            f"{source}: images must be (N, C, H, W), (N, H, W, C), (N, H, W) or (N, pixels), got shape {shape}"
        )
    first, last = shape[1] <= _MAX_CHANNELS, shape[3] <= _MAX_CHANNELS
    if first and not last:
        return "NCHW"
    if last and not first:
        return "NHWC"
    if first and last:
        # Tiny images either way: grey or RGB (1 or 3) is the likelier channel count; on a tie,
        # PyTorch's layout, the engine's own.
        common = (shape[1] in (1, 3), shape[3] in (1, 3))
        return "NHWC" if common == (False, True) else "NCHW"
    raise DatasetError(
        f"{source}: cannot tell which axis holds the channels in shape {shape}: neither axis 1 nor axis 3 is "
        f"1 to {_MAX_CHANNELS}; give \"layout\": \"NCHW\" or \"NHWC\""
    )


def images_to_unit(
    x: np.ndarray,
    source: str,
    layout: str | None = None,
    image_shape: Sequence[int] | None = None,
    notes: list[str] | None = None,
    where: Callable[[int], str] | None = None,
) -> np.ndarray:
    """Images as (N, C, H, W) float32 in [0, 1]; says in ``notes`` which layout and scale it found.

    ``where(i)`` names image i in errors ("image 3" by default; a CSV says "line 5").

    Flat rows (N, D) are reshaped to ``image_shape`` (C, H, W), or to one square grey image when
    D is a square number; ``layout`` "NHWC" then means each row is pixel-major (RGBRGB...).
    """
    notes = notes if notes is not None else []
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise DatasetError(f"{source}: pixel values must be numbers, got {x.dtype} values")
    if x.ndim < 2 or x.shape[0] == 0:
        raise DatasetError(f"{source}: expected a stack of images (N, ...), got shape {x.shape}")
    detected = detect_layout(x.shape, source) if layout is None else layout
    if detected not in LAYOUTS:
        raise DatasetError(f"{source}: layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if detected == "flat" or (x.ndim == 2 and layout in ("NCHW", "NHWC")):
        chw = _flat_shape(x.shape, source, image_shape)
        if layout == "NHWC":
            x = x.reshape(len(x), chw[1], chw[2], chw[0]).transpose(0, 3, 1, 2)
        else:
            x = x.reshape((len(x), *chw))
        detected = "flat"
    else:
        want = {"NCHW": 4, "NHWC": 4, "NHW": 3}[detected]
        if x.ndim != want:
            raise DatasetError(f"{source}: layout {detected} needs {want} dimensions, got shape {x.shape}")
        if detected == "NHW":
            x = x[:, None]
        elif detected == "NHWC":
            x = x.transpose(0, 3, 1, 2)
    if min(x.shape) == 0:
        raise DatasetError(f"{source}: images have an empty dimension, shape {x.shape}")
    if layout is None and detected != "flat":
        found = "(N, " + ", ".join(detected[1:]) + ")"
        reordered = "" if detected == "NCHW" else ", reordered to (N, C, H, W)"
        notes.append(f"{source}: images laid out as {found}{reordered}")
    return _scale(x, source, notes, where or _image_at)


def _flat_shape(shape, source, image_shape):
    d = int(np.prod(shape[1:]))
    if image_shape is not None:
        chw = tuple(int(v) for v in image_shape)
        if len(chw) != 3 or min(chw) < 1:
            raise DatasetError(f"{source}: image_shape must be [channels, height, width], got {list(image_shape)!r}")
        if chw[0] * chw[1] * chw[2] != d:
            raise DatasetError(
                f"{source}: image_shape {list(chw)} has {chw[0] * chw[1] * chw[2]} values but each row has {d}"
            )
        return chw
    side = math.isqrt(d)
    if side * side != d:
        raise DatasetError(
            f"{source}: each image is {d} values, not a square number of grey pixels; give "
            "\"image_shape\": [channels, height, width]"
        )
    return (1, side, side)


def _image_at(i: int) -> str:
    return f"image {i}"


def _index_at(i: int) -> str:
    return f"index {i}"


def _scale(x: np.ndarray, source: str, notes: list[str], where: Callable[[int], str]) -> np.ndarray:
    if x.dtype == np.uint8:
        out = np.empty(x.shape, np.float32)
        np.divide(x, np.float32(255), out=out)
        return out
    if x.dtype.kind == "b":
        return x.astype(np.float32)
    if x.dtype.kind == "f":
        bad = ~np.isfinite(x)
        if bad.any():
            i = np.unravel_index(int(np.argmax(bad)), x.shape)
            raise DatasetError(f"{source}: pixel value {x[i]} at {where(int(i[0]))} is not a finite number")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0:
        i = np.unravel_index(int(np.argmin(x)), x.shape)
        raise DatasetError(
            f"{source}: pixel values must be in [0, 1] (floats) or [0, 255] (integers), "
            f"got {lo:g} at {where(int(i[0]))}; "
            "store the raw pixels, netbuilder normalises them itself"
        )
    if x.dtype.kind == "f" and hi <= 1.0:
        return x.astype(np.float32)
    if hi <= 1.0:  # integers 0/1: a binary image
        notes.append(f"{source}: integer pixels 0 and 1 only: taken as black and white")
        return x.astype(np.float32)
    if hi <= 255.0:
        notes.append(f"{source}: pixel values up to {hi:g}: taken as 0..255 and divided by 255")
        return (x.astype(np.float32) / np.float32(255)).astype(np.float32)
    if x.dtype.kind in "iu" and hi <= 65535:
        notes.append(f"{source}: pixel values up to {hi:g}: taken as 16-bit (0..65535) and divided by 65535")
        return (x.astype(np.float64) / 65535.0).astype(np.float32)
    i = np.unravel_index(int(np.argmax(x)), x.shape)
    raise DatasetError(
        f"{source}: pixel values must be in [0, 1] (floats) or [0, 255] (integers), got {hi:g} at {where(int(i[0]))}"
    )


MAX_CLASSES = 100_000  # labels index classes: a larger label is a mistake (or a value), not a class


def encode_labels(
    labels: list[tuple],
    class_names: Sequence[str] | None = None,
    notes: list[str] | None = None,
) -> tuple[list[np.ndarray], list[str]]:
    """Each (labels, source) or (labels, source, where) as int64 class indices, and the class names.

    ``where(i)`` names label i in errors ("index 3" by default; a CSV says "line 5").

    String labels become classes named by their values (natural order); numeric labels index
    ``class_names`` when given, else classes "0".."K-1" with K = largest label + 1.
    """
    notes = notes if notes is not None else []
    wheres = [entry[2] if len(entry) > 2 else _index_at for entry in labels]
    arrays = [(_as_label_vector(np.asarray(entry[0]), entry[1], notes), entry[1]) for entry in labels]
    if any(y.dtype.kind in "US" for y, _ in arrays):
        if not all(y.dtype.kind in "US" for y, _ in arrays):
            raise DatasetError(f"{arrays[0][1]}: labels are text in one split and numbers in the other")
        values = [np.char.strip(y.astype(str)) for y, _ in arrays]
        for v, (_, src), where in zip(values, arrays, wheres):
            empty = v == ""
            if empty.any():
                raise DatasetError(f"{src}: label at {where(int(np.argmax(empty)))} is empty")
        names = list(class_names) if class_names is not None else natural_sorted(set(np.concatenate(values).tolist()))
        lookup = {n: i for i, n in enumerate(names)}
        out = []
        for v, (_, src), where in zip(values, arrays, wheres):
            unknown = ~np.isin(v, names)
            if unknown.any():
                i = int(np.argmax(unknown))
                raise DatasetError(f"{src}: label {v[i]!r} at {where(i)} is not one of the class names {names}")
            uniq, inverse = np.unique(v, return_inverse=True)
            out.append(np.array([lookup[u] for u in uniq.tolist()], np.int64)[inverse.reshape(-1)])
        check_two_classes(out[0], arrays[0][1], names)
        return out, names
    out = []
    for (y, src), where in zip(arrays, wheres):
        if y.dtype.kind == "f":
            bad = ~np.isfinite(y) | (y != np.round(y))
            if bad.any():
                i = int(np.argmax(bad))
                raise DatasetError(
                    f"{src}: label {y[i].item()!r} at {where(i)} is not a whole number; labels must be class "
                    "indices"
                )
        if y.dtype.kind in "fiu" and len(y) and (np.abs(y.astype(np.float64)) > MAX_CLASSES).any():
            i = int(np.argmax(np.abs(y.astype(np.float64)) > MAX_CLASSES))
            raise DatasetError(f"{src}: label {y[i].item():g} at {where(i)} is not a class index: labels must be "
                               f"0 to {MAX_CLASSES - 1:,}")
        yi = y.astype(np.int64)
        k = len(class_names) if class_names is not None else None
        bad = (yi < 0) if k is None else (yi < 0) | (yi >= k)
        if bad.any():
            i = int(np.argmax(bad))
            allowed = ">= 0" if k is None else f"in [0, {k}) for the {k} class names given"
            raise DatasetError(f"{src}: label {int(yi[i])} at {where(i)} is out of range: labels must be {allowed}")
        out.append(yi)
    if class_names is None:
        top = max(int(y.max()) for y in out)
        class_names = [str(i) for i in range(max(top + 1, 2))]
    check_two_classes(out[0], arrays[0][1], list(class_names))
    return out, list(class_names)


def check_two_classes(y: np.ndarray, source: str, class_names: Sequence[str]) -> None:
    """Raise when the training labels hold fewer than two distinct classes."""
    present = np.unique(y)
    if len(present) < 2:
        raise DatasetError(
            f"{source}: every label is {class_names[int(present[0])]!r}; "
            "a classifier needs images of at least two classes"
        )


def _as_label_vector(y: np.ndarray, source: str, notes: list[str]) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim == 2 and y.dtype.kind in "biuf":
        is_onehot = np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all()
        if not is_onehot:
            raise DatasetError(
                f"{source}: labels of shape {y.shape} must be one-hot rows (a single 1 per row) or one label per "
                "image"
            )
        notes.append(f"{source}: one-hot labels ({y.shape[1]} columns) read as class indices")
        return np.argmax(y, axis=1)
    if y.ndim != 1:
        raise DatasetError(f"{source}: labels must be one per image, shape (N,), got {y.shape}")
    if len(y) == 0:
        raise DatasetError(f"{source}: no labels")
    if y.dtype.kind not in "biufUS":
        raise DatasetError(f"{source}: labels must be integers or text, got {y.dtype} values")
    return y


def check_count(x: np.ndarray, y: np.ndarray, images_source: str, labels_name: str) -> None:
    if len(x) != len(y):
        raise DatasetError(
            f"{images_source}: {len(x)} images but {len(y)} labels in {labels_name}; the counts must match"
        )


def check_same_shape(x_train: np.ndarray, x_test: np.ndarray, test_source: str) -> None:
    if x_test.shape[1:] != x_train.shape[1:]:
        raise DatasetError(
            f"{test_source}: test images are {x_test.shape[1:]} (C, H, W) but training images are {x_train.shape[1:]}"
        )


def natural_sorted(names) -> list[str]:
    """Names in the order a person expects: "class2" before "class10"."""
    return sorted(names, key=lambda s: [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)] + [s])


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]
