"""``netbuilder train``: train (or resume) a project from the console, with a progress bar on
stderr, one line of metrics per epoch on stdout and, with ``--metrics``, the same as JSON lines."""
from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from netbuilder.core.cli_common import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, error, load_valid_project, resolve_project
from netbuilder.core.errors import ProjectError, TrainingError
from netbuilder.core.train_output import MetricsLog, Progress, epoch_line


def add_parser(commands) -> None:
    train = commands.add_parser(
        "train", help="train a project and save its weights",
        description="Train the network of a project file (or a bundled example, by name) on its dataset and "
                    "save the weights (.npz). Progress goes to stderr, one line of metrics per epoch to stdout. "
                    "Ctrl+C stops after the current batch and still saves the weights (exit code 130).")
    train.add_argument("project", metavar="PROJECT", help="project file (.json), or the name of a bundled example "
                                                          "(see 'netbuilder examples'); dataset paths in it are "
                                                          "relative to the file's folder")
    train.add_argument("--epochs", type=positive_int, metavar="N",
                       help="number of epochs (default: the project's training.epochs)")
    train.add_argument("--out", metavar="WEIGHTS.npz",
                       help="where to write the weights (default: <project name>.weights.npz next to the project; "
                            "in the current folder for a bundled example)")
    train.add_argument("--quiet", action="store_true",
                       help="no progress bar on stderr, nor the line saying where the run was recorded (epoch "
                            "metrics still printed)")
    train.add_argument("--metrics", metavar="RUN.jsonl",
                       help="also write one JSON object per epoch, and one at the end of the run, to this file "
                            "(JSON Lines, for other tools to read while the run goes on)")
    train.add_argument("--checkpoint", metavar="CHECKPOINT.npz",
                       help="write a checkpoint (weights, optimiser and random state) here after every epoch, "
                            "to continue later with --resume")
    train.add_argument("--keep", choices=("last", "best"), default="last",
                       help="which epoch's weights --out gets: the last (default), or the one with the best "
                            "validation loss (the project's early_stopping.monitor when it has one)")
    train.add_argument("--no-record", dest="record", action="store_false",
                       help="do not record the run in <project name>.runs/ next to the project (by default every "
                            "run of a project file is recorded there: settings, metrics, weights; see "
                            "'netbuilder runs'); runs of a bundled example are never recorded")
    train.add_argument("--resume", metavar="CHECKPOINT.npz",
                       help="continue the run saved in this checkpoint, exactly as if it had not stopped, up to "
                            "--epochs (default: the project's) epochs in all; the checkpoint is updated after "
                            "every epoch unless --checkpoint names another file")
    train.add_argument("--engine", choices=("numpy", "torch"), default="numpy",
                       help="what does the arithmetic: netbuilder's own numpy engine (the default) or PyTorch "
                            "(pip install 'netbuilder[torch]'); both start from the same weights, take the data "
                            "in the same order and write the same kind of weights file")
    train.add_argument("--device", metavar="DEVICE",
                       help="where the torch engine trains: cpu, cuda, cuda:N, mps or auto (the best there is; "
                            "the default)")
    train.add_argument("--amp", choices=("bf16", "fp16"),
                       help="the torch engine only: mixed precision, the forward pass under torch.autocast in "
                            "bfloat16 or float16 (with a gradient scaler); weights stay float32 (default: off)")
    train.add_argument("--channels-last", action="store_true",
                       help="the torch engine only: the model and each batch in channels-last memory format "
                            "(faster convolutions on CUDA's tensor cores; default: off)")
    train.add_argument("--compile", action="store_true",
                       help="the torch engine only: run the model through torch.compile, checked against the "
                            "plain model at the first step of each batch size (default: off)")
    train.add_argument("--processes", type=positive_int, metavar="N",
                       help="train in N processes on this machine with DistributedDataParallel (the torch engine; "
                            "one GPU each on CUDA, else a share of the CPU): starts torchrun, which runs this "
                            "command N times; the project's batch size is the whole batch, shared out")
    train.set_defaults(run=run)


def speed_options(args) -> dict:
    """The torch engine's speed options the command line asked for (TorchTrainer's keywords)."""
    options = {"amp": getattr(args, "amp", None), "channels_last": getattr(args, "channels_last", False),
               "compile": getattr(args, "compile", False)}
    return {k: v for k, v in options.items() if v}


