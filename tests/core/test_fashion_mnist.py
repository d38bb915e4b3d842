"""Fashion-MNIST from Debian's dataset-fashion-mnist package: loading, preview, statistics, LeNet-5 training.

CI installs the package (apt-get install dataset-fashion-mnist); without it these tests fail
with the install command rather than skip.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from netbuilder.core.datasets import download, load_dataset
from netbuilder.core.datasets.idx import FASHION_MNIST_CLASSES
from netbuilder.core.datasets.normalize import compute_normalization
from netbuilder.core.datasets.preview import first_per_class, preview_dataset
from netbuilder.core.datasets.registry import load_project_dataset
from netbuilder.core.project import load_project
from netbuilder.core.resources import resource_path
from netbuilder.core.trainer import Trainer

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
EXAMPLE = resource_path("examples") / "lenet5_fashion.json"


@pytest.fixture(scope="module")
def fashion():
    assert download.locate("fashion-mnist") == DEBIAN_DIR, (
        "Fashion-MNIST is missing: apt-get install -y dataset-fashion-mnist")
    return load_dataset({"kind": "fashion-mnist"})


def test_the_debian_files_load_with_the_built_in_class_names(fashion):
    assert fashion.name == "Fashion-MNIST"
    assert fashion.class_names == list(FASHION_MNIST_CLASSES)
    assert fashion.x_train.shape == (60000, 1, 28, 28) and fashion.x_test.shape == (10000, 1, 28, 28)
    assert fashion.x_train.dtype == np.float32 and fashion.x_train.max() == 1.0
    assert np.bincount(fashion.y_train).tolist() == [6000] * 10
    assert np.bincount(fashion.y_test).tolist() == [1000] * 10
    assert fashion.y_train[:5].tolist() == [9, 0, 0, 3, 0]  # the published order: ankle boot, T-shirts, a dress


def test_training_statistics_are_the_published_ones(fashion):
    stats = compute_normalization(fashion.x_train)
    assert stats["mean"] == [pytest.approx(0.2860, abs=5e-5)]
    assert stats["std"] == [pytest.approx(0.3530, abs=5e-5)]


def test_the_preview_shows_the_same_images_as_a_full_load(fashion):
    p = preview_dataset({"kind": "fashion-mnist"}, per_class=5)
    assert p.counts == [6000] * 10 and p.test_counts == [1000] * 10 and p.notes == []
    for k, idx in enumerate(first_per_class(fashion.y_train, 10, 5)):
        np.testing.assert_array_equal(p.samples[k], fashion.x_train[idx])


def test_lenet5_reaches_85_percent_on_the_test_split_in_3_epochs():
    project = load_project(EXAMPLE)
    assert project.training.epochs == 3 and project.dataset == {"kind": "fashion-mnist"}
    dataset = load_project_dataset(project, base_dir=EXAMPLE.parent)
    trainer = Trainer(project, dataset)
    history = trainer.fit()
    assert history.status == "finished", history.message
    predicted = trainer.network.classify(trainer.network.predict(dataset.x_test))
    accuracy = float(np.mean(predicted == dataset.y_test))
    assert accuracy >= 0.85, f"test accuracy {accuracy:.4f} after 3 epochs"
