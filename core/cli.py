"""The ``netbuilder`` command: open the app, train (or resume) a project from the console, print its
summary, or export its trained weights.

Exit codes: 0 success; 1 bad input or a failed/diverged run (message on stderr); 2 invalid
project or bad command line; 130 training stopped with Ctrl+C (the weights are still saved).
"""
from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Sequence, TextIO

from core.errors import ProjectError, TrainingError

EXIT_OK, EXIT_ERROR, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130

DESCRIPTION = """\
Build convolutional neural networks visually, train them live, export what they learned.

  netbuilder                    open the app
  netbuilder PROJECT.json       open the app with a project
  netbuilder train PROJECT      train a project from the console
  netbuilder summary PROJECT    print a project's layer table and totals
  netbuilder export PROJECT WEIGHTS --format onnx|torch|numpy -o PATH
                                export trained weights, verified against the app
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code instead of raising SystemExit."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (len(argv) == 1 and argv[0].lower().endswith(".json")):
        return _open_gui(argv[0] if argv else None)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed by argparse
        return exc.code if isinstance(exc.code, int) else EXIT_INVALID
    try:
        return args.run(args)
    except KeyboardInterrupt:  # Ctrl+C outside training (e.g. while the dataset loads)
        _error("interrupted")
        return EXIT_INTERRUPTED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netbuilder", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run 'netbuilder COMMAND --help' for a command's options.")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    train = commands.add_parser(
        "train", help="train a project and save its weights",
        description="Train the network of a project file on its dataset and save the weights (.npz). "
                    "Progress goes to stderr, one line of metrics per epoch to stdout. Ctrl+C stops "
                    "after the current batch and still saves the weights (exit code 130).")
    train.add_argument("project", metavar="PROJECT", help="project file (.json); dataset paths in it are "
                                                          "relative to the file's folder")
    train.add_argument("--epochs", type=_positive_int, metavar="N",
                       help="number of epochs (default: the project's training.epochs)")
    train.add_argument("--out", metavar="WEIGHTS.npz",
                       help="where to write the weights (default: <project name>.weights.npz next to the project)")
    train.add_argument("--quiet", action="store_true", help="no progress bar on stderr (epoch metrics still printed)")
    train.add_argument("--checkpoint", metavar="CHECKPOINT.npz",
                       help="write a checkpoint (weights, optimiser and random state) here after every epoch, "
                            "to continue later with --resume")
    train.add_argument("--resume", metavar="CHECKPOINT.npz",
                       help="continue the run saved in this checkpoint, exactly as if it had not stopped, up to "
                            "--epochs (default: the project's) epochs in all; the checkpoint is updated after "
                            "every epoch unless --checkpoint names another file")
    train.set_defaults(run=_train)

    summary = commands.add_parser(
        "summary", help="print the layer table of a project",
        description="Print each block's output shape and parameter count, and the totals. If the project "
                    "has problems, print every one and exit with code 2.")
    summary.add_argument("project", metavar="PROJECT", help="project file (.json)")
    summary.set_defaults(run=_summary)

    export = commands.add_parser(
        "export", help="export trained weights as ONNX, PyTorch or numpy, verified",
        description="Export a trained network for other tools. Before anything is written, the export is run "
                    "by its own runtime (onnxruntime, torch, or the generated predict.py) on validation samples "
                    "of the project's dataset (random inputs if it cannot be loaded) and compared with the app; "
                    "the largest difference and the class agreement are printed. onnx writes PATH as one .onnx "
                    "file; torch writes model.py and weights.pt into the folder PATH; numpy writes predict.py "
                    "and weights.npz into the folder PATH.")
    export.add_argument("project", metavar="PROJECT", help="project file (.json)")
    export.add_argument("weights", metavar="WEIGHTS", help="weights file (.npz from 'netbuilder train', a checkpoint, "
                                                           "or a PyTorch state_dict .pt)")
    export.add_argument("--format", required=True, choices=("onnx", "torch", "numpy"), help="what to export")
    export.add_argument("-o", "--output", required=True, metavar="PATH",
                        help="the .onnx file, or the folder for torch and numpy (created if missing)")
    export.add_argument("--samples", type=_positive_int, default=64, metavar="N",
                        help="number of samples to verify with (default: 64)")
    export.set_defaults(run=_export)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


# --- the app ----------------------------------------------------------------------------------
def _open_gui(project_path: str | None) -> int:
    try:
        app = importlib.import_module("gui.app")
    except ModuleNotFoundError as exc:
        if exc.name not in ("gui", "gui.app"):  # the app is there but something it needs is not
            _error(f"cannot start the app: {exc}; install netbuilder's dependencies "
                   "(pip install -e .) and try again")
            return EXIT_ERROR
        print("The netbuilder window is coming soon. Meanwhile: 'netbuilder train PROJECT' trains a "
              "project and 'netbuilder summary PROJECT' describes it (see 'netbuilder --help').")
        return EXIT_OK
    result = app.main(project_path)
    return result if isinstance(result, int) else EXIT_OK


# --- summary ----------------------------------------------------------------------------------
def _summary(args) -> int:
    from core.summary import format_summary

    loaded = _load_valid_project(args.project)
    if isinstance(loaded, int):
        return loaded
    project, inference = loaded
    print(format_summary(project, inference).rstrip("\n"))
    return EXIT_OK


def _load_valid_project(path):
    """(project, inference) of a valid project file, or the exit code after saying what is wrong."""
    from core.inference import validate
    from core.project import load_project

    if not _is_file(path):
        return EXIT_ERROR
    try:
        project = load_project(path)
        return project, validate(project)
    except ProjectError as exc:
        _report_problems(exc, str(path))
        return EXIT_INVALID


def _report_problems(exc: ProjectError, path: str) -> None:
    problems = exc.problems
    errors = sum(p.severity == "error" for p in problems)
    print(f"netbuilder: {path}: {errors} error{'s' if errors != 1 else ''}:", file=sys.stderr)
    for p in problems:
        print(f"  {p.severity}: {p.message}", file=sys.stderr)


def _is_file(path) -> bool:
    """True if ``path`` is a file; otherwise say what it is instead (a missing file is bad input, exit 1)."""
    p = Path(path)
    if p.is_file():
        return True
    _error(f"{p}: {'is a folder, not a project file' if p.is_dir() else 'no such file'}")
    return False


def _error(message: str) -> None:
    print(f"netbuilder: {message}", file=sys.stderr)


# --- train ------------------------------------------------------------------------------------
def _train(args) -> int:
    from core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
    from core.datasets import load_project_dataset
    from core.trainer import BatchEnd, EpochEnd, RunEnded, RunStarted, Trainer
    from core.weights import WeightsError, save_weights

    path = Path(args.project)
    loaded = _load_valid_project(path)
    if isinstance(loaded, int):
        return loaded
    project = loaded[0]
    out = Path(args.out) if args.out else path.with_name(f"{path.stem}.weights.npz")
    if not out.parent.is_dir():
        _error(f"cannot write the weights to {out}: the folder {out.parent} does not exist")
        return EXIT_ERROR
    resumed = None
    if args.resume:
        try:
            resumed = load_checkpoint(args.resume)
        except (CheckpointError, ProjectError) as exc:
            _error(f"cannot resume: {exc}")
            return EXIT_ERROR
    checkpoint_path = Path(args.checkpoint) if args.checkpoint else Path(args.resume) if args.resume else None
    if checkpoint_path is not None and not checkpoint_path.parent.is_dir():
        _error(f"cannot write checkpoints to {checkpoint_path}: the folder {checkpoint_path.parent} does not exist")
        return EXIT_ERROR
    try:
        dataset = load_project_dataset(project, base_dir=path.parent)
    except (ValueError, OSError) as exc:
        _error(f"cannot load the dataset of {path}: {exc}")
        return EXIT_ERROR
    try:
        if resumed is None:
            trainer = Trainer(project, dataset)
        else:
            trainer = Trainer.from_checkpoint(resumed, dataset, project=project)
    except (TrainingError, ValueError) as exc:
        _error(f"{path}: {exc}" if resumed is None else f"cannot resume from {args.resume}: {exc}")
        return EXIT_ERROR
    epochs = args.epochs or project.training.epochs
    if resumed is not None:
        if resumed.epoch >= epochs:
            try:
                save_weights(out, trainer.network, project)
            except (WeightsError, OSError) as exc:
                _error(str(exc))
                return EXIT_ERROR
            print(f"the checkpoint has {resumed.epoch} epoch{'s' if resumed.epoch != 1 else ''} already "
                  f"(of {epochs}); nothing to train; weights saved to {out}", flush=True)
            return EXIT_OK
        epochs -= resumed.epoch

    progress = Progress(sys.stderr, enabled=not args.quiet)
    interrupted = threading.Event()

    def on_sigint(signum, frame):
        if interrupted.is_set():
            raise KeyboardInterrupt  # a second Ctrl+C aborts at once, without saving
        interrupted.set()
        trainer.stop()
        progress.note("stopping after this batch (Ctrl+C again to abort without saving)")

    previous = _install_sigint(on_sigint)
    ended = None
    saved_epoch = None  # the epoch of the last checkpoint written
    try:
        for event in trainer.run(epochs):
            if isinstance(event, RunStarted):
                val = f", {event.val_size} for validation" if event.val_size else ""
                total_epochs = event.start_epoch + event.epochs
                if event.start_epoch:
                    what = (f"resuming {project.name!r} after epoch {event.start_epoch} on {event.train_size} "
                            f"images{val}: epochs {event.start_epoch + 1} to {total_epochs}")
                else:
                    what = (f"training {project.name!r} on {event.train_size} images{val}: {event.epochs} "
                            f"epoch{'s' if event.epochs != 1 else ''}")
                print(f"{what} of {event.batches_per_epoch} batches", flush=True)
            elif isinstance(event, BatchEnd):
                progress.batch(event, total_epochs)
            elif isinstance(event, EpochEnd):
                progress.clear()
                print(_epoch_line(event, total_epochs), flush=True)
                if checkpoint_path is not None:
                    try:  # the run waits here, between epochs: the one moment a checkpoint is exact
                        save_checkpoint(checkpoint_path, trainer.checkpoint())
                        saved_epoch = event.epoch
                    except (CheckpointError, TrainingError) as exc:
                        progress.note(f"netbuilder: {exc}; training goes on")
            elif isinstance(event, RunEnded):
                progress.clear()
                ended = event
    except KeyboardInterrupt:
        progress.clear()
        _error("aborted; no weights written")
        return EXIT_INTERRUPTED
    finally:
        _restore_sigint(previous)

    if ended.status in ("diverged", "failed"):
        _error(f"{ended.message}; no weights written")
        return EXIT_ERROR
    try:
        save_weights(out, trainer.network, project)
    except (WeightsError, OSError) as exc:
        _error(str(exc))
        return EXIT_ERROR
    print(f"{ended.message}; weights saved to {out}", flush=True)
    if dataset.x_test is not None and ended.status == "finished":
        net = trainer.network
        correct = int((net.classify(net.predict(dataset.x_test)) == dataset.y_test).sum())
        print(f"test accuracy {100 * correct / len(dataset.y_test):.1f}% "
              f"({correct:,} of {len(dataset.y_test):,} images of the dataset's test split)", flush=True)
    if saved_epoch is not None:
        print(f"checkpoint after epoch {saved_epoch} saved to {checkpoint_path} "
              f"(continue with: netbuilder train {args.project} --resume {checkpoint_path})", flush=True)
    return EXIT_INTERRUPTED if ended.status == "stopped" else EXIT_OK


# --- export -----------------------------------------------------------------------------------
def _export(args) -> int:
    from core.export import ExportError, export, load_state, read_weights_file
    from core.datasets import load_project_dataset
    from core.network import Network
    from core.weights import WeightsError

    path = Path(args.project)
    loaded = _load_valid_project(path)
    if isinstance(loaded, int):
        return loaded
    project = loaded[0]
    weights = Path(args.weights)
    if not weights.is_file():
        _error(f"{weights}: {'is a folder, not a weights file' if weights.is_dir() else 'no such file'}")
        return EXIT_ERROR
    try:
        state, embedded = read_weights_file(weights)
        # Training stores the input normalisation in the weights' project, not in the project file.
        ours, theirs = project.dataset, embedded.dataset if embedded is not None else {}
        if isinstance(ours, dict) and "normalization" not in ours and isinstance(theirs, dict) \
                and "normalization" in theirs:
            ours["normalization"] = theirs["normalization"]
        network = Network(project)
        load_state(network, state, weights)
    except (WeightsError, ProjectError, ValueError) as exc:
        _error(str(exc))
        return EXIT_ERROR
    dataset = None
    try:
        dataset = load_project_dataset(project, path.parent)
    except Exception as exc:  # noqa: BLE001 - any failure only means verifying on random inputs instead
        _error(f"verifying on random inputs: the dataset of {path} could not be loaded ({exc})")
    try:
        report = export(network, args.output, args.format, dataset=dataset, count=args.samples)
    except ExportError as exc:
        _error(str(exc))
        return EXIT_ERROR
    print(report, flush=True)
    return EXIT_OK


def _epoch_line(e, total: int) -> str:
    line = f"epoch {e.epoch}/{total}  loss {e.train_loss:.4f}  accuracy {100 * e.train_accuracy:.1f}%"
    if e.val_loss is not None:
        line += f"  val_loss {e.val_loss:.4f}  val_accuracy {100 * e.val_accuracy:.1f}%"
    return line + f"  {e.seconds:.1f}s  {e.images_per_sec:,.0f} images/s"


def _install_sigint(handler):
    """Our Ctrl+C handler while training (main thread only); returns what to restore."""
    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, handler)
    return previous


def _restore_sigint(previous) -> None:
    if previous is not None:
        signal.signal(signal.SIGINT, previous)


class Progress:
    """The per-epoch progress bar on stderr: one ``\\r``-rewritten line on a terminal; elsewhere a
    plain line every few seconds, so logs stay readable."""

    WIDTH = 24

    def __init__(self, stream: TextIO, enabled: bool = True, tty: bool | None = None,
                 interval: float | None = None):
        self.stream = stream
        self.enabled = enabled
        self.tty = stream.isatty() if tty is None else tty
        self.interval = interval if interval is not None else (0.1 if self.tty else 5.0)
        self._last = 0.0
        self._shown = False

    def batch(self, e, total_epochs: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        last_batch = e.batch == e.batches_per_epoch
        if now - self._last < self.interval and not (self.tty and last_batch):
            return
        self._last = now
        filled = self.WIDTH * e.batch // e.batches_per_epoch
        text = (f"epoch {e.epoch}/{total_epochs} [{'#' * filled}{'.' * (self.WIDTH - filled)}] "
                f"{e.batch}/{e.batches_per_epoch}  loss {e.loss:.4f}  {e.images_per_sec:,.0f} images/s")
        if self.tty:
            self.stream.write("\r" + text + "\x1b[K")
            self._shown = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        self.clear()
        self.stream.write(text + "\n")
        self.stream.flush()

    def clear(self) -> None:
        """Wipe the bar before other output (terminal only)."""
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False


if __name__ == "__main__":
    sys.exit(main())
