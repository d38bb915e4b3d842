"""TrainingRun: the one run object the command line and the window's worker both drive."""
import pytest

from netbuilder.core.datasets.shapes import shapes_dataset
from netbuilder.core.project import load_project
from netbuilder.core.resources import example_path
from netbuilder.core.trainer import RunEnded
from netbuilder.core.training_run import TrainingRun, describe_engine


def lenet():
    project = load_project(example_path("lenet5"))
    project.dataset = {"kind": "shapes", "train_size": 80, "test_size": 0}
    project.training.batch_size = 16
    return project


def test_it_loads_the_project_data_once_and_builds_one_trainer_on_its_control():
    run = TrainingRun(lenet())
    data = run.load()
    assert len(data.x_train) == 80 and run.load() is data
    trainer = run.trainer()
    assert run.trainer() is trainer and trainer.control is run.control
    assert run.describe() == describe_engine(trainer) == "numpy engine on cpu"


def test_a_stop_asked_before_the_trainer_exists_ends_its_run_at_once():
    run = TrainingRun(lenet(), dataset=shapes_dataset(80, 0))
    run.control.stop()
    events = list(run.events(epochs=1))
    assert isinstance(events[-1], RunEnded) and events[-1].status == "stopped"


def test_the_torch_engine_and_a_checkpoint_of_the_numpy_engine():
    pytest.importorskip("torch")
    first = TrainingRun(lenet(), dataset=shapes_dataset(80, 0))
    list(first.events(epochs=1))
    second = TrainingRun(lenet(), engine="torch", device="cpu", checkpoint=first.trainer().checkpoint(),
                         dataset=first.dataset)
    assert second.describe() == "torch engine on cpu"
    assert second.trainer().history.epochs_done == 1
    assert any("numpy engine" in note for note in second.trainer().notes)
