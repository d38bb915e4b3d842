"""Checkpoints of a trainer's state between epochs, and putting one back so a run continues exactly.

``take_checkpoint`` and ``restore_checkpoint`` are ``Trainer.checkpoint`` and ``Trainer.restore``
(core/trainer.py delegates here): everything a run's next batch depends on — weights, optimiser
state, every random generator, the data order, the schedule's and early stopping's progress,
the history — goes into a ``core.checkpoint.Checkpoint`` and comes back from one. ``self`` is
the trainer.
"""
from __future__ import annotations

import copy
from dataclasses import asdict

import numpy as np

from netbuilder.core.early_stopping import EarlyStopping
from netbuilder.core.errors import TrainingError
from netbuilder.core.optimizers import Optimizer, make_optimizer
from netbuilder.core.trainer_events import EpochEnd, History
from netbuilder.core.training_data import dims


def take_checkpoint(self):
    """A ``netbuilder.core.checkpoint.Checkpoint`` of the run's state now, which must be between epochs.

    Take it from the ``EpochEnd`` event's handler (the run waits there) or when no run is
    active; raises TrainingError in the middle of an epoch (e.g. after a stop).
    """
    from netbuilder.core.checkpoint import Checkpoint

    with self._net_lock.exclusive():
        if self._mid_epoch:
            done = self.history.epochs_done
            raise TrainingError(
                f"the run is in the middle of epoch {done + 1}; a checkpoint can only be taken between "
                f"epochs (after epoch {done})")
        return Checkpoint(
            project=self.project.copy(),
            epoch=self.history.epochs_done,
            weights=self.network.state_dict(),
            optimizer=self.settings.optimizer,
            optimizer_state=self.optimizer.state_dict(),
            learning_rate=self.optimizer.lr,
            rng_state=self.rng.bit_generator.state,
            augment_rng_state=self.augment_rng.bit_generator.state,
            schedule_state={"base_lr": self.base_lr, "factor": self._factor, **self.schedule.state()},
            early_stopping_state=self.early_stopping.state() if self.early_stopping else None,
            best_weights=dict(self.early_stopping.best_weights) if self.early_stopping else {},
            order=self._order.copy(),
            dropout_rng_states={name: rng.bit_generator.state for name, rng in self._dropout_rngs().items()},
            history=[asdict(e) for e in self.history.epochs],
            batch_losses=[list(b) for b in self.history.batch_losses[:len(self.history.epochs)]],
            engine=self.engine,
        )


def restore_checkpoint(self, checkpoint) -> None:
    """Put the state of ``checkpoint`` back: the next ``run`` continues it exactly.

    Raises TrainingError (the trainer unchanged) if it belongs to another network, optimiser
    kind or training set. A learning rate changed during the checkpointed run is kept,
    unless the project now sets another one; the checkpoint's input normalisation is kept
    (the weights were trained with it) and written into the project.
    """
    own = self._dropout_rngs()
    if checkpoint.optimizer != self.settings.optimizer:
        raise TrainingError(f"the checkpoint was trained with the {checkpoint.optimizer} optimiser, the project "
                            f"uses {self.settings.optimizer}; set the project's optimizer back to resume")
    order = np.asarray(checkpoint.order)
    if order.shape != self._order.shape or not np.array_equal(np.sort(order), np.sort(self.train_idx)):
        raise TrainingError(
            f"the checkpoint was made with other training data ({len(order)} training samples in its order, "
            f"{len(self.train_idx)} here, or a different split): use the same dataset, validation "
            "fraction and seed to resume")
    missing = sorted(set(checkpoint.dropout_rng_states) - set(own))
    if missing:
        raise TrainingError(f"the checkpoint has random generator states for dropout blocks "
                            f"{', '.join(missing)} that this network does not draw from separately")
    try:
        epochs = [EpochEnd(**e) for e in checkpoint.history]
    except TypeError as exc:
        raise TrainingError(f"cannot resume from this checkpoint: its history is damaged ({exc})") from None
    # The weights were trained on inputs normalised with the checkpoint's statistics: keep using them.
    theirs = checkpoint.project.dataset if isinstance(checkpoint.project.dataset, dict) else {}
    mine = self.project.dataset if isinstance(self.project.dataset, dict) else None
    stats = theirs.get("normalization") if "normalization" in theirs else (mine or {}).get("normalization")
    with self._net_lock.exclusive():
        backup = self.network.state_dict()
        try:
            self.network.load_state_dict(checkpoint.weights)  # names every mismatch, changes nothing then
            optimizer = _optimizer_for(self, checkpoint)
            self.network.set_normalization(stats)
            generators = [(self.rng, checkpoint.rng_state)] + (
                [(self.augment_rng, checkpoint.augment_rng_state)] if checkpoint.augment_rng_state else []) + [
                (own[name], state) for name, state in checkpoint.dropout_rng_states.items()]
            for rng, state in generators:  # try each state on a scratch generator before the real ones
                type(rng.bit_generator)().state = state
        except (ValueError, TypeError, KeyError) as exc:
            self.network.load_state_dict(backup)
            self.network.set_normalization((mine or {}).get("normalization"))
            raise TrainingError(f"cannot resume from this checkpoint: {exc}") from None
        for rng, state in generators:
            rng.bit_generator.state = state
        if mine is not None and "normalization" in theirs:
            mine["normalization"] = copy.deepcopy(stats)
    self.optimizer = optimizer
    self._order[...] = order
    if self.early_stopping is None and checkpoint.early_stopping_state:  # a --keep best run's tracker
        self.early_stopping = EarlyStopping(patience=10**9)
    if self.early_stopping is not None:  # the best so far, and its weights, go on too
        self.early_stopping.restore(checkpoint.early_stopping_state, checkpoint.best_weights)
    state = checkpoint.schedule_state
    if state:  # the schedule goes on where it was: its base rate and plateau's progress
        self.schedule.restore(state)
        self.base_lr, self._factor = float(state["base_lr"]), float(state["factor"])
    if checkpoint.engine != self.engine:
        self.notes.append(f"the checkpoint was trained by the {checkpoint.engine} engine; the {self.engine} "
                          "engine continues it (weights, optimiser state and data order carry over)")
    self.history = History(epochs, [list(b) for b in checkpoint.batch_losses], epochs_done=checkpoint.epoch)
    self._resume_epoch = checkpoint.epoch
    self._mid_epoch = False


def _optimizer_for(self, checkpoint) -> Optimizer:
    """The project's optimiser holding the checkpoint's state; ValueError if it does not fit."""
    params = self.network.parameters()
    for key, buf in checkpoint.optimizer_state.items():
        name = key.partition("/")[2]
        if key != "steps" and (name not in params or np.shape(buf) != params[name].shape):
            raise ValueError(f"the optimiser state {key} {dims(np.shape(buf))} does not fit the network's "
                             "parameters")
    optimizer = make_optimizer(self.settings)
    optimizer.load_state_dict(checkpoint.optimizer_state)
    trained_with = checkpoint.project.training.learning_rate
    optimizer.lr = checkpoint.learning_rate if self.settings.learning_rate == trained_with \
        else self.settings.learning_rate
    return optimizer