def _speed_options_ok(args) -> bool:
    """--amp, --channels-last and --compile are the torch engine's; False after saying so."""
    if args.engine == "torch":
        return True
    flags = {"amp": "--amp", "channels_last": "--channels-last", "compile": "--compile"}
    named = [flags[k] for k in speed_options(args)]
    if not named:
        return True
    what = named[0] if len(named) == 1 else f"{', '.join(named[:-1])} and {named[-1]}"
    error(f"{what} need{'s' if len(named) == 1 else ''} the torch engine: add --engine torch")
    return False


def _describe_options(options: dict) -> str:
    """", bf16 autocast, channels-last, compiled" for the run's first line ("" when none)."""
    words = {"amp": f"{options.get('amp')} autocast", "channels_last": "channels-last", "compile": "compiled"}
    return "".join(f", {words[k]}" for k in ("amp", "channels_last", "compile") if options.get(k))


def positive_int(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def run(args) -> int:
    from netbuilder.core.checkpoint import CheckpointError, load_checkpoint

    found = resolve_project(args.project)
    if found is None:
        return EXIT_ERROR
    path, bundled = found
    args.bundled = bundled
    if not _speed_options_ok(args):
        return EXIT_ERROR
    launch = _launch(args)
    if launch is False:
        return EXIT_ERROR
    device = _engine_device(args, launch)
    if device is None:
        return EXIT_ERROR
    args.device = device
    loaded = load_valid_project(path)
    if isinstance(loaded, int):
        return loaded
    project = loaded[0]
    # A bundled example lives inside the installed package: its weights go to the current folder.
    default_out = Path(f"{path.stem}.weights.npz") if bundled else path.with_name(f"{path.stem}.weights.npz")
    out = Path(args.out) if args.out else default_out
    if not out.parent.is_dir():
        error(f"cannot write the weights to {out}: the folder {out.parent} does not exist")
        return EXIT_ERROR
    resumed = None
    if args.resume:
        try:
            resumed = load_checkpoint(args.resume)
        except (CheckpointError, ProjectError) as exc:
            error(f"cannot resume: {exc}")
            return EXIT_ERROR
    checkpoint_path = Path(args.checkpoint) if args.checkpoint else Path(args.resume) if args.resume else None
    if checkpoint_path is not None and not checkpoint_path.parent.is_dir():
        error(f"cannot write checkpoints to {checkpoint_path}: the folder {checkpoint_path.parent} does not exist")
        return EXIT_ERROR
    if args.processes:
        return _start_processes(args)
    if launch is not None:
        return _train_in_process(args, launch, project, path, out, resumed, checkpoint_path)
    metrics = None
    if args.metrics:
        try:
            metrics = MetricsLog(Path(args.metrics))
        except OSError as exc:
            error(f"cannot write the metrics to {args.metrics}: {exc.strerror or exc}")
            return EXIT_ERROR
    try:
        return _train(args, project, path, out, resumed, checkpoint_path, metrics)
    finally:
        if metrics is not None:
            metrics.close()


def _launch(args):
    """This process's place among many (torchrun's environment), None when alone, False after
    saying what is wrong."""
    from netbuilder.core.torch_distributed import launched_by_torchrun

    try:
        launch = launched_by_torchrun()
    except TrainingError as exc:
        error(str(exc))
        return False
    if (launch is not None or args.processes) and args.engine != "torch":
        error("training in many processes needs the torch engine: add --engine torch")
        return False
    if launch is not None and args.processes:
        error("--processes starts torchrun itself; under torchrun leave it out (torchrun's --nproc_per_node "
              "says how many)")
        return False
    speed = [flag for name, flag in (("amp", "--amp"), ("channels_last", "--channels-last"), ("compile", "--compile"))
             if getattr(args, name, None)]
    if (launch is not None or args.processes) and speed:
        error(f"{' and '.join(speed)}: one process only so far; train in many processes without "
              f"{'them' if len(speed) > 1 else 'it'}")
        return False
    return launch


def _engine_device(args, launch=None) -> str | None:
    """The device the run will use ("cpu" for the numpy engine; for --processes, "cpu" or "cuda";
    under torchrun, this process's), or None after saying what is wrong."""
    from netbuilder.core.torch_devices import TorchMissingError, resolve_device

    if args.engine == "numpy":
        if args.device not in (None, "cpu"):
            error(f"the numpy engine runs on the CPU only; add --engine torch to train on {args.device}")
            return None
        return "cpu"
    try:
        if args.processes or launch is not None:
            from netbuilder.core.torch_distributed import check_processes, process_device

            return check_processes(args.processes, args.device) if args.processes else process_device(
                launch, args.device)
        return resolve_device(args.device or "auto")
    except TorchMissingError as exc:
        error(str(exc))
    except TrainingError as exc:
        error(str(exc))
    return None


def _start_processes(args) -> int:
    """``--processes N``: torchrun on this machine runs this command (less --processes) N times."""
    import os
    import subprocess

    from netbuilder.core.torch_distributed import torchrun_command

    arguments = ["train", args.project, "--engine", "torch", "--device", args.device]
    for flag, value in (("--epochs", args.epochs), ("--out", args.out), ("--metrics", args.metrics),
                        ("--checkpoint", args.checkpoint), ("--resume", args.resume)):
        if value is not None:
            arguments += [flag, str(value)]
    if args.keep != "last":
        arguments += ["--keep", args.keep]
    if args.quiet:
        arguments.append("--quiet")
    if not getattr(args, "record", True):
        arguments.append("--no-record")
    env = dict(os.environ)
    # torchrun gives each process one thread (and warns) unless told; the CPU is shared out instead
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // args.processes)))
    interrupted = []

    def on_sigint(signum, frame):  # Ctrl+C reaches the processes themselves (torchrun passes it on too)
        interrupted.append(signum)

    previous = _install_sigint(on_sigint)
    try:
        code = subprocess.run(torchrun_command(args.processes, arguments, sys.executable), env=env).returncode
    finally:
        _restore_sigint(previous)
    # torchrun ends with 1 (and its own traceback) when it passed a Ctrl+C on: the run was stopped,
    # and rank 0 said above whether the weights were saved
    return EXIT_INTERRUPTED if interrupted else code


def _train_in_process(args, launch, project, path: Path, out: Path, resumed, checkpoint_path: Path | None) -> int:
    """One of many processes: all train; only rank 0 prints, writes files and the metrics."""
    import contextlib
    import os

    from netbuilder.core.torch_distributed import process_group

    metrics = None
    if launch.leader and args.metrics:
        try:
            metrics = MetricsLog(Path(args.metrics))
        except OSError as exc:
            error(f"cannot write the metrics to {args.metrics}: {exc.strerror or exc}")
            metrics = False  # every process still joins the group, then leaves it
    with contextlib.ExitStack() as stack:
        if not launch.leader:
            quiet = stack.enter_context(open(os.devnull, "w", encoding="utf-8"))
            stack.enter_context(contextlib.redirect_stdout(quiet))
            stack.enter_context(contextlib.redirect_stderr(quiet))
        stack.enter_context(process_group(args.device))
        if metrics is False:
            return EXIT_ERROR
        if metrics is not None:
            stack.callback(metrics.close)
        return _train(args, project, path, out, resumed, checkpoint_path if launch.leader else None, metrics,
                      launch=launch)


def _train(args, project, path: Path, out: Path, resumed, checkpoint_path: Path | None,
           metrics: MetricsLog | None, launch=None) -> int:
    from netbuilder.core.checkpoint import CheckpointError, save_checkpoint
    from netbuilder.core.trainer import BatchEnd, EpochEnd, RunEnded, RunStarted
    from netbuilder.core.training_run import TrainingRun
    from netbuilder.core.weights import WeightsError, save_weights

    writer = launch is None or launch.leader  # the one process that writes files
    # Runs of the user's own project files are recorded next to them (not a bundled example's).
    record = path if writer and getattr(args, "record", True) and not getattr(args, "bundled", False) else None
    run = TrainingRun(project, path.parent, args.engine, args.device, checkpoint=resumed,
                      options=speed_options(args) if launch is None else None, launch=launch, record_to=record)
    try:
        dataset = run.load()
    except (ValueError, OSError) as exc:
        error(f"cannot load the dataset of {path}: {exc}")
        return EXIT_ERROR
    try:
        trainer = run.trainer()
        if args.keep == "best":
            trainer.keep_best()
    except (TrainingError, ValueError) as exc:
        error(f"{path}: {exc}" if resumed is None else f"cannot resume from {args.resume}: {exc}")
        return EXIT_ERROR
    epochs = args.epochs or project.training.epochs
    if resumed is not None:
        if resumed.epoch >= epochs:
            try:
                if writer:
                    save_weights(out, trainer.network, project)
            except (WeightsError, OSError) as exc:
                error(str(exc))
                return EXIT_ERROR
            print(f"the checkpoint has {resumed.epoch} epoch{'s' if resumed.epoch != 1 else ''} already "
                  f"(of {epochs}); nothing to train; weights saved to {out}", flush=True)
            return EXIT_OK
        epochs -= resumed.epoch

    progress = Progress(sys.stderr, enabled=not args.quiet and writer)
    interrupted = threading.Event()

    def on_sigint(signum, frame):
        if interrupted.is_set():
            if launch is not None:  # torchrun passes Ctrl+C on to its processes: the same request again
                return
            raise KeyboardInterrupt  # a second Ctrl+C aborts at once, without saving
        interrupted.set()
        trainer.stop()  # a distributed trainer shares the request with the other processes first
        if launch is None:
            progress.note("stopping after this batch (Ctrl+C again to abort without saving)")
        else:  # and torchrun ends them all should they take more than 30 s
            progress.note("stopping every process after this batch or the next")

    previous = _install_sigint(on_sigint)
    ended = None
    saved_epoch = None  # the epoch of the last checkpoint written
    try:
        for event in run.events(epochs):
            if isinstance(event, RunStarted):
                val = f", {event.val_size} for validation" if event.val_size else ""
                total_epochs = event.start_epoch + event.epochs
                if event.start_epoch:
                    what = (f"resuming {project.name!r} after epoch {event.start_epoch} on {event.train_size} "
                            f"images{val}: epochs {event.start_epoch + 1} to {total_epochs}")
                else:
                    what = (f"training {project.name!r} on {event.train_size} images{val}: {event.epochs} "
                            f"epoch{'s' if event.epochs != 1 else ''}")
                print(f"{what} of {event.batches_per_epoch} batches, {run.describe()}"
                      f"{_describe_options(speed_options(args))}", flush=True)
                for note in trainer.notes:
                    progress.note(f"netbuilder: note: {note}")
            elif isinstance(event, BatchEnd):
                progress.batch(event, total_epochs)
            elif isinstance(event, EpochEnd):
                progress.clear()
                print(epoch_line(event, total_epochs), flush=True)
                if metrics is not None:
                    metrics.epoch(event, total_epochs)
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
        error("aborted; no weights written")
        if metrics is not None:
            metrics.end("aborted", "aborted with a second Ctrl+C; no weights written")
        return EXIT_INTERRUPTED
    finally:
        _restore_sigint(previous)
    code = _after_run(args, ended, run, project, dataset, out, checkpoint_path, saved_epoch, metrics, writer, launch)
    # The record was written as the run ended; said last, on stderr with the progress (--quiet: not at
    # all), so that stdout keeps the run's results.
    if run.recorded is not None and not args.quiet:
        print(f"run recorded in {run.recorded}", file=sys.stderr, flush=True)
    elif run.record_problem:
        error(f"note: {run.record_problem}")
    return code


def _after_run(args, ended, run, project, dataset, out: Path, checkpoint_path: Path | None, saved_epoch,
               metrics: MetricsLog | None, writer: bool, launch) -> int:
    """What follows a run: its outcome said, the weights saved, the test split scored."""
    from netbuilder.core.weights import WeightsError, save_weights

    trainer = run.trainer()
    if ended.status in ("diverged", "failed"):
        error(f"{ended.message.rstrip('.')}; no weights written")
        if not writer and ended.status == "failed":  # this process's own failure: said even off rank 0
            print(f"netbuilder: process {launch.rank}: {ended.message}", file=sys.__stderr__, flush=True)
        if metrics is not None:
            metrics.end(ended.status, ended.message)
        return EXIT_ERROR
    try:
        if writer:
            save_weights(out, trainer.network, project)
    except (WeightsError, OSError) as exc:
        error(str(exc))
        if metrics is not None:
            metrics.end("failed", str(exc))
        return EXIT_ERROR
    print(f"{ended.message}; weights saved to {out}", flush=True)
    test_accuracy = None
    if dataset.x_test is not None and ended.status == "finished" and writer:
        net = trainer.network
        correct = int((net.classify(net.predict(dataset.x_test)) == dataset.y_test).sum())
        test_accuracy = correct / len(dataset.y_test)
        print(f"test accuracy {100 * test_accuracy:.1f}% "
              f"({correct:,} of {len(dataset.y_test):,} images of the dataset's test split)", flush=True)
    if saved_epoch is not None:
        print(f"checkpoint after epoch {saved_epoch} saved to {checkpoint_path} "
              f"(continue with: netbuilder train {args.project} --resume {checkpoint_path})", flush=True)
    if metrics is not None:
        metrics.end(ended.status, ended.message, weights=str(out), test_accuracy=test_accuracy)
    return EXIT_INTERRUPTED if ended.status == "stopped" else EXIT_OK


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
