"""One training run of a project, as the command line and the window's worker both drive it.

A ``TrainingRun`` gathers what a run is made of — the project (a copy the run may write its
input normalisation into), where its data is, the engine and device, the torch engine's speed
options, a checkpoint it continues, one process of a distributed run — with the ``RunControl``
its driver asks through. ``load`` reads the data, ``trainer`` builds the engine's trainer once,
``events`` runs it; ``describe`` says what computes it, in the words both drivers print.
Given the project file's path (``record_to``), ``events`` also records the (first) run next to
it (``core.run_history``): ``recorded`` is then its folder, or ``record_problem`` says why not.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from netbuilder.core.run_control import RunControl
from netbuilder.core.run_history import RunRecorder


class TrainingRun:
    """The pieces of one run and its trainer (see the module)."""

    def __init__(self, project, base_dir: str | Path | None = None, engine: str = "numpy",
                 device: str | None = None, checkpoint=None, options: dict | None = None,
                 control: RunControl | None = None, launch=None, dataset=None,
                 record_to: str | Path | None = None):
        self.project = project
        self.base_dir = Path(base_dir) if base_dir is not None else None
        self.engine, self.device = engine, device
        self.checkpoint = checkpoint  # a Checkpoint (or its path) the run continues, or None
        self.options = dict(options or {})  # the torch engine's speed options (amp, channels_last, compile)
        self.control = control if control is not None else RunControl()
        self.launch = launch  # one process of a torchrun job (core.torch_distributed), or None
        self.dataset = dataset  # given, or read by ``load``
        self._trainer = None
        # The settings are taken now, before the trainer writes the input normalisation into them.
        self.recorder = RunRecorder(record_to, project) if record_to is not None else None

    def load(self):
        """The project's dataset (read once; DatasetError or OSError name what is wrong)."""
        if self.dataset is None:
            from netbuilder.core.datasets import load_project_dataset

            self.dataset = load_project_dataset(self.project, base_dir=self.base_dir)
        return self.dataset

    def trainer(self):
        """The trainer of the chosen engine, built once (TrainingError, ValueError or
        TorchMissingError say why it cannot be), taking its requests from ``control``."""
        if self._trainer is None:
            dataset = self.load()
            if self.launch is not None:
                from netbuilder.core.torch_distributed import make_distributed_trainer

                trainer = make_distributed_trainer(self.project, dataset, self.device, checkpoint=self.checkpoint)
            else:
                from netbuilder.core.torch_engine import make_trainer

                trainer = make_trainer(self.project, dataset, self.engine, self.device, checkpoint=self.checkpoint,
                                       **self.options)
            trainer.control = self.control
            self._trainer = trainer
        return self._trainer

    def events(self, epochs: int | None = None, start_epoch: int | None = None) -> Iterator[Any]:
        """The trainer's events (``core.trainer``): RunStarted, BatchEnd..., EpochEnd..., RunEnded."""
        trainer = self.trainer()
        if self.recorder is None:
            return trainer.run(epochs, start_epoch)
        return self._recorded(trainer, epochs, start_epoch)

    def _recorded(self, trainer, epochs, start_epoch) -> Iterator[Any]:
        """The events, each also fed to the recorder, which writes the run before its RunEnded is passed on."""
        recorder = self.recorder
        recorder.attach(trainer, getattr(self.dataset, "class_names", None))
        for event in trainer.run(epochs, start_epoch):
            recorder.event(event)
            yield event

    @property
    def recorded(self) -> Path | None:
        """The folder the run was recorded in, once it ended (None when not recorded)."""
        return self.recorder.folder if self.recorder is not None else None

    @property
    def record_problem(self) -> str:
        """Why the run could not be recorded ("" when it was, or was not to be)."""
        return self.recorder.problem if self.recorder is not None else ""

    def describe(self) -> str:
        """What computes the run: "numpy engine on cpu", "torch engine on cuda:0 (NVIDIA H200)"."""
        return describe_engine(self.trainer())


def describe_engine(trainer) -> str:
    """What computes ``trainer``'s runs, in the words the command line and the window both use."""
    return f"{trainer.engine} engine on {getattr(trainer, 'device_description', 'cpu')}"
