"""Files written before the block registry (tests/core/data/before_registry, made by commit 51c4b5f:
a conv, pool, dropout and dense net after one epoch) still load, predict the same and resume."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from netbuilder.core.datasets.shapes import shapes_dataset
from netbuilder.core.export import export
from netbuilder.core.network import Network
from netbuilder.core.trainer import Trainer
from netbuilder.core.weights import load_into, load_weights

OLD = Path(__file__).resolve().parent / "data" / "before_registry"


def test_an_old_weights_file_loads_and_predicts_as_it_did(tmp_path):
    project, _ = load_weights(OLD / "tiny.weights.npz")
    assert "bias" not in project.blocks[0]  # written before conv had the field: it means true
    net = Network(project)
    load_into(net, OLD / "tiny.weights.npz")
    x = shapes_dataset(320, 0).x_train[:4]
    np.testing.assert_array_equal(net.predict(x), np.load(OLD / "tiny.outputs.npy"))
    report = export(net, tmp_path / "net.onnx", "onnx", samples=x)
    assert report.passed


def test_an_old_checkpoint_resumes():
    trainer = Trainer.from_checkpoint(OLD / "tiny.checkpoint.npz", shapes_dataset(320, 0))
    assert trainer.history.epochs_done == 1
    trainer.fit(epochs=1)
    assert trainer.history.epochs_done == 2 and np.isfinite(trainer.history.train_loss[-1])


def test_an_old_project_saves_as_format_2_and_trains_to_the_same_weights_as_before(tmp_path):
    import dataclasses
    import json

    from netbuilder.core.project import load_project, save_project

    project, old_state = load_weights(OLD / "tiny.weights.npz")
    format_1 = tmp_path / "old.json"
    format_1.write_text(json.dumps({**project.to_dict(), "format": 1}), encoding="utf-8")
    reopened = load_project(format_1)
    save_project(reopened, tmp_path / "saved.json")
    assert json.loads((tmp_path / "saved.json").read_text(encoding="utf-8"))["format"] == 2
    project = load_project(tmp_path / "saved.json")
    project.training = dataclasses.replace(project.training, batch_size=32)  # as the file was trained
    trainer = Trainer(project, shapes_dataset(320, 0))
    trainer.fit(epochs=1)
    new_state = trainer.network.state_dict()
    assert new_state.keys() == old_state.keys()
    assert all(np.array_equal(new_state[k], old_state[k]) for k in new_state)  # bit for bit, as before
