"""Checking an export before it counts: the same samples through the engine and the exported model.

An export is written to temporary files (``Staging``), run by its own runtime (onnxruntime,
torch, the generated predict.py) on a batch of samples, compared with the engine, and only then
moved to its destination. A mismatch raises ``ExportError`` carrying the ``VerificationReport``
and leaves nothing behind; a missing runtime is reported as "not checked", not hidden.
"""
from __future__ import annotations

import math
import os
import secrets
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from netbuilder.core.atomic import temp_path
from netbuilder.core.datasets.normalize import check_normalization
from netbuilder.core.datasets.split import train_val_split

FORMAT_TITLES = {"onnx": "ONNX", "torch": "PyTorch", "numpy": "numpy", "torch-train": "PyTorch training script"}
DEFAULT_SAMPLES = 64
# Largest difference accepted, relative to the largest engine output (at least 1): float32
# runtimes order their sums differently, so a few ulps per layer are expected, not more.
RELATIVE_TOLERANCE = 1e-4


class ExportError(RuntimeError):
    """An export could not be made or did not verify; nothing was left at the destination.

    ``report`` is the failed ``VerificationReport`` when the exported model gave other answers.
    """

    def __init__(self, message: str, report: VerificationReport | None = None):
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class VerificationReport:
    """What the check of one export found.

    ``checked`` is False when the runtime is not installed (then the differences are None).
    ``max_abs_diff`` is the largest |exported - engine| over all outputs of all samples;
    ``agreement`` the fraction of samples whose predicted class is the same in both.
    """

    format: str  # "onnx" | "torch" | "numpy"
    paths: tuple[str, ...]  # the files written (or that would have been, on a mismatch)
    runtime: str  # e.g. "onnxruntime 1.18.0"; the missing package when not checked
    checked: bool
    samples: int
    sample_source: str  # "validation samples of <dataset>" or "random inputs in [0, 1]"
    max_abs_diff: float | None
    agreement: float | None
    tolerance: float
    note: str = ""

    @property
    def passed(self) -> bool:
        """True when the exported model was run and matched the engine within ``tolerance``."""
        return self.checked and self.max_abs_diff is not None and self.max_abs_diff <= self.tolerance

    @property
    def status(self) -> str:
        """"verified", "not checked" (runtime missing) or "mismatch"."""
        if not self.checked:
            return "not checked"
        return "verified" if self.passed else "mismatch"

    def __str__(self) -> str:
        title = FORMAT_TITLES.get(self.format, self.format)
        files = "\n".join(f"  {p}" for p in self.paths)
        if not self.checked:
            head = (f"{title} export written but NOT verified: {self.runtime} is not installed, so the "
                    f"exported model could not be run{'; ' + self.note if self.note else ''}")
            return f"{head}\nfiles:\n{files}"
        agree = round(self.agreement * self.samples)
        figures = (f"largest difference {self.max_abs_diff:.3g} (tolerance {self.tolerance:.3g}), "
                   f"same predicted class for {agree}/{self.samples} samples ({100 * self.agreement:.1f}%)")
        verdict = "verified" if self.passed else "FAILED verification"
        lines = [f"{title} export {verdict} with {self.runtime} on {self.samples} {self.sample_source}: {figures}"]
        if self.note:
            lines.append(self.note)
        lines.append(("files:\n" if self.passed else "not written:\n") + files)
        return "\n".join(lines)


