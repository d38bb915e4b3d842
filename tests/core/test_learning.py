"""Learning on the built-in data, end to end through the example projects and the real trainer:
LeNet-5 reaches 95% validation accuracy within three epochs, and an MLP of the same epochs does
worse (the set needs convolutions), with a fixed seed."""
import dataclasses

import pytest

from netbuilder.core.datasets import load_project_dataset
from netbuilder.core.project import load_project
from netbuilder.core.resources import resource_path
from netbuilder.core.trainer import Trainer

EXAMPLES_DIR = resource_path("examples")

EPOCHS = 3


def _train(stem: str):
    project = load_project(EXAMPLES_DIR / f"{stem}.json")
    project.training = dataclasses.replace(project.training, epochs=EPOCHS)
    return Trainer(project, load_project_dataset(project, EXAMPLES_DIR)).fit()


@pytest.fixture(scope="module")
def lenet():
    return _train("lenet5")


def test_lenet5_reaches_95_percent_on_the_builtin_set_within_three_epochs(lenet):
    assert lenet.status == "finished"
    assert lenet.val_accuracy[-1] >= 0.95, lenet.val_accuracy
    assert lenet.val_loss[-1] < lenet.val_loss[0]


def test_an_mlp_does_worse_than_lenet5_in_as_many_epochs(lenet):
    mlp = _train("mlp")
    assert mlp.status == "finished"
    assert mlp.val_accuracy[-1] < lenet.val_accuracy[-1] - 0.03, (mlp.val_accuracy, lenet.val_accuracy)
