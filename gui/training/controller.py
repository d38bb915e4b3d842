"""The GUI's handle on training: start, pause, resume and stop runs, and the signals the views use.

``TrainingController(doc, parent=None)`` runs each request as a background job (the worker,
``netbuilder.gui.training.worker``, through ``gui.background.Jobs``) on a deep copy of the
document's project; the GUI thread never runs a batch. Every signal below is emitted on the GUI
thread and carries one of ``core.run_events``' typed events (copies, safe to keep):

  stateChanged(str)    "idle" | "loading" | "running" | "paused" | "stopping"
  datasetReady         DataReady, once the data of a run is loaded
  runStarted           RunBegan, with the window's run label and number
  batchEnded           BatchesDone: every batch since the last (about 2 a second at most; an
                       epoch's batches always arrive before its epochEnded)
  epochEnded           EpochsDone: every epoch since the last, with the latest one's diagnostics
  probeReady           Probe: about 1 a second while training, once after ``set_probe_sample``
                       when idle or paused (at the next batch while training); never more than
                       the views take: the next is made once the last one was handled here, and
                       choosing samples while a probe is computed makes one more, of the last;
                       none while training but the run's first and last after
                       ``set_probes_wanted(False)`` (no view shows them)
  filtersReady         Filters of the first convolution (weight None without one); every 2 s,
                       coalesced the same way
  stepTraced           StepTraced: a Step's batch, block by block (a^[l−1], Z, a, δ, ∂L/∂W, ΔW);
                       the run is paused after it
  runEnded             core RunEnded (status "finished" | "stopped" | "diverged" | "failed"); always
                       the last signal of a run, also when it could not start
  error(str)           a message naming the problem (bad data, divergence, shape mismatch...)
  trainedChanged(bool) ``has_trained`` changed (enables exporting)

The document is locked ("Training") from ``start`` until ``runEnded``; the learning rate follows
the document's ``training.learning_rate`` live. Training never edits the project: the input
normalisation a run computes stays with its trainer's copy of the project, so it travels with
the trained weights, checkpoints and exports. Opening or creating another project forgets the
trained weights (the curves of earlier runs stay).

Beyond the views' interface: ``start(mode="new" | "continue" | "checkpoint", checkpoint=None)``,
``set_learning_rate``, ``save_checkpoint(path)``, ``checkpoint_epoch``, ``continue_problem()``,
``state``, ``run_count``, ``last_batch`` and ``shutdown()`` (stop and join the worker: the window
calls it when it closes).
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QObject, Signal

from netbuilder.core.checkpoint import save_checkpoint
from netbuilder.core.errors import TrainingError
from netbuilder.core.network import Network
from netbuilder.core.run_events import (
    BatchesDone,
    DataReady,
    EpochsDone,
    Filters,
    Probe,
    RunBegan,
    RunEnded,
    RunFailed,
    StepTraced,
)
from netbuilder.core.weights import save_weights
from netbuilder.gui.background import Jobs
from netbuilder.gui.document import ProjectDocument
from netbuilder.gui.training.events import RunRequest, run_label, same_training_setup
from netbuilder.gui.training.worker import TrainingSession

IDLE, LOADING, RUNNING, PAUSED, STOPPING = "idle", "loading", "running", "paused", "stopping"
LOCK_REASON = "Training"
_COALESCED = (Probe, Filters, EpochsDone)  # the worker makes the next of these once the last was handled


class TrainingController(QObject):
    """Owns the training session of one document and reports it through signals (see the module)."""

    stateChanged = Signal(str)
    datasetReady = Signal(object)
    # Train was pressed on a network with errors: the list of error Problems (the window shows where).
    cannotTrain = Signal(object)
    runStarted = Signal(object)
    batchEnded = Signal(object)
    epochEnded = Signal(object)
    probeReady = Signal(object)
    filtersReady = Signal(object)
    stepTraced = Signal(object)
    runEnded = Signal(object)
    error = Signal(str)
    trainedChanged = Signal(bool)

    def __init__(self, doc: ProjectDocument, parent: QObject | None = None):
        super().__init__(parent)
        self.doc = doc
        self._session = TrainingSession()
        # One run at a time (``start`` refuses a second); probes asked for while no batch runs
        # (idle or paused) are jobs of their own, which ``Trainer.probe`` makes safe.
        self._jobs = Jobs(self)
        self._route = {DataReady: self._on_dataset, RunBegan: self._on_run_started, BatchesDone: self._on_batch,
                       EpochsDone: self.epochEnded.emit, Probe: self.probeReady.emit, Filters: self.filtersReady.emit,
                       RunEnded: self._on_run_ended, RunFailed: lambda e: self.error.emit(e.message),
                       StepTraced: self._on_step_traced}
        self._state = IDLE
        self._runs = 0
        self._pending = ("new", "", doc.project.training)  # mode, label note, settings of the request
        self._class_names: list[str] = []
        self._probe_index = 0
        self._probing = self._probe_again = False  # an idle probe job is under way; another is wanted
        self._last_batch = None
        self._closed = False
        # What the next run trains with: the numpy engine, or torch on a device (set_engine).
        self.engine, self.device = "numpy", None
        doc.valueChanged.connect(self._on_value_changed)
        doc.projectReplaced.connect(self._on_project_replaced)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)
        # Deleted without shutdown(): the pool (a child) waits for the run as it goes, so end
        # the run first (``destroyed`` comes before the children are deleted).
        self.destroyed.connect(self._session.stop)

    # --- state ---------------------------------------------------------------------------------
    @property
    def state(self) -> str:
        return self._state

    @property
    def is_running(self) -> bool:
        """A request is being prepared or trained (also while paused or stopping)."""
        return self._state != IDLE

    @property
    def is_paused(self) -> bool:
        return self._state == PAUSED

    @property
    def has_trained(self) -> bool:
        """Weights exist that training changed (or that a checkpoint or a recorded run brought back)."""
        return self._session.trained or self._loaded is not None

    _loaded: Network | None = None  # a recorded run's network (``use_network``), until the next run

    def use_network(self, network: Network, class_names: list[str] | None = None) -> None:
        """Make ``network`` (a recorded run's weights) the trained network of Try, the previews and
        the exports, until the next run starts or another project is opened."""
        self._loaded = network
        if class_names:
            self._class_names = list(class_names)
        self.trainedChanged.emit(True)

    @property
    def class_names(self) -> list[str]:
        """The class names of the last loaded dataset (padded with "3", "4"... for extra outputs)."""
        return list(self._class_names)

    @property
    def run_count(self) -> int:
        return self._runs

    @property
    def last_batch(self):
        """The latest core BatchEnd of the current or last run (None before any)."""
        return self._last_batch

    @property
    def checkpoint_epoch(self) -> int | None:
        """The epoch a checkpoint saved now would hold (None before the first completed epoch)."""
        checkpoint = self._session.checkpoint
        return None if checkpoint is None else checkpoint.epoch

    def continue_problem(self) -> str:
        """"" if ``start("continue")`` can go on with the last run, else why not."""
        trainer = self._session.trainer
        if trainer is None or not self._session.trained:
            return "nothing has been trained yet"
        return same_training_setup(trainer.project, self.doc.project)

    # --- control -------------------------------------------------------------------------------
    def start(self, mode: str = "new", checkpoint: str | os.PathLike | None = None) -> bool:
        """Begin a run: "new" weights, "continue" the last run, or resume a "checkpoint" file.

        Runs for the project's number of epochs. Returns False (with ``error`` emitted when there
        is a reason to give) if nothing started.
        """
        if self._closed or self.is_running:
            return False
        doc = self.doc
        problems = [p for p in doc.inference.problems if p.severity == "error"]
        if problems:
            self.error.emit(f"The network cannot be trained: {problems[0].message}")
            self.cannotTrain.emit(problems)
            return False
        if mode == "continue":
            why = self.continue_problem()
            if why:
                self.error.emit(f"The last run cannot be continued: {why}. Press Train to start a new run")
                return False
        request = RunRequest(doc.project.copy(), doc.path.parent if doc.path else None, mode,
                             Path(checkpoint) if checkpoint is not None else None, self.engine, self.device,
                             record_to=doc.path)  # a saved project's runs are recorded beside it
        self._loaded = None
        note = {"new": "", "continue": "continued",
                "checkpoint": f"from {request.checkpoint.name}" if request.checkpoint else ""}[mode]
        self._pending = (mode, note, request.project.training)
        self._announced = False
        self._session.reset_requests()
        self._set_state(LOADING)
        doc.set_locked(LOCK_REASON)
        session = self._session
        self._jobs.start(lambda report: session.run(request, report), progress=self._on_event, name="training")
        return True

    def pause(self) -> None:
        if self._state in (LOADING, RUNNING):
            self._session.pause()
            self._set_state(PAUSED)

    def resume(self) -> None:
        if self._state == PAUSED:
            self._session.resume()
            self._set_state(RUNNING if self._last_started else LOADING)

    def step(self) -> bool:
        """Train exactly one batch and pause, with every block's values recorded (``stepTraced``).

        Idle: starts a run (continuing the last one when it can be continued, else from fresh
        weights) that pauses after its first batch; paused: one more batch; running: pauses after
        the next batch. Returns False when nothing could be done (the reason emitted as ``error``).
        """
        if self._state == IDLE:
            if not self.start("continue" if self.has_trained and not self.continue_problem() else "new"):
                return False
            self._session.step()
            return True
        if self._state not in (LOADING, RUNNING, PAUSED):
            return False
        self._session.step()
        if self._state == PAUSED:
            self._set_state(RUNNING if self._last_started else LOADING)
        return True

    def set_step_sample(self, index: int) -> None:
        """The sample of the batch (its row) whose feature maps the next Step shows."""
        self._session.set_step_sample(index)

    def stop(self) -> None:
        """End the run after the batch in progress (the weights trained so far are kept)."""
        if self._state in (LOADING, RUNNING, PAUSED):
            self._session.stop()
            self._set_state(STOPPING)

    def set_engine(self, engine: str, device: str | None = None) -> None:
        """Train the next runs with ``engine`` ("numpy" or "torch") on ``device`` (torch only)."""
        self.engine, self.device = engine, (device if engine == "torch" else None)

    def set_learning_rate(self, lr: float) -> None:
        """Change the running trainer's learning rate (the document's value is set by the panel)."""
        if self.is_running:
            self._session.set_learning_rate(lr)

    def set_probe_sample(self, index: int) -> None:
        """Show validation sample ``index`` in the probe: at the next batch, or at once when idle or paused."""
        self._probe_index = int(index)
        self._session.request_probe(self._probe_index)
        if self._probes_idle():
            if self._probing:  # one job at a time: the next one probes the sample chosen last
                self._probe_again = True
            else:
                self._start_probe_job()

    def set_probes_wanted(self, wanted: bool) -> None:
        """Whether a view shows the probes now: while none does (its tab or mode hidden), the worker
        makes none while training but the run's first and last (a sample asked for still is)."""
        self._session.probes_wanted = bool(wanted)

    def _probes_idle(self) -> bool:
        """Whether a probe is a job of its own (no run trains now; the last run's trainer is there)."""
        return self._state not in (LOADING, RUNNING) and self._session.trainer is not None and not self._closed

    def _start_probe_job(self) -> None:
        self._probing = True
        self._jobs.start(self._session.probe_once, progress=self._on_event, done=self._probe_job_done,
                         failed=self._probe_job_done, name="probe")

    def _probe_job_done(self, _result=None) -> None:
        self._probing = False
        if self._probe_again:
            self._probe_again = False
            if self._probes_idle():
                self._start_probe_job()

    # --- results -------------------------------------------------------------------------------
    def trained_network(self) -> Network | None:
        """A copy of the trained network (its own project and weights), or None; safe on the GUI thread.

        While a run goes on the copy waits for the batch in progress to finish.
        """
        trainer = self._session.trainer
        if self._loaded is not None:
            network = Network(self._loaded.project.copy(), dtype=self._loaded.dtype)
            network.load_state_dict(self._loaded.state_dict())
            return network
        if trainer is None or not self._session.trained:
            return None
        network = Network(trainer.project.copy(), dtype=trainer.network.dtype)
        network.load_state_dict(trainer.weights())
        return network

    def export_weights(self, path: str | os.PathLike) -> Path:
        """Write the trained weights with their project to ``path`` (.npz, atomically); returns it.

        Raises TrainingError before anything is trained, WeightsError when the file cannot be written.
        """
        trainer = self._session.trainer
        if self._loaded is not None:
            save_weights(path, self._loaded.state_dict(), self._loaded.project)
            return Path(path)
        if trainer is None or not self._session.trained:
            raise TrainingError("there are no trained weights to export yet: train the network first")
        path = Path(path)
        save_weights(path, trainer.weights(), trainer.project)
        return path

    def save_checkpoint(self, path: str | os.PathLike) -> int:
        """Write the training state at an epoch's end to ``path``; returns that epoch.

        Between runs that is the last completed epoch (after a stop, the last one the worker kept:
        at most a couple of seconds of epochs earlier). Training can go on from the file later,
        exactly (``start("checkpoint", path)``).
        """
        checkpoint = self._session.checkpoint
        trainer = self._session.trainer
        if not self.is_running and trainer is not None and self._session.trained:
            try:
                checkpoint = trainer.checkpoint()
            except TrainingError:  # stopped in the middle of an epoch: keep the worker's
                pass
        if checkpoint is None:
            raise TrainingError("no epoch has been completed yet: a checkpoint is taken at the end of each epoch")
        save_checkpoint(path, checkpoint)
        return checkpoint.epoch

    def shutdown(self) -> None:
        """Stop any run and wait for the worker to finish (the window is closing)."""
        if self._closed:
            return
        self._closed = True
        self._session.stop()
        self._jobs.wait()
        if self.doc.lock_reason == LOCK_REASON:
            self.doc.set_locked("")
        self._set_state(IDLE)

    # --- from the worker (GUI thread) ----------------------------------------------------------
    _last_started = False
    _announced = False

    def _on_event(self, event) -> None:
        """One event from the worker, to the handler of its type; then the worker may make the
        next of a coalesced kind (see the worker's ``seen``)."""
        try:
            self._route[type(event)](event)
        finally:
            if type(event) in _COALESCED:
                self._session.seen(type(event))

    def _set_state(self, state: str) -> None:
        if state != self._state:
            self._state = state
            self.stateChanged.emit(state)

    def _on_dataset(self, event: DataReady) -> None:
        self._class_names = list(event.class_names)
        self.datasetReady.emit(event)

    def _on_run_started(self, event: RunBegan) -> None:
        mode, note, settings = self._pending
        continued = mode == "continue" and self._runs > 0
        if not continued:
            self._runs += 1
        label = run_label(self._runs, settings, note)
        self._last_started = True
        if self._state == LOADING:
            self._set_state(RUNNING)
        self.runStarted.emit(dataclasses.replace(event, label=label, run=self._runs, continued=continued))
        self.trainedChanged.emit(self._session.trained)

    def _on_batch(self, event: BatchesDone) -> None:
        self._last_batch = event.event
        self.batchEnded.emit(event)
        if not self._announced:
            self._announced = True
            self.trainedChanged.emit(True)

    def _on_step_traced(self, event: StepTraced) -> None:
        if self._state in (LOADING, RUNNING) and self._session.paused:
            self._set_state(PAUSED)
        self.stepTraced.emit(event)

    def _on_run_ended(self, event) -> None:
        self._last_started = False
        if self.doc.lock_reason == LOCK_REASON:
            self.doc.set_locked("")
        self._set_state(IDLE)
        self.runEnded.emit(event)
        self.trainedChanged.emit(self._session.trained)

    def _on_value_changed(self, key: str) -> None:
        if key == "training.learning_rate" and self.is_running:
            lr = self.doc.project.training.learning_rate
            try:
                self._session.set_learning_rate(lr)
            except ValueError as exc:
                self.error.emit(f"The learning rate cannot be {lr!r}: {exc}")

    def _on_project_replaced(self) -> None:
        """Another project (New, Open; never while training): its weights are not this network's."""
        if self._loaded is not None:
            self._loaded = None
            self.trainedChanged.emit(self._session.trained)
        if not self.is_running and self._session.trainer is not None:
            self._session.forget()
            self._class_names = []
            self.trainedChanged.emit(False)