# --- samples and the engine's side ---------------------------------------------------------------
def verification_samples(project, dataset=None, count: int = DEFAULT_SAMPLES,
                         seed: int = 0) -> tuple[np.ndarray, str]:
    """(x, description): up to ``count`` images in [0, 1], (N, C, H, W) float32, to verify with.

    The project's validation split of ``dataset`` when it has one (the same split training
    held out), else its test or training images; without a dataset, uniform random inputs.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"the number of verification samples must be a whole number >= 1, got {count!r}")
    shape = tuple(int(v) for v in project.input_shape)
    if dataset is not None and tuple(dataset.x_train.shape[1:]) == shape:
        y = np.asarray(dataset.y_train)
        settings = project.training
        _, val = train_val_split(y, settings.validation_fraction, settings.seed)
        if len(val):
            return np.asarray(dataset.x_train[np.sort(val)[:count]], np.float32), \
                f"validation samples of {dataset.name}"
        if dataset.x_test is not None:
            return np.asarray(dataset.x_test[:count], np.float32), f"test samples of {dataset.name}"
        return np.asarray(dataset.x_train[:count], np.float32), f"training samples of {dataset.name}"
    rng = np.random.default_rng(seed)
    return rng.random((count, *shape), dtype=np.float32), "random inputs in [0, 1]"


def normalization_of(project) -> tuple[np.ndarray, np.ndarray] | None:
    """The project's input statistics as float64 (C,) (mean, std), or None when it has none."""
    stats = project.dataset.get("normalization") if isinstance(project.dataset, dict) else None
    if not stats:
        return None
    return check_normalization(stats, int(project.input_shape[0]))


def normalization_constants(project) -> tuple[np.ndarray, np.ndarray] | None:
    """float32 (C,) (shift, scale) with which the network computes ``(x - shift) * scale``.

    The same rounding as ``Network.set_normalization``: mean and 1 / std taken in float64, then
    rounded to float32, so every export repeats the app's normalisation bit for bit.
    """
    stats = normalization_of(project)
    if stats is None:
        return None
    mean, std = stats
    return mean.astype(np.float32), (1.0 / std).astype(np.float32)


def engine_outputs(network, x: np.ndarray) -> np.ndarray:
    """What the app computes for raw [0, 1] images (the network applies the normalisation itself)."""
    return network.predict(np.asarray(x, network.dtype))


def class_names_of(project, dataset=None) -> list[str]:
    """The class names to store with an export: the dataset's, the project's, else "0", "1", ..."""
    if dataset is not None and getattr(dataset, "class_names", None):
        return [str(n) for n in dataset.class_names]
    names = project.dataset.get("class_names") if isinstance(project.dataset, dict) else None
    if isinstance(names, (list, tuple)) and all(isinstance(n, str) for n in names) and names:
        return list(names)
    outputs = project.num_classes or 2
    return [str(k) for k in range(max(outputs, 2))]


def compare(fmt: str, network, x: np.ndarray, run: Callable[[np.ndarray], np.ndarray], runtime: str,
            paths: Sequence[str | os.PathLike], sample_source: str, note: str = "") -> VerificationReport:
    """Run ``run`` (the exported model) and the engine on ``x``; the figures as a report.

    Overflow inside either model is not printed as numpy warnings: the outputs are checked for
    NaN and infinity below, and the report says so when it matters.
    """
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the runtimes' own (torch, onnxruntime's numpy)
        expected = np.asarray(engine_outputs(network, x), np.float64)
        got = np.asarray(run(x), np.float64)
    if got.shape != expected.shape:
        raise ExportError(f"{FORMAT_TITLES[fmt]} export: the exported model returned shape {got.shape}, "
                          f"the engine {expected.shape}")
    fin = np.isfinite(expected)
    # A NaN or infinite output verifies nothing, even when both sides agree on it (NaN weights
    # give NaN everywhere): the export fails and says which side went wrong.
    bad = [f"{side} gave {int((~np.isfinite(out)).any(axis=1).sum())} of {len(out)} samples NaN or "
           "infinite outputs" for side, out in (("the engine", expected), ("the export", got))
           if not np.isfinite(out).all()]
    if bad:
        diff = math.inf
        note = "; ".join(filter(None, [note, " and ".join(bad) + " (are the weights finite?)"]))
    else:
        diff = float(np.abs(got - expected).max()) if got.size else 0.0
    scale = float(np.abs(expected[fin]).max()) if fin.any() else 1.0
    same = network.classify(got) == network.classify(expected)
    return VerificationReport(
        format=fmt, paths=tuple(str(p) for p in paths), runtime=runtime, checked=True, samples=len(x),
        sample_source=sample_source, max_abs_diff=diff, agreement=float(np.mean(same)) if len(x) else 1.0,
        tolerance=RELATIVE_TOLERANCE * max(1.0, scale), note=note)


