"""The ``netbuilder`` command: open the app, train (or resume) a project from the console, print its
summary, export its trained weights, draw its diagram, or list the bundled examples.

Exit codes: 0 success; 1 bad input or a failed/diverged run (message on stderr); 2 invalid
project or bad command line; 130 training stopped with Ctrl+C (the weights are still saved).
The window is reached through the ``netbuilder.gui`` entry points, so core never imports it.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from netbuilder.core import cli_train
from netbuilder.core.cli_common import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_OK,
    ReaderMayLeave,
    error,
    open_valid_project,
    report_problems,
    resolve_project,
)
from netbuilder.core.errors import ProjectError

DESCRIPTION = """\
Build convolutional neural networks visually, train them live, export what they learned.

  netbuilder                    open the app
  netbuilder PROJECT.json       open the app with a project
  netbuilder train PROJECT      train a project from the console (each run recorded beside it)
  netbuilder runs PROJECT       list a project's recorded runs and the settings that differ
  netbuilder summary PROJECT    print a project's layer table and totals
  netbuilder export PROJECT WEIGHTS --format onnx|torch|numpy -o PATH
                                export trained weights, verified against the app
  netbuilder export PROJECT --format torch-train -o DIR
                                a standalone PyTorch train.py that trains it as the app does
  netbuilder predict PROJECT WEIGHTS IMAGE...
                                classify image files (or folders of them) with trained weights
  netbuilder evaluate PROJECT WEIGHTS [--split test|val]
                                accuracy, per-class precision/recall/F1, confusion matrix
  netbuilder diagram PROJECT -o net.svg
                                draw the pipeline as SVG or PNG
  netbuilder examples           list the bundled examples (usable by name: netbuilder train lenet5)
"""

_process_ready = False


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code instead of raising SystemExit."""
    prepare_process()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (len(argv) == 1 and argv[0].lower().endswith(".json")):
        return _open_gui(argv[0] if argv else None)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) or a usage error (2), already printed by argparse
        return exc.code if isinstance(exc.code, int) else EXIT_INVALID
    stdout, sys.stdout = sys.stdout, ReaderMayLeave(sys.stdout)
    try:
        return args.run(args)
    except KeyboardInterrupt:  # Ctrl+C outside training (e.g. while the dataset loads)
        error("interrupted")
        return EXIT_INTERRUPTED
    finally:
        sys.stdout = stdout


def prepare_process() -> None:
    """What the entry points (this CLI and the app) set up for the whole process, once; importing
    ``netbuilder.core`` changes nothing process-wide.

    BLAS goes to one thread for the process's life, as the engine wants it whenever it runs: the
    window and the CLI run little else, and OpenBLAS does not reliably take a thread count back
    from a thread other than the one that set it, so limits set and undone per run by worker
    threads could leave a run on two BLAS threads, whose sums differ in the last bits."""
    global _process_ready
    if _process_ready:
        return
    _process_ready = True
    from threadpoolctl import threadpool_limits

    from netbuilder.core.crash import enable_faulthandler
    from netbuilder.core.layers.heap import keep_freed_memory

    keep_freed_memory()
    enable_faulthandler()
    threadpool_limits(limits=1, user_api="blas")


