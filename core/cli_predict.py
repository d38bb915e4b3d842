"""``netbuilder predict`` and ``netbuilder evaluate``: a trained network on one's own images, and
its evaluation report on the project's test or validation split.

Both load the network as ``export`` does (the weights file's project brings the input
normalisation the network applies itself), prepare images with ``core.images.prepare_image``
(the image-folder loader's own function) and compute their figures with ``core.metrics``, the
same code as the window's.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from netbuilder.core.cli_common import (
    EXIT_ERROR,
    EXIT_INVALID,
    EXIT_OK,
    error,
    open_valid_project,
    read_trained_weights,
)
from netbuilder.core.errors import ProjectError

_CHUNK = 64  # images prepared and predicted at a time
WRONG_SHOWN = 5  # the most confidently wrong samples evaluate lists


def add_parsers(commands) -> None:
    """Register ``predict`` and ``evaluate`` on the ``netbuilder`` subcommands."""
    from netbuilder.core.cli_train import positive_int

    predict = commands.add_parser(
        "predict", help="classify image files with a trained network",
        description="Classify each IMAGE (any format Pillow reads; a folder stands for the image files in it, "
                    "sorted by name) with the trained WEIGHTS of PROJECT, and print its most probable classes "
                    "with their probabilities, one line per image. Each image is converted and resized exactly "
                    "as the project's image loader does (the dataset's resize mode; grey or RGB by the input "
                    "shape), and the network applies the dataset's normalisation itself. An image that cannot "
                    "be read gets one line on stderr naming it and why, and the others still run. Exit code 0 "
                    "when every image was classified, 1 when any could not be (or bad input), 2 for an invalid "
                    "project.")
    predict.add_argument("project", metavar="PROJECT", help="project file (.json), or a bundled example's name")
    predict.add_argument("weights", metavar="WEIGHTS",
                         help="weights file (.npz from 'netbuilder train', a checkpoint, or a PyTorch state_dict .pt)")
    predict.add_argument("images", metavar="IMAGE", nargs="+", help="image file, or a folder of image files")
    predict.add_argument("--top", type=positive_int, default=3, metavar="K",
                         help="how many of the most probable classes to show (default: 3)")
    predict.add_argument("--json", action="store_true",
                         help="one JSON object per image and line: {\"file\", \"predictions\": [{\"class\", "
                              "\"index\", \"probability\"}, ...]}")
    predict.set_defaults(run=run_predict)

    evaluate = commands.add_parser(
        "evaluate", help="accuracy, per-class precision/recall/F1 and the confusion matrix of a trained network",
        description="Evaluate the trained WEIGHTS of PROJECT on its dataset's test split (or with --split val the "
                    "validation split training held out: the dataset's own, else the project's "
                    "validation_fraction of the training data chosen by its seed, as training did). Prints the "
                    "accuracy, each class's precision, recall, F1 and support with their macro average (the "
                    "plain mean over the classes that occur) and weighted average (by support), the confusion "
                    "matrix (rows: true class, columns: predicted) and the most confidently wrong samples. Exit "
                    "code 1 for bad input (or a dataset that cannot be loaded or lacks the split), 2 for an "
                    "invalid project.")
    evaluate.add_argument("project", metavar="PROJECT", help="project file (.json), or a bundled example's name")
    evaluate.add_argument("weights", metavar="WEIGHTS",
                          help="weights file (.npz from 'netbuilder train', a checkpoint, or a PyTorch state_dict .pt)")
    evaluate.add_argument("--split", choices=("test", "val"), default="test",
                          help="the dataset's test split (default) or training's validation split")
    evaluate.add_argument("--json", action="store_true",
                          help="print one JSON object with every figure instead of the tables")
    evaluate.set_defaults(run=run_evaluate)


# --- shared -----------------------------------------------------------------------------------
def load_trained(project_name: str, weights_name: str):
    """(project, project path, network with the weights) or the exit code after saying what is wrong."""
    from netbuilder.core.export import load_state
    from netbuilder.core.network import Network
    from netbuilder.core.weights import WeightsError

    opened = open_valid_project(project_name)
    if isinstance(opened, int):
        return opened
    path, project, _ = opened
    state = read_trained_weights(project, weights_name)
    if state is None:
        return EXIT_ERROR
    try:
        network = Network(project)
        load_state(network, state, Path(weights_name))
    except (WeightsError, ProjectError, ValueError) as exc:
        error(str(exc))
        return EXIT_ERROR
    return project, path, network


def final_activation(network) -> str | None:
    return network.stages[-1].info.block.get("activation")


def output_classes(network) -> int:
    return 2 if network.output_features == 1 else network.output_features


def class_names(project, base_dir: Path, classes: int, dataset=None) -> list[str]:
    """The names of the network's ``classes`` outputs: ``dataset``'s when given, else the project's
    "class_names", else its dataset's (the built-in ones' known names, an image folder's
    sub-folders read without decoding an image, other files loaded), else "class k"; padded with
    "class k" for outputs the names do not cover."""
    names: list[str] = []
    if dataset is not None:
        names = [str(n) for n in dataset.class_names]
    spec = project.dataset if isinstance(project.dataset, dict) else {}
    given = spec.get("class_names")
    if not names and isinstance(given, (list, tuple)) and given and all(isinstance(n, str) for n in given):
        names = list(given)
    if not names and spec:
        try:
            names = _dataset_class_names(project, base_dir)
        except Exception:  # noqa: BLE001 - a dataset that cannot be read only costs the names
            names = []
    return (names + [f"class {k}" for k in range(len(names), classes)])[:classes]


def _dataset_class_names(project, base_dir: Path) -> list[str]:
    from netbuilder.core.datasets import load_project_dataset
    from netbuilder.core.datasets.registry import FOLDER_ORDER_WHEN_UNSET, resolve_path

    spec = project.dataset
    kind = spec.get("kind")
    if kind == "shapes":  # without generating the images
        from netbuilder.core.datasets.shapes import CLASS_NAMES
        return list(CLASS_NAMES)
    if kind in ("mnist", "fashion-mnist"):  # without looking for (or downloading) the files
        from netbuilder.core.datasets import idx
        return list(idx.FASHION_MNIST_CLASSES if kind == "fashion-mnist" else idx.MNIST_CLASSES)
    if kind == "folder":  # the sub-folders' names, in the loader's order, no image opened
        from netbuilder.core.datasets.folder import scan_folder, split_roots

        root = split_roots(resolve_path(spec["path"], base_dir)).train
        return scan_folder(root, class_order=spec.get("class_order", FOLDER_ORDER_WHEN_UNSET)).class_names
    return [str(n) for n in load_project_dataset(project, base_dir).class_names]


def _print_json(obj) -> None:
    print(json.dumps(obj, allow_nan=False), flush=True)


# --- predict ----------------------------------------------------------------------------------
def image_files(names: list[str]) -> list[tuple[str, Path | None, str]]:
    """[(name, file, "") or (name, None, why)] in the order given: a folder stands for its image
    files (by extension, not hidden), sorted by name; a name that gives no file says why."""
    from netbuilder.core.datasets.folder import IMAGE_EXTENSIONS

    out: list[tuple[str, Path | None, str]] = []
    for name in names:
        p = Path(name)
        if p.is_dir():
            found = sorted((f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS
                            and not f.name.startswith(".") and f.is_file()), key=lambda f: f.name)
            out += [(str(f), f, "") for f in found] or [
                (name, None, f"a folder without image files ({', '.join(sorted(IMAGE_EXTENSIONS))})")]
        elif p.is_file():
            out.append((name, p, ""))
        elif p.exists():  # a FIFO or a device would hang the reader
            out.append((name, None, "not a regular file"))
        else:
            out.append((name, None, "no such file"))
    return out


def run_predict(args) -> int:
    from netbuilder.core.images import ImageError, check_input_shape, prepare_image
    from netbuilder.core.metrics import class_probabilities

    loaded = load_trained(args.project, args.weights)
    if isinstance(loaded, int):
        return loaded
    project, path, network = loaded
    try:
        shape = check_input_shape(project.input_shape)
    except ValueError:
        error(f"{path}: the network's input {list(project.input_shape)} is not an image (channels 1 or 3, "
              "height, width), so it cannot classify image files")
        return EXIT_ERROR
    spec = project.dataset if isinstance(project.dataset, dict) else {}
    resize = spec.get("resize", "fit") if spec.get("kind") == "folder" else "fit"
    classes = output_classes(network)
    names = class_names(project, path.parent, classes)
    activation = final_activation(network)
    top = min(args.top, classes)

    entries = image_files(args.images)
    failed = 0
    for lo in range(0, len(entries), _CHUNK):
        good, arrays = [], []
        for name, f, why in entries[lo:lo + _CHUNK]:
            try:
                if f is None:
                    raise ImageError(f"{name}: {why}")
                arrays.append(prepare_image(f, shape, resize))
                good.append(name)
            except (ImageError, OSError) as exc:
                error(str(exc) if isinstance(exc, ImageError) else f"{name}: cannot be read: {exc.strerror or exc}")
                failed += 1
        if not good:
            continue
        probs = class_probabilities(network.predict(np.stack(arrays)), activation)
        for name, p in zip(good, probs):
            if not np.isfinite(p).all():
                error(f"{name}: the network's output is not finite (NaN or infinity); the weights may have diverged")
                failed += 1
                continue
            order = np.argsort(-p, kind="stable")[:top]
            if args.json:
                _print_json({"file": name, "predictions": [
                    {"class": names[k], "index": int(k), "probability": float(p[k])} for k in order]})
            else:
                print(f"{name}: " + ", ".join(f"{names[k]} {100 * p[k]:.1f}%" for k in order), flush=True)
    return EXIT_ERROR if failed else EXIT_OK


# --- evaluate ---------------------------------------------------------------------------------
def run_evaluate(args) -> int:
    from netbuilder.core.datasets import load_project_dataset
    from netbuilder.core.metrics import evaluate_network, evaluation_split

    loaded = load_trained(args.project, args.weights)
    if isinstance(loaded, int):
        return loaded
    project, path, network = loaded
    try:
        dataset = load_project_dataset(project, path.parent)
    except Exception as exc:  # noqa: BLE001 - any loader failure is bad input, said in one line
        error(f"{path}: the dataset cannot be loaded: {exc}")
        return EXIT_ERROR
    try:
        x, y, what = evaluation_split(project, dataset, args.split)
    except ValueError as exc:
        error(f"{path}: {exc}")
        return EXIT_ERROR
    expected = tuple(int(v) for v in project.input_shape)
    if tuple(x.shape[1:]) != expected:
        error(f"{path}: the dataset's images are {'x'.join(map(str, x.shape[1:]))} but the network's input is "
              f"{'x'.join(map(str, expected))}")
        return EXIT_INVALID
    classes = output_classes(network)
    if len(y) and int(y.max()) >= classes:
        error(f"{path}: the dataset has label {int(y.max())} but the network has only {classes} classes")
        return EXIT_ERROR
    report = evaluate_network(network, x, y, class_names(project, path.parent, classes, dataset), wrong=WRONG_SHOWN)
    if args.json:
        _print_json({"project": project.name, "dataset": dataset.name, "split": args.split, **report.to_dict()})
    else:
        print(format_report(report, f"{project.name!r} on the {what} of {dataset.name}"), flush=True)
    return EXIT_OK


def format_report(report, title: str) -> str:
    """The evaluation as text: accuracy, the per-class table, the confusion matrix, the mistakes."""
    names = report.class_names
    width = max(12, *(len(n) for n in names))
    lines = [f"evaluated {title}: {report.total} images",
             f"accuracy {100 * report.accuracy:.1f}% ({report.correct} of {report.total})", "",
             f"{'class':<{width}}  precision  recall      f1  support"]
    for name, p, r, f, s in zip(names, report.precision, report.recall, report.f1, report.support):
        lines.append(f"{name:<{width}}  {p:9.3f}  {r:6.3f}  {f:6.3f}  {s:7d}")
    for label, avg in (("macro avg", report.macro), ("weighted avg", report.weighted)):
        lines.append(f"{label:<{width}}  {avg['precision']:9.3f}  {avg['recall']:6.3f}  {avg['f1']:6.3f}  "
                     f"{report.total:7d}")
    k = len(names)
    cell = max(4, len(str(int(report.matrix.max(initial=0)))) + 1, len(str(k - 1)) + 1)
    lines += ["", "confusion matrix (rows: true class, columns: predicted class by number)",
              f"{'':<{width + 4}}" + "".join(f"{j:>{cell}}" for j in range(k))]
    for i, row in enumerate(report.matrix):
        lines.append(f"{i:>2}  {names[i]:<{width}}" + "".join(f"{v:>{cell}}" for v in row))
    if report.mistakes:
        lines += ["", "most confidently wrong (index in the split):"]
        for m in report.mistakes:
            lines.append(f"  #{m.index}: {names[m.true]} taken for {names[m.predicted]} ({100 * m.confidence:.1f}%)")
    else:
        lines += ["", "no sample is wrong"]
    return "\n".join(lines)


__all__ = ["add_parsers", "load_trained", "class_names", "image_files", "format_report", "run_predict",
           "run_evaluate"]
