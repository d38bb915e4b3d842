"""The training loop: mini-batches, validation, events, and control from another thread.

``Trainer.run()`` is a generator of events that the GUI (from a worker thread) and the CLI
consume alike; ``Trainer.fit()`` drives it and returns a ``History``. ``stop``, ``pause``,
``resume``, ``set_learning_rate``, ``probe`` and ``weights`` are safe to call from any thread.

Numbering: epochs and batches in events are 1-based, as shown to the user
(``BatchEnd(epoch=1, batch=1, ...)`` is the first batch of the run). A Step (``Trainer.step``,
``RunControl.step``) adds one ``core.step_trace.StepTrace`` after its batch's ``BatchEnd``.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator

import numpy as np

from netbuilder.core import class_weights
from netbuilder.core.augment import Augmentation, augmentation_rng
from netbuilder.core.early_stopping import EarlyStopping
from netbuilder.core.errors import TrainingError
from netbuilder.core.layers import Dropout
from netbuilder.core.layers.parallel import blas_single_threaded
from netbuilder.core.memory import machine_memory, memory_problems
from netbuilder.core.network import Network
from netbuilder.core.optimizers import Optimizer, make_optimizer
from netbuilder.core.run_control import NetworkLock, RunControl, StopRequested
from netbuilder.core.schedules import Schedule
from netbuilder.core.trainer_checkpoint import restore_checkpoint, take_checkpoint
from netbuilder.core.trainer_events import BatchEnd, EpochEnd, Event, History, RunEnded, RunStarted
from netbuilder.core.training_data import TrainingData

EVAL_BATCH = 256  # samples per forward pass when validating


class _Diverged(Exception):
    pass


class _StoppedEarly(Exception):
    """Early stopping ended the run (its message says at which epoch and what is restored)."""


# --- the trainer ----------------------------------------------------------------------------
class Trainer:
    """Trains ``network`` (built from ``project`` if not given) on ``dataset``'s training images.

    ``dataset`` needs ``x_train`` (N, C, H, W) and ``y_train`` (N,) int labels, as
    ``netbuilder.core.datasets.Dataset`` has. A stratified ``validation_fraction`` of it is held out,
    chosen by the project's seed, unless the dataset brings its own validation split (``x_val``,
    ``y_val``). One ``np.random.default_rng(seed)`` drives weight initialisation (when
    the trainer builds the network), dropout (idem) and the per-epoch shuffling, so the same
    project and data give the same weights bit for bit.

    Divergence: a batch whose loss or gradients are not finite is not applied, so the weights
    stay those of the last good step. Should an update itself overflow the weights (seen at the
    next batch), they are restored from a copy taken at the start of the epoch and the optimiser
    state is reset; the ``RunEnded`` message says which happened.
    """

    engine = "numpy"  # what does the arithmetic ("torch" for core.torch_engine.TorchTrainer)
    # Called with (labels, outputs) of each validation chunk, in the run's thread: the window's
    # confusion matrix is made of exactly the predictions the validation metrics came from.
    validation_observer: Callable[[np.ndarray, np.ndarray], None] | None = None
    # A Step's trace: the batch row whose feature maps it keeps, and whether it keeps whole-batch copies.
    step_sample = 0
    keep_step_arrays = False

    def __init__(self, project, dataset, network: Network | None = None, dtype=np.float32):
        self.project = project
        self.settings = project.training
        seed = self.settings.seed
        self.rng = np.random.default_rng(seed)
        # Augmentation of the training batches (core/augment.py), from a stream of its own so that
        # turning it on changes neither the initial weights nor the order; never validation.
        self.augmentation = Augmentation.from_spec(self.settings.augmentation)
        self.augment_rng = augmentation_rng(seed)
        # The learning rate over the run (core/schedules.py): base × the schedule's factor per batch.
        self.schedule = Schedule.from_spec(self.settings.schedule)
        self.base_lr = float(self.settings.learning_rate)
        self._factor = 1.0  # the factor the last batch trained with
        self._asked_lr: float | None = None  # a rate set by hand, from the next batch on
        self.early_stopping = EarlyStopping.from_spec(self.settings.early_stopping)
        self._keep_best = False  # ``keep_best``: end with the best epoch's weights
        self.network = network if network is not None else Network(project, rng=self.rng, dtype=dtype)
        net = self.network

        batch_size = self.settings.batch_size
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise TrainingError(f"batch size must be a whole number >= 1, got {batch_size!r}")
        self.data = TrainingData(project, dataset, net, self.settings.validation_fraction, seed)
        # The trainer's own names for the data's parts (other modules and tests read them).
        self._x, self._y = self.data.x, self.data.y
        self.train_idx, self.val_idx = self.data.train_idx, self.data.val_idx
        net.set_normalization(project.dataset.get("normalization") if isinstance(project.dataset, dict) else None)
        self.notes: list[str] = []  # what the trainer decided for the user to know, one line each
        self.class_weights, notes = class_weights.attach(net, self.settings.class_weights, self._y[self.train_idx],
                                                         getattr(dataset, "class_names", None))
        self.notes += notes
        n_train = len(self.train_idx)
        if batch_size > n_train > 0:  # the same batches as before, without a buffer of the size asked
            self.notes.append(f"batch size {batch_size:,} is more than the {n_train:,} training images: "
                              "each batch is the whole training split")
            batch_size = n_train
        for severity, message, _, _ in memory_problems([s.info for s in net.stages], project.blocks,
                                                       project.input_shape, batch_size,
                                                       self.settings.optimizer, machine_memory()):
            if severity == "error":
                raise TrainingError(message)
        self.batch_size = batch_size
        self._order = self.train_idx.copy()  # shuffled in place each epoch
        self._xbuf = np.empty((batch_size,) + self.data.sample_shape, net.dtype)
        self._ybuf = np.empty(batch_size, np.int64)

        self.optimizer: Optimizer = make_optimizer(self.settings)
        self.history = History()
        self._mid_epoch = False  # an epoch has begun and not finished: no checkpoint can be taken
        self._resume_epoch = 0  # set by restore(): the next run continues from there

        self._net_lock = NetworkLock()  # held during every step that touches the network
        # Stop, pause and rate requests: the run's RunControl, which whoever drives the run may
        # hand in (``control``) before the run starts, or replace between runs.
        self.control = RunControl()
        self.error: BaseException | None = None  # the exception behind a "failed" run

    # --- control (any thread) ----------------------------------------------------------------
    def stop(self) -> None:
        """End the current run after the batch in progress (also when paused).

        A stop requested before a run starts ends that run at once; the request is cleared when
        the run ends.
        """
        self.control.stop()

    def pause(self) -> None:
        """Hold the run before its next batch until ``resume`` or ``stop``."""
        self.control.pause()

    def resume(self) -> None:
        self.control.resume()

    @property
    def paused(self) -> bool:
        return self.control.paused

    def wait_until_paused(self, timeout: float | None = None) -> bool:
        """Block until the loop is actually held by a pause; False on timeout."""
        return self.control.wait_until_paused(timeout)

    def keep_best(self) -> None:
        """End runs with the weights of the epoch with the best validation loss (``train --keep
        best``), whether or not early stopping ends them; the project's early stopping, if any,
        says which figure is best."""
        if self.early_stopping is None:
            self.early_stopping = EarlyStopping(patience=10**9)  # watches, never stops
        self.early_stopping.restore_best = True
        self._keep_best = True

    def set_learning_rate(self, lr: float) -> None:
        """Change the learning rate from the next step on (ValueError for a non-positive value);
        with a schedule, the schedule goes on from this rate."""
        self.optimizer.lr = lr
        self._asked_lr = lr  # with a schedule, the next batch trains at ``lr`` and the schedule goes on from it

    @property
    def learning_rate(self) -> float:
        return self.optimizer.lr

    def probe(self, x: np.ndarray) -> list[tuple[str, str, np.ndarray]]:
        """Every block's output for one sample ``x`` (C, H, W) or (1, C, H, W), in inference mode.

        Returns ``[(block name, block kind, output copy without the batch axis), ...]``, the blocks
        inside groups too, named by their path ("res1.conv1", "inc1.path2.conv1"), in the order
        of ``Network.forward_stages``: a group's inner blocks just before the group's own output
        (the order the data goes through them; the last entry is the network's output). Waits for
        the batch in progress to finish; training then waits for the probe.
        """
        x = np.asarray(x)
        shape = self.data.sample_shape
        if x.ndim == len(shape):
            x = x[None]
        if x.shape[0] != 1 or x.shape[1:] != shape:
            raise ValueError(f"probe takes one sample of shape {shape}, got {x.shape}")
        with self._net_lock.exclusive(), np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            stages = self.network.forward_stages(x)
            return [(stage.path, stage.info.kind, np.array(out[0], copy=True)) for stage, out in stages]

    def validation_data(self) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of the validation split (copies; a mapped set's images a read-only view of its
        rows on disk): for confusion matrices and sample pickers."""
        return self.data.view(self.val_idx)

    def weights(self) -> dict[str, np.ndarray]:
        """Copies of every parameter under its stable name, taken between batches."""
        with self._net_lock.exclusive():
            return self.network.state_dict()

    # --- checkpoints (core/trainer_checkpoint.py) ---------------------------------------------
    def checkpoint(self):
        """A ``netbuilder.core.checkpoint.Checkpoint`` of the run's state now, which must be between epochs.

        Take it from the ``EpochEnd`` event's handler (the run waits there) or when no run is
        active; raises TrainingError in the middle of an epoch (e.g. after a stop).
        """
        return take_checkpoint(self)

    def restore(self, checkpoint) -> None:
        """Put the state of ``checkpoint`` back: the next ``run`` continues it exactly.

        Raises TrainingError (the trainer unchanged) if it belongs to another network, optimiser
        kind or training set.
        """
        restore_checkpoint(self, checkpoint)

    @classmethod
    def from_checkpoint(cls, checkpoint, dataset, project=None, dtype=None, **options) -> Trainer:
        """A trainer that continues ``checkpoint`` (a Checkpoint or a path) on ``dataset``.

        ``project`` defaults to the checkpoint's own; ``dtype`` to its weights' dtype; ``options``
        go to the constructor (the torch engine's ``device``).
        """
        if not hasattr(checkpoint, "weights"):
            from netbuilder.core.checkpoint import load_checkpoint

            checkpoint = load_checkpoint(checkpoint)
        if dtype is None:
            dtype = next(iter(checkpoint.weights.values())).dtype if checkpoint.weights else np.float32
        trainer = cls(project if project is not None else checkpoint.project, dataset, dtype=dtype, **options)
        trainer.restore(checkpoint)
        return trainer

    def _dropout_rngs(self) -> dict[str, np.random.Generator]:
        """Dropout blocks drawing from a generator other than the trainer's (a network built elsewhere)."""
        return {stage.path: layer.rng for stage in self.network.walk_stages() for layer in stage.layers
                if isinstance(layer, Dropout) and layer.rng is not self.rng}

    # --- running -------------------------------------------------------------------------------
    def fit(self, callback: Callable[[Event], None] | None = None, epochs: int | None = None) -> History:
        """Run to the end, passing every event to ``callback``; returns ``self.history``."""
        for event in self.run(epochs):
            if callback is not None:
                callback(event)
        return self.history

    def run(self, epochs: int | None = None, start_epoch: int | None = None) -> Iterator[Event]:
        """Train for ``epochs`` (default: the project's), yielding events as they happen.

        Runs may follow one another: weights and optimiser state carry over. The history is
        reset at the start of each run, except in a resumed run: ``start_epoch`` epochs done
        before (default: those of the checkpoint ``restore`` loaded, for the first run after
        it; else 0) keep their history, and events are numbered from ``start_epoch + 1``.
        BLAS runs on one thread for as long as the run does (the layers split the work).
        """
        with self._run_context():
            yield from self._run(epochs, start_epoch)

    def _run(self, epochs: int | None, start_epoch: int | None) -> Iterator[Event]:
        epochs = self.settings.epochs if epochs is None else epochs
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise TrainingError(f"epochs must be a whole number >= 1, got {epochs!r}")
        first = self._resume_epoch if start_epoch is None else start_epoch
        if isinstance(first, bool) or not isinstance(first, int) or first < 0:
            raise TrainingError(f"start_epoch must be a whole number >= 0, got {first!r}")
        self._resume_epoch = 0
        n = len(self.train_idx)
        bpe = math.ceil(n / self.batch_size)
        old = self.history
        self.history = history = History(list(old.epochs[:first]), [list(b) for b in old.batch_losses[:first]],
                                         epochs_done=first) if first else History()
        self.error = None
        status, message = "finished", f"finished {epochs} epoch{'s' if epochs != 1 else ''}"
        try:
            self._start_engine()
            yield RunStarted(epochs, bpe, n, len(self.val_idx), first)
            seen = 0
            for epoch in range(first + 1, first + epochs + 1):
                snapshot = self._snapshot()
                losses: list[float] = []
                history.batch_losses.append(losses)
                start = time.perf_counter()
                paused = 0.0  # seconds spent paused this epoch, left out of the timings
                loss_sum, weight_sum, correct = 0.0, 0.0, 0  # with class weights, a weighted mean
                self._net_lock.acquire()  # a checkpoint taken from another thread sees this epoch begun, or not at all
                try:
                    self._mid_epoch = True
                    self.rng.shuffle(self._order)
                finally:
                    self._net_lock.release()
                for b in range(bpe):
                    paused += self._hold()
                    if self.schedule.active:
                        self._scheduled(epoch, b + 1, bpe, first + epochs)
                    idx = self._order[b * self.batch_size:(b + 1) * self.batch_size]
                    k = len(idx)
                    xb, yb = self._xbuf[:k], self._ybuf[:k]
                    self.data.gather(idx, xb, yb)
                    if self.augmentation.enabled:  # both engines train on this same augmented batch
                        xb = self.augmentation.augment(xb, self.augment_rng)
                    trace = None
                    if self.control.take_step():  # a Step: this batch is recorded block by block
                        loss, outputs, trace = self._traced_step(xb, yb, epoch, b + 1, bpe, snapshot)
                    else:
                        loss, outputs = self._step(xb, yb, epoch, b + 1, snapshot)
                    hits = int(np.count_nonzero(self.network.classify(outputs) == yb))
                    losses.append(loss)
                    weight = self.network.loss.weight_of(yb)  # k without class weights
                    loss_sum, weight_sum = loss_sum + loss * weight, weight_sum + weight
                    correct += hits
                    seen += k
                    done = b * self.batch_size + k
                    elapsed = max(time.perf_counter() - start - paused, 1e-9)
                    yield BatchEnd(epoch, b + 1, bpe, loss, hits / k, done / elapsed, seen, self.optimizer.lr)
                    if trace is not None:
                        yield trace
                train_seconds = max(time.perf_counter() - start - paused, 1e-9)
                val_loss, val_acc = self._validate()
                self.schedule.epoch_ended(val_loss)
                history.epochs.append(EpochEnd(
                    epoch, loss_sum / weight_sum, correct / n, val_loss, val_acc,
                    time.perf_counter() - start - paused, n / train_seconds))
                history.epochs_done = epoch
                self._sync_engine()  # before the handler of EpochEnd may take a checkpoint
                stop = self.early_stopping is not None and self.early_stopping.epoch_ended(
                    epoch, val_loss, val_acc, self.network.state_dict)
                self._mid_epoch = False
                yield history.epochs[-1]
                if stop:
                    raise _StoppedEarly(self.early_stopping.message(epoch))
        except StopRequested:
            done = history.epochs_done - first
            status, message = "stopped", f"stopped after {done} complete epoch{'s' if done != 1 else ''}"
        except _Diverged as exc:
            status, message = "diverged", str(exc)
        except _StoppedEarly as exc:
            status, message = "finished", str(exc)
        except Exception as exc:  # noqa: BLE001 - reported as an event; kept in self.error
            self.error = exc
            status, message = "failed", f"training failed: {type(exc).__name__}: {exc}"
        finally:
            self.control.clear()
        try:
            self._sync_engine(final=True)
        except Exception as exc:  # noqa: BLE001 - the weights could not come back: the run failed
            if status != "failed":
                self.error = exc
                status, message = "failed", f"training failed: {type(exc).__name__}: {exc}"
        early = self.early_stopping
        stopped_early = status == "finished" and message.startswith("stopped early")
        keep = stopped_early or (self._keep_best and status in ("finished", "stopped"))
        if early is not None and early.restore_best and early.best_weights and keep:
            with self._net_lock.exclusive():  # the best epoch's weights, as the message says
                self.network.load_state_dict(early.best_weights)
            if not stopped_early:
                message += f"; the weights of epoch {early.best_epoch}, the best, are kept"
        history.status, history.message = status, message
        yield RunEnded(status, message, history.epochs_done)

    # --- engine hooks: what another engine (core/torch_engine.py) replaces -----------------------
    # The loop above (data order, batches, events, history, pause/stop, divergence messages) is
    # shared; an engine changes where the network's arithmetic runs and keeps ``self.network``
    # (the numpy network) up to date at every epoch's end and at the run's end.
    def _run_context(self):
        """Held for the whole run: the numpy layers want BLAS on one thread (they split the work)."""
        return blas_single_threaded()

    def _start_engine(self) -> None:
        """Before a run's first event: the numpy engine trains ``self.network`` itself."""

    def _sync_engine(self, final: bool = False) -> None:
        """Bring ``self.network`` and ``self.optimizer`` up to date: at each epoch's end, and
        (``final``) once the run is over."""

    def _snapshot(self) -> dict:
        """The weights at an epoch's start, to restore should an update overflow them."""
        return self.network.state_dict()

    def _evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """Loss and outputs (probabilities) of one validation chunk, in inference mode."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return self.network.evaluate(x, y)

    def gradient_norms(self) -> dict[str, float]:
        """The L2 norm of each parameter's gradient in the last step, by name (for the window's
        gradient view; read between batches in the run's thread)."""
        norms = {}
        for name, g in self.network.gradients().items():
            flat = g.reshape(-1)
            norms[name] = math.sqrt(float(np.dot(flat, flat)))
        return norms

    # --- internals -----------------------------------------------------------------------------
    def _hold(self) -> float:
        """Honour the control's requests before a batch: a new rate, pause and stop; returns the
        seconds spent paused."""
        held = self.control.hold()
        lr = self.control.take_learning_rate()
        if lr is not None:
            self.set_learning_rate(lr)
        return held

    def _scheduled(self, epoch: int, batch: int, batches: int, total: int) -> None:
        """Set the rate this batch trains with from the schedule (only when there is one)."""
        self._factor = self.schedule.factor(epoch, batch, batches, total)
        if self._asked_lr is not None:
            self.base_lr, self._asked_lr = self._asked_lr / self._factor, None
        self.optimizer.lr = self.base_lr * self._factor

    def _step(self, xb, yb, epoch: int, batch: int, snapshot: dict[str, np.ndarray]) -> tuple[float, np.ndarray]:
        net = self.network
        self._net_lock.acquire()
        try:
            # Overflow is expected when training diverges; it is detected and reported below.
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                loss, outputs = net.train_step(xb, yb)
                grads = net.gradients()
                bad = not math.isfinite(loss) or not all(
                    math.isfinite(g.sum(dtype=np.float64)) for g in grads.values())
                if not bad:
                    self.optimizer.step(net.parameters(), grads)
                    return loss, outputs
            if not math.isfinite(loss):
                what = f"the loss became {'NaN' if math.isnan(loss) else 'infinite'}"
            else:
                what = "the gradients became NaN or infinite"
            kept = "the weights from before this batch are kept"
            if not all(np.isfinite(p).all() for p in net.parameters().values()):
                net.load_state_dict(snapshot)
                self.optimizer = make_optimizer_like(self.optimizer, self.settings)
                kept = f"the weights were restored from the start of epoch {epoch}"
        finally:
            self._net_lock.release()
        raise _Diverged(
            f"training diverged at epoch {epoch}, batch {batch}: {what} with learning rate "
            f"{self.optimizer.lr:g}; {kept}. Try a lower learning rate.")

    def step(self) -> None:
        """Train exactly one batch, recorded block by block, then pause (any thread): the run yields
        a ``core.step_trace.StepTrace`` right after that batch's ``BatchEnd``. Asked before a run,
        the run's first batch is the one; ``resume`` goes on training, ``step`` does one more."""
        self.control.step()

    def _traced_step(self, xb, yb, epoch: int, batch: int, bpe: int, snapshot):
        """``_step`` with every block's values recorded (a Step's batch only: nothing else pays)."""
        from netbuilder.core import step_trace

        if self.engine != "numpy":
            loss, outputs = self._step(xb, yb, epoch, batch, snapshot)
            return loss, outputs, step_trace.unavailable(epoch, batch, bpe, loss, len(yb), self.optimizer)
        with step_trace.StepRecorder(self.network, keep_arrays=self.keep_step_arrays) as recorder:
            loss, outputs = self._step(xb, yb, epoch, batch, snapshot)
        with self._net_lock.exclusive():
            recorder.take_gradients()
            trace = recorder.trace(epoch=epoch, batch=batch, batches_per_epoch=bpe, loss=loss,
                                   optimizer=self.optimizer, labels=yb, sample=self.step_sample)
        return loss, outputs, trace

    def _validate(self) -> tuple[float | None, float | None]:
        """Loss and accuracy over the validation split, in inference mode, in batches."""
        idx = self.val_idx
        if len(idx) == 0:
            return None, None
        net = self.network
        loss_sum, weight_sum, correct = 0.0, 0.0, 0
        for i in range(0, len(idx), EVAL_BATCH):
            if self.control.stopping:
                raise StopRequested
            part = idx[i:i + EVAL_BATCH]
            x, y = self.data.rows(part)
            self._net_lock.acquire()
            try:
                loss, outputs = self._evaluate(x, y)
            finally:
                self._net_lock.release()
            if self.validation_observer is not None:
                self.validation_observer(y, outputs)
            weight = net.loss.weight_of(y)  # len(part) without class weights; accuracy is never weighted
            loss_sum, weight_sum = loss_sum + loss * weight, weight_sum + weight
            correct += int(np.count_nonzero(net.classify(outputs) == y))
        return loss_sum / weight_sum, correct / len(idx)


def make_optimizer_like(old: Optimizer, settings) -> Optimizer:
    """A fresh optimiser of the project's kind that keeps ``old``'s (possibly live-changed) rate."""
    new = make_optimizer(settings)
    new.lr = old.lr
    return new
