"""The training worker: loads the data, runs ``Trainer.run()`` off the GUI thread, reports typed events.

``TrainingSession`` holds what outlives a run (the last trainer and its weights, a checkpoint
taken at a recent epoch end, the cached dataset, the probe samples) and runs one request at a
time as a background job (``gui.background.Jobs``, in the style of superqt's GeneratorWorker):
every event of the trainer's generator becomes one of ``core.run_events``' dataclasses handed to
``report``, which the job delivers on the GUI thread. The session never touches a widget or the
document; events carry copies. Stop, pause and the live learning rate are the run's
``RunControl`` (``control``), the one place they are kept.

While the worker handles an event the trainer's generator is suspended: the network is not
being trained, so probing it, reading its gradients or taking a checkpoint needs no lock.
What reaches the GUI is throttled here: batches and epochs are sent in lists at most
``FLUSH_INTERVAL`` apart (none lost, each in order, no epoch before its batches), the probe
every ``PROBE_INTERVAL`` and the first convolution's filters every ``FILTER_INTERVAL``, right
after a flush (one repaint of the window shows them all; a sample asked for is probed at once). Those
two and the dead-ReLU shares sent with the epochs are coalesced: while the GUI thread has not
handled the last one of a kind (``seen``), no other is computed, so a busy window gets fewer of
them instead of a queue, and the training thread does not make what nobody will see.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from netbuilder.core.checkpoint import load_checkpoint
from netbuilder.core.datasets import DatasetError, load_project_dataset
from netbuilder.core.errors import ProjectError, TrainingError
from netbuilder.core.run_control import RunControl
from netbuilder.core.run_events import (
    BatchesDone,
    DataReady,
    EpochsDone,
    Filters,
    Probe,
    RunBegan,
    RunFailed,
    StepTraced,
)
from netbuilder.core.run_history import RunRecorder
from netbuilder.core.step_trace import StepTrace
from netbuilder.core.torch_devices import TorchMissingError
from netbuilder.core.trainer import BatchEnd, EpochEnd, RunEnded, RunStarted, Trainer
from netbuilder.core.training_run import TrainingRun, describe_engine
from netbuilder.core.weights import WeightsError
from netbuilder.gui.training.events import (
    GradNorms,
    RunRequest,
    ValidationRecorder,
    class_probabilities,
    dataset_source,
    dead_relu_shares,
    layer_order,
    same_training_setup,
    x_in_epochs,
)

# Seconds between sends of the batches and epochs gathered (lists: none is lost). Tiny datasets
# end hundreds of epochs a second; each signal also costs the training thread a GIL hand-over, and
# each send repaints the curves and the train panel: at 10 a second the window's GUI thread used a
# quarter more CPU than at 5 (bench/gui_training.py), for curves that look no less live; at 2 a
# second they still read as live.
FLUSH_INTERVAL = 0.5
CHECKPOINT_INTERVAL = 2.0  # between in-memory checkpoints at epoch ends (and always at a run's last epoch)
# Between probes while training (about one a second: each is a forward pass on the training
# thread and a repaint of every feature map), and between filter copies. Both are made at a
# flush, so the window repaints them with the curves and the progress, in one pass.
PROBE_INTERVAL = 1.0
FILTER_INTERVAL = 2.0
SAMPLE_CAP = 2000  # validation samples sent to the views for picking and probing
DEAD_RELU_SAMPLES = 256  # the validation batch the dead-ReLU shares are measured on


Report = Callable[[Any], None]  # hands one event to the GUI thread


class TrainingSession:
    """Trains in the worker thread; the control methods (stop, pause, ...) are safe from any thread."""

    def __init__(self) -> None:
        self.trainer: Trainer | None = None  # the last run's trainer: its network has the trained weights
        self.trained = False  # at least one batch of that trainer was applied (or a checkpoint restored)
        # netbuilder.core.checkpoint.Checkpoint of the trainer at a recent epoch end: the last one of a finished
        # run, at most CHECKPOINT_INTERVAL seconds of epochs behind otherwise (taking one costs time
        # that grows with the epochs done, too much to take at each of thousands of tiny epochs).
        self.checkpoint = None
        self.class_names: list[str] = []
        self.samples: tuple[np.ndarray, np.ndarray] | None = None  # (x, y) the probe picks from
        self._dataset_key: str | None = None
        self._dataset = None
        self._probe_index = 0
        self._probe_wanted = False
        # Whether a view shows the probes now (``TrainingController.set_probes_wanted``): while none
        # does, the training thread makes no regular probe (the run's first and last still come).
        self.probes_wanted = True
        # Kinds of report (Probe, Filters, EpochsDone) sent to the GUI thread and not yet handled
        # there; set and cleared in single operations, which the GIL makes safe across threads.
        self._unseen: set[type] = set()
        self.control = RunControl()  # the requests to the run being prepared or in progress

    def forget(self) -> None:
        """Drop the trained state (another project was opened); only between runs."""
        self.trainer, self.trained, self.checkpoint, self.samples = None, False, None, None
        self._dataset, self._dataset_key = None, None

    # --- control (any thread) ------------------------------------------------------------------
    def reset_requests(self) -> None:
        """A fresh control for the request about to be queued (the last run's requests are done)."""
        self.control = RunControl()

    def stop(self) -> None:
        self.control.stop()

    def pause(self) -> None:
        self.control.pause()

    def resume(self) -> None:
        self.control.resume()

    @property
    def paused(self) -> bool:
        return self.control.paused

    def set_learning_rate(self, lr: float) -> None:
        """Use ``lr`` from the next batch of the run in progress (or of the run being prepared)."""
        self.control.set_learning_rate(lr)

    def step(self) -> None:
        """Train exactly one batch, recorded block by block (a ``StepTraced`` follows), then pause."""
        self.control.step()

    def set_step_sample(self, index: int) -> None:
        """The batch row whose feature maps the next Step keeps."""
        self.step_sample = max(int(index), 0)
        if self.trainer is not None:
            self.trainer.step_sample = self.step_sample

    step_sample = 0

    def request_probe(self, index: int) -> None:
        """Probe sample ``index`` at the next batch of the run in progress (once the last probe
        was handled: many requests meanwhile make one probe, of the latest sample)."""
        self._probe_index = index
        self._probe_wanted = True

    def seen(self, kind: type) -> None:
        """The GUI thread has handled the last report of ``kind``: another may be made."""
        self._unseen.discard(kind)

    # --- the worker thread ---------------------------------------------------------------------
    def run(self, request: RunRequest, report: Report) -> None:
        """Load, build or reuse a trainer, train; every outcome ends with a reported ``RunEnded``."""
        control = self.control
        # A saved project's run is recorded beside it; the settings are taken before training adds to them.
        record = RunRecorder(request.record_to, request.project) if request.record_to is not None else None
        try:
            trainer, history = self._prepare(request, report)
        except Exception as exc:  # noqa: BLE001 - every reason not to start is reported, none crashes the app
            message = failure_message(exc)
            report(RunFailed(message))
            report(RunEnded("failed", message, 0))
            return
        trainer.control = control  # what was asked while the data loaded holds for the run
        trainer.step_sample = self.step_sample
        self._train(trainer, request, history, report, record)

    def probe_once(self, report: Report) -> None:
        """Probe the chosen sample now (when no run is going on)."""
        trainer = self.trainer
        if trainer is not None and self.samples is not None:
            self._probe(trainer, report)

    # --- internals -----------------------------------------------------------------------------
    def _prepare(self, request: RunRequest, report: Report):
        """The trainer for ``request`` and the history shown before its first epoch."""
        project = request.project
        if request.mode == "continue":
            trainer = self.trainer
            if trainer is None or not self.trained:
                raise TrainingError("there is no trained network to continue; press Train to start a run")
            why = same_training_setup(trainer.project, project)
            if why:
                raise TrainingError(f"the last run cannot be continued: {why} since it. Press Train to start "
                                    "a new run with the new settings")
            dataset = self._load(trainer.project, request.base_dir)
            if not _same_engine(trainer, request):
                # another engine or device goes on from exactly where the last run stands
                trainer = TrainingRun(trainer.project, request.base_dir, request.engine, request.device,
                                      checkpoint=trainer.checkpoint(), dataset=dataset).trainer()
                self._install(trainer, dataset, trained=True)
            trainer.set_learning_rate(project.training.learning_rate)
        elif request.mode == "checkpoint":
            checkpoint = load_checkpoint(request.checkpoint)
            stored = checkpoint.project.dataset.get("normalization") if isinstance(
                checkpoint.project.dataset, dict) else None
            if (stored and "normalization" not in project.dataset
                    and dataset_source(project.dataset) == dataset_source(checkpoint.project.dataset)):
                project.dataset["normalization"] = stored  # what the checkpoint's weights were trained with
            dataset = self._load(project, request.base_dir)
            trainer = TrainingRun(project, request.base_dir, request.engine, request.device, checkpoint=checkpoint,
                                  dataset=dataset).trainer()
            self._install(trainer, dataset, trained=True)
            self.checkpoint = checkpoint
        else:
            dataset = self._load(project, request.base_dir)
            trainer = TrainingRun(project, request.base_dir, request.engine, request.device, dataset=dataset).trainer()
            self._install(trainer, dataset, trained=False)
        history = trainer.history if request.mode == "checkpoint" else None  # drawn before the resumed epochs
        x, y = self.samples
        report(DataReady(self._dataset.name, list(self.class_names),
                         tuple(int(v) for v in trainer.project.input_shape), len(trainer.train_idx),
                         len(trainer.val_idx), x.copy(), y.copy(), len(trainer.val_idx) == 0))
        return trainer, history

    def _load(self, project, base_dir):
        """The project's dataset, loaded once per source (IDX files take a moment, folders longer)."""
        spec = dataset_source(project.dataset)
        key = json.dumps([spec, str(base_dir), list(project.input_shape) if spec.get("kind") == "folder" else None],
                         sort_keys=True, default=str)
        if key != self._dataset_key:
            self._dataset, self._dataset_key = None, None
            self._dataset = load_project_dataset(project, base_dir)
            self._dataset_key = key
        return self._dataset

    def _install(self, trainer: Trainer, dataset, trained: bool) -> None:
        """Make ``trainer`` the session's; choose the probe samples and the class names."""
        self.trainer, self.trained = trainer, trained
        if not trained:
            self.checkpoint = None
        x, y = trainer.validation_data()
        if len(x) == 0:  # no validation split: training samples stand in for the views
            part = trainer.train_idx[:SAMPLE_CAP]
            x, y = dataset.x_train[part], np.asarray(dataset.y_train)[part]
        self.samples = (np.ascontiguousarray(x[:SAMPLE_CAP], np.float32), np.asarray(y[:SAMPLE_CAP], np.int64))
        outputs = trainer.network.output_features
        classes = max(len(dataset.class_names), 2 if outputs == 1 else outputs)
        self.class_names = list(dataset.class_names) + [str(k) for k in range(len(dataset.class_names), classes)]

    def _train(self, trainer: Trainer, request: RunRequest, history, report: Report, record=None) -> None:
        net = trainer.network
        classes = len(self.class_names)
        recorder = ValidationRecorder.install(trainer)
        recorder.clear()
        if record is not None:
            record.attach(trainer, self.class_names)  # writes the run's folder at its RunEnded
        norms = GradNorms()
        order = layer_order(net)  # how the gradient view orders (and colours) the blocks, inner ones too
        batches: list[BatchEnd] = []  # trained, not yet sent
        epochs: list[EpochEnd] = []  # ended, not yet sent
        extras: dict[str, Any] = {}  # the confusion matrix and gradient norms of the last epoch ended
        last_flush = last_probe = last_filters = last_checkpoint = 0.0
        final_epoch = None
        start_epoch = trainer.history.epochs_done if request.mode == "continue" else None

        def send_batches(part: list[BatchEnd]) -> None:
            points = [(x_in_epochs(b.epoch, b.batch, b.batches_per_epoch), b.loss, b.accuracy) for b in part]
            report(BatchesDone(part[-1], points, [b.learning_rate for b in part if b.learning_rate is not None]))

        def flush(final: bool = False) -> None:
            """Send what was gathered since the last flush: the batches up to the last epoch ended,
            the epochs ended, then the batches after them (so no epoch comes before its batches)."""
            nonlocal last_flush
            last_flush = time.monotonic()
            if epochs:
                done = epochs[-1].epoch
                split = next((i for i, b in enumerate(batches) if b.epoch > done), len(batches))
                if split:
                    send_batches(batches[:split])
                del batches[:split]
                # The shares cost a forward pass: not while the GUI has not drawn the last ones
                # (the run's last epoch always has them).
                fresh = final or done == final_epoch or EpochsDone not in self._unseen
                dead = dead_relu_shares(net, self.samples[0][:DEAD_RELU_SAMPLES]) if fresh else {}
                self._unseen.add(EpochsDone)
                report(EpochsDone(epochs[-1], list(epochs), dead_relu=dead, layer_order=order, **extras))
                epochs.clear()
            if batches:
                send_batches(batches)
                batches.clear()

        events = trainer.run(request.project.training.epochs, start_epoch)
        self._unseen.clear()  # a report the last run's GUI never handled holds nothing back now
        try:
            for event in events:
                if record is not None:
                    record.event(event)
                if isinstance(event, BatchEnd):
                    self.trained = True
                    batches.append(event)
                    norms.add(trainer.gradient_norms())
                    now = time.monotonic()
                    # Paused: send what was trained, so the window shows where the run holds.
                    flushed = now - last_flush >= FLUSH_INTERVAL or trainer.control.paused
                    if flushed:
                        flush()
                    # A sample asked for goes at once; the regular probe and filters with a flush.
                    due = flushed and self.probes_wanted and now - last_probe >= PROBE_INTERVAL
                    if (self._probe_wanted or due) and Probe not in self._unseen:
                        self._probe(trainer, report)
                        last_probe = now
                    if flushed and now - last_filters >= FILTER_INTERVAL and Filters not in self._unseen:
                        self._filters(net, report)
                        last_filters = now
                elif isinstance(event, StepTrace):  # a Step's batch: the run is paused after it
                    flush()
                    self._probe(trainer, report)
                    report(StepTraced(event))
                elif isinstance(event, EpochEnd):
                    now = time.monotonic()
                    if event.epoch == final_epoch or now - last_checkpoint >= CHECKPOINT_INTERVAL:
                        self.checkpoint = trainer.checkpoint()  # between epochs: the moment it can be taken
                        last_checkpoint = now
                    epochs.append(event)
                    extras = {"confusion": recorder.take(classes), "grad_norms": norms.take()}
                    if time.monotonic() - last_flush >= FLUSH_INTERVAL:
                        flush()
                elif isinstance(event, RunStarted):
                    final_epoch = event.start_epoch + event.epochs
                    report(RunBegan(event, request.mode, describe_engine(trainer),
                                    list(history.epochs) if history else [],
                                    [list(b) for b in history.batch_losses] if history else []))
                    self._probe(trainer, report)
                    self._filters(net, report)
                    last_probe = last_filters = time.monotonic()
                elif isinstance(event, RunEnded):  # the final state is always sent
                    flush(final=True)
                    self._probe(trainer, report)
                    self._filters(net, report)
                    if event.status in ("diverged", "failed"):
                        report(RunFailed(event.message))
                    if record is not None and record.problem:
                        report(RunFailed(record.problem[:1].upper() + record.problem[1:]))
                    report(event)
        except Exception as exc:  # noqa: BLE001 - a fault in the reporting must not leave the GUI waiting
            events.close()
            message = failure_message(exc)
            report(RunFailed(message))
            report(RunEnded("failed", message, trainer.history.epochs_done))

    def _probe(self, trainer: Trainer, report: Report) -> None:
        x, y = self.samples
        if not len(x):
            return
        self._probe_wanted = False
        i = min(max(int(self._probe_index), 0), len(x) - 1)
        layers = trainer.probe(x[i])
        activation = trainer.network.stages[-1].info.block.get("activation")
        probabilities = class_probabilities(layers[-1][2], activation)
        predicted = int(np.argmax(probabilities)) if np.isfinite(probabilities).all() else -1
        self._unseen.add(Probe)  # before it is sent: the GUI thread may handle it at once
        report(Probe(i, int(y[i]), x[i].copy(), layers, probabilities, predicted))

    def _filters(self, network, report: Report) -> None:
        self._unseen.add(Filters)
        report(first_filters(network))


def _same_engine(trainer: Trainer, request: RunRequest) -> bool:
    """Whether ``trainer`` computes with the engine and device ``request`` asks for."""
    engine = getattr(trainer, "engine", "numpy")
    if engine != request.engine:
        return False
    if engine == "numpy":
        return True
    from netbuilder.core.torch_devices import resolve_device  # torch is there: the trainer uses it

    return trainer.device == resolve_device(request.device)


def first_filters(network) -> Filters:
    """A copy of the weight (F, C, kh, kw) of the first block with image kernels (weight None when
    there is none). Blocks inside groups count (named by path): in a network that starts with a
    group, the first convolution, the one that sees the image, is inside it."""
    for stage in network.walk_stages():
        weight = stage.param_layer.params.get("weight") if stage.param_layer is not None else None
        if weight is not None and weight.ndim == 4:
            return Filters(stage.path, weight.copy())
    return Filters("", None)


def failure_message(exc: BaseException) -> str:
    """A sentence naming why a run could not start or go on."""
    if isinstance(exc, DatasetError):
        return f"The dataset cannot be used: {exc}"
    if isinstance(exc, ProjectError):
        return f"The network cannot be trained: {exc}"
    if isinstance(exc, (TrainingError, WeightsError, TorchMissingError)):
        text = str(exc)
        return text[:1].upper() + text[1:]
    if isinstance(exc, MemoryError):
        return "Not enough memory to train: try a smaller dataset, batch size or network"
    return f"Training failed: {type(exc).__name__}: {exc}"