def build_parser() -> argparse.ArgumentParser:
    from netbuilder import __version__

    parser = argparse.ArgumentParser(
        prog="netbuilder", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run 'netbuilder COMMAND --help' for a command's options.")
    parser.add_argument("--version", action="version", version=f"netbuilder {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    cli_train.add_parser(commands)
    from netbuilder.core import cli_runs

    cli_runs.add_parser(commands)
    from netbuilder.core import cli_predict  # predict, evaluate

    cli_predict.add_parsers(commands)

    summary = commands.add_parser(
        "summary", help="print the layer table of a project",
        description="Print each block's output shape and parameter count, and the totals. If the project "
                    "has problems, print every one and exit with code 2.")
    summary.add_argument("project", metavar="PROJECT", help="project file (.json), or a bundled example's name")
    summary.set_defaults(run=_summary)

    export = commands.add_parser(
        "export", help="export trained weights as ONNX, PyTorch or numpy, or a PyTorch training script, verified",
        description="Export a trained network for other tools. Before anything is written, the export is run "
                    "by its own runtime (onnxruntime, torch, or the generated predict.py) on validation samples "
                    "of the project's dataset (random inputs if it cannot be loaded) and compared with the app; "
                    "the largest difference and the class agreement are printed. onnx writes PATH as one .onnx "
                    "file; torch writes model.py and weights.pt into the folder PATH; numpy writes predict.py "
                    "and weights.npz into the folder PATH. torch-train (no WEIGHTS needed) writes train.py, "
                    "model.py, weights.pt (the seed's initial weights; with WEIGHTS, those) and, unless the data "
                    "is IDX files, data.npz into the folder PATH: a script that trains the project with only torch "
                    "and numpy as the app does, checked by one training step against the app before it is written.")
    export.add_argument("project", metavar="PROJECT", help="project file (.json), or a bundled example's name")
    export.add_argument("weights", metavar="WEIGHTS", nargs="?",
                        help="weights file (.npz from 'netbuilder train', a checkpoint, or a PyTorch state_dict .pt); "
                             "optional for torch-train, whose script then starts from the seed's initial weights")
    export.add_argument("--format", required=True, choices=("onnx", "torch", "numpy", "torch-train"),
                        help="what to export")
    export.add_argument("-o", "--output", required=True, metavar="PATH",
                        help="the .onnx file, or the folder for the others (created if missing)")
    export.add_argument("--samples", type=cli_train.positive_int, default=64, metavar="N",
                        help="number of samples to verify with (default: 64)")
    export.set_defaults(run=_export)

    diagram = commands.add_parser(
        "diagram", help="draw a project's pipeline as SVG or PNG",
        description="Draw the pipeline as the window shows it (cards with shapes and parameter counts) into an "
                    "SVG or PNG file, for slides and papers. Needs no display.")
    diagram.add_argument("project", metavar="PROJECT", help="project file (.json), or a bundled example's name")
    diagram.add_argument("-o", "--output", required=True, metavar="FILE",
                         help="the picture to write; .svg or .png (the format follows the suffix)")
    diagram.set_defaults(run=_diagram)

    from netbuilder.core import cli_gradcheck  # gradcheck

    cli_gradcheck.add_parser(commands)

    examples = commands.add_parser(
        "examples", help="list the bundled example projects",
        description="List the example projects that come with netbuilder. Every command that takes a PROJECT "
                    "takes an example's name too, e.g. 'netbuilder train lenet5'.")
    examples.set_defaults(run=_examples)
    return parser


# --- the app ----------------------------------------------------------------------------------
def app_entry(name: str):
    """The app's function ``name`` (``window``, ``diagram``) from the ``netbuilder.gui`` entry
    points, or None after saying why it cannot be had."""
    from importlib.metadata import entry_points

    found = list(entry_points(group="netbuilder.gui", name=name))
    if not found:
        error("the app is not installed (no 'netbuilder.gui' entry points); install netbuilder with "
              "'pip install .' and try again")
        return None
    try:
        return found[0].load()
    except ImportError as exc:  # the app is there but something it needs is not
        error(f"cannot start the app: {exc}; install netbuilder's dependencies (pip install .) and try again")
        return None


def _open_gui(project_path: str | None) -> int:
    run_window = app_entry("window")
    if run_window is None:
        return EXIT_ERROR
    result = run_window(project_path)
    return result if isinstance(result, int) else EXIT_OK


# --- summary, examples, diagram ---------------------------------------------------------------
def _summary(args) -> int:
    from netbuilder.core.speed import project_estimate
    from netbuilder.core.summary import format_summary

    opened = open_valid_project(args.project)
    if isinstance(opened, int):
        return opened
    _, project, inference = opened
    timing = project_estimate(project, inference.total_macs) if inference.output_shape is not None else None
    print(format_summary(project, inference, timing).rstrip("\n"))
    return EXIT_OK


def _examples(args) -> int:
    from netbuilder.core.inference import infer
    from netbuilder.core.project import load_project
    from netbuilder.core.resources import example_names, example_path

    rows = []
    for name in example_names():
        try:
            project = load_project(example_path(name))
        except ProjectError:
            continue
        inference = infer(project)
        params = f"{inference.total_params:,} parameters" if inference.ok else "invalid"
        shape = "x".join(map(str, project.input_shape))
        classes = "1 binary output" if project.num_classes == 1 else f"{project.num_classes} classes"
        rows.append((name, f"{project.name}: {shape} input, {classes}, {params}"))
    width = max(len(n) for n, _ in rows)
    for name, text in rows:
        print(f"{name:<{width}}  {text}")
    return EXIT_OK


def _diagram(args) -> int:
    found = resolve_project(args.project)
    if found is None:
        return EXIT_ERROR
    out = Path(args.output)
    if out.suffix.lower() not in (".svg", ".png"):
        error(f"{out}: the diagram is written as .svg or .png; give one of those suffixes")
        return EXIT_INVALID
    if not out.parent.is_dir():
        error(f"cannot write {out}: the folder {out.parent} does not exist")
        return EXIT_ERROR
    from netbuilder.core.project import load_project

    try:  # an invalid network is still drawn, with its red cards and their reasons
        project = load_project(found[0])
    except ProjectError as exc:
        report_problems(exc, str(found[0]))
        return EXIT_INVALID
    draw = app_entry("diagram")
    if draw is None:
        return EXIT_ERROR
    try:
        draw(project, out)
    except OSError as exc:
        error(f"cannot write {out}: {exc.strerror or exc}")
        return EXIT_ERROR
    print(f"diagram of {project.name!r} written to {out}", flush=True)
    return EXIT_OK


# --- export -----------------------------------------------------------------------------------
def _export(args) -> int:
    from netbuilder.core.datasets import load_project_dataset
    from netbuilder.core.export import ExportError, export, load_state, read_weights_file
    from netbuilder.core.network import Network
    from netbuilder.core.untrusted import check_regular_file
    from netbuilder.core.weights import WeightsError

    opened = open_valid_project(args.project)
    if isinstance(opened, int):
        return opened
    path, project, _ = opened
    if args.weights is None:
        if args.format != "torch-train":
            error(f"the {args.format} export needs the trained WEIGHTS file (netbuilder export PROJECT WEIGHTS "
                  f"--format {args.format} -o {args.output})")
            return EXIT_INVALID
        return _export_training_script(project, path, args)
    weights = Path(args.weights)
    try:
        check_regular_file(weights, WeightsError, "weights file")
        state, embedded = read_weights_file(weights)
        # Training stores the input normalisation in the weights' project, not in the project file.
        ours, theirs = project.dataset, embedded.dataset if embedded is not None else {}
        if isinstance(ours, dict) and "normalization" not in ours and isinstance(theirs, dict) \
                and "normalization" in theirs:
            ours["normalization"] = theirs["normalization"]
        network = Network(project)
        load_state(network, state, weights)
    except (WeightsError, ProjectError, ValueError) as exc:
        error(str(exc))
        return EXIT_ERROR
    if args.format == "torch-train":
        return _export_training_script(project, path, args, network)
    dataset = None
    try:
        dataset = load_project_dataset(project, path.parent)
    except Exception as exc:  # noqa: BLE001 - any failure only means verifying on random inputs instead
        error(f"verifying on random inputs: the dataset of {path} could not be loaded ({exc})")
    try:
        report = export(network, args.output, args.format, dataset=dataset, count=args.samples)
    except ExportError as exc:
        error(str(exc))
        return EXIT_ERROR
    print(report, flush=True)
    return EXIT_OK


def _export_training_script(project, path: Path, args, trained=None) -> int:
    """``export --format torch-train``: from the seed's initial weights, or from ``trained``'s."""
    from netbuilder.core.export import ExportError
    from netbuilder.core.export.torch_train_export import export_torch_train
    from netbuilder.core.network import Network

    try:
        network = trained if trained is not None else Network(project)
        report = export_torch_train(network, args.output, base_dir=path.parent, from_trained=trained is not None,
                                    count=args.samples)
    except (ExportError, ProjectError, ValueError) as exc:
        error(str(exc))
        return EXIT_ERROR
    print(report, flush=True)
    return EXIT_OK



if __name__ == "__main__":
    sys.exit(main())