def not_checked(fmt: str, paths: Sequence[str | os.PathLike], missing: str, samples: int,
                sample_source: str, note: str = "") -> VerificationReport:
    return VerificationReport(fmt, tuple(str(p) for p in paths), missing, False, samples, sample_source,
                              None, None, RELATIVE_TOLERANCE, note)


# --- writing: stage, verify, then publish --------------------------------------------------------
class Staging:
    """Temporary files beside their destinations, moved into place only by ``publish``.

    ``temp(dest)`` reserves the temporary path to write ``dest``'s content to. ``publish``
    renames them all over their destinations (os.replace: atomic per file); ``discard`` (also
    on leaving the ``with`` block, e.g. on an exception) removes every temporary file left.
    """

    def __init__(self, what: str):
        self.what = what
        self._files: list[tuple[Path, Path]] = []  # (temporary, destination)

    def temp(self, dest: str | os.PathLike) -> Path:
        dest = Path(dest)
        folder = dest.parent
        if not folder.is_dir():
            raise ExportError(f"cannot write the {self.what} to {dest}: the folder {folder} does not exist")
        if dest.is_dir():
            raise ExportError(f"cannot write the {self.what} to {dest}: it is a folder")
        tmp = temp_path(dest)
        try:
            with open(tmp, "xb"):
                pass  # claims the name and proves the folder is writable before any work is done
        except OSError as exc:
            raise ExportError(f"cannot write the {self.what} to {dest}: {exc.strerror or exc}") from None
        self._files.append((tmp, dest))
        return tmp

    @property
    def destinations(self) -> list[Path]:
        return [dest for _, dest in self._files]

    def publish(self) -> None:
        """Move every file into place. If one cannot be, the files this call created are removed
        again (a file it already replaced cannot be restored: that needs a second rename to fail)."""
        created: list[Path] = []
        for i, (tmp, dest) in enumerate(self._files):
            try:
                _fsync(tmp)
                existed = dest.exists()
                os.replace(tmp, dest)
            except OSError as exc:
                self._files = self._files[i:]
                self.discard()
                for path in created:
                    _unlink(path)
                raise ExportError(f"cannot write the {self.what} to {dest}: {exc.strerror or exc}") from None
            if not existed:
                created.append(dest)
        self._files = []

    def discard(self) -> None:
        for tmp, _ in self._files:
            _unlink(tmp)
        self._files = []

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.discard()  # after a publish there is nothing left to remove


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def _fsync(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def bundle_paths(path: str | os.PathLike, names: Sequence[str], what: str) -> list[Path]:
    """Destinations of a multi-file export in folder ``path`` (created if missing; its parent must exist)."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ExportError(f"cannot write the {what} to {folder}: it is a file, and this export is a folder "
                          f"of {len(names)} files ({', '.join(names)}); give a folder path")
    if not folder.exists():
        if not folder.parent.is_dir():
            raise ExportError(f"cannot write the {what} to {folder}: the folder {folder.parent} does not exist")
        try:
            folder.mkdir()
        except OSError as exc:
            raise ExportError(f"cannot write the {what} to {folder}: {exc.strerror or exc}") from None
    return [folder / name for name in names]


def remove_if_empty(folder: Path) -> None:
    """Undo ``bundle_paths``' mkdir after a failed export (an existing folder with files stays)."""
    try:
        folder.rmdir()
    except OSError:
        pass


def load_module(path: str | os.PathLike, name: str):
    """Run a generated Python file as a fresh module (not left in sys.modules, no bytecode written)."""
    import sys
    import types

    module_name = f"_netbuilder_export_{name}_{secrets.token_hex(4)}"
    module = types.ModuleType(module_name)
    module.__file__ = str(path)
    code = compile(Path(path).read_text(encoding="utf-8"), str(path), "exec")
    sys.modules[module_name] = module  # dataclasses and the like look their module up there
    try:
        exec(code, module.__dict__)
    finally:
        sys.modules.pop(module_name, None)
    return module
