"""Early stopping: the run ends once the validation figure stops improving, the best epoch's weights
come back exactly, and a checkpoint carries the state so a resumed run stops where an unbroken one does."""
import numpy as np
import pytest

from netbuilder.core.checkpoint import load_checkpoint, save_checkpoint
from netbuilder.core.early_stopping import EarlyStopping
from netbuilder.core.inference import infer
from netbuilder.core.trainer import EpochEnd, Trainer
from tests.core.test_trainer import blobs, conv_project

# The blobs are easy: the validation loss soon improves by less than min_delta an epoch.
SETTINGS = dict(optimizer="sgd", learning_rate=0.5, early_stopping={"patience": 1, "min_delta": 0.01})


def run(epochs=30, data=None, **training):
    trainer = Trainer(conv_project(**{**SETTINGS, **training}), data or blobs(n=80))
    weights_at = {}
    for event in trainer.run(epochs):
        if isinstance(event, EpochEnd):
            weights_at[event.epoch] = trainer.network.state_dict()
    return trainer, weights_at


def test_the_run_stops_after_patience_epochs_and_the_best_weights_come_back():
    trainer, weights_at = run()
    history = trainer.history
    losses = [e.val_loss for e in history.epochs]
    best, best_epoch = None, 0
    for epoch, loss in enumerate(losses, start=1):  # the rule, by hand
        if best is None or loss < best - 0.01:
            best, best_epoch = loss, epoch
    best = best_epoch
    assert history.status == "finished" and history.message.startswith("stopped early after epoch")
    assert len(losses) == best + 2 < 30  # patience 1: the second epoch without improvement stops it
    assert f"the weights of epoch {best}, the best, are restored" in history.message
    for name, value in weights_at[best].items():
        np.testing.assert_array_equal(trainer.network.state_dict()[name], value)


def test_monitoring_accuracy_and_keeping_the_last_weights():
    trainer, weights_at = run(early_stopping={"monitor": "val_accuracy", "patience": 0, "restore_best": False,
                                              "min_delta": 0.01})
    last = trainer.history.epochs_done
    assert trainer.history.message.startswith("stopped early") and "restored" not in trainer.history.message
    for name, value in weights_at[last].items():
        np.testing.assert_array_equal(trainer.network.state_dict()[name], value)


def test_a_resumed_run_stops_and_restores_as_the_unbroken_one(tmp_path):
    data = blobs(n=80)
    unbroken, _ = run(data=data)
    first = Trainer(conv_project(**SETTINGS), data)
    first.fit(epochs=2)
    save_checkpoint(tmp_path / "ck.npz", first.checkpoint())
    resumed = Trainer.from_checkpoint(load_checkpoint(tmp_path / "ck.npz"), data)
    resumed.fit(epochs=28)
    assert resumed.history.epochs_done == unbroken.history.epochs_done
    assert resumed.history.message == unbroken.history.message
    for name, value in unbroken.network.state_dict().items():
        np.testing.assert_array_equal(resumed.network.state_dict()[name], value)


@pytest.mark.parametrize("spec,words", [
    ({"monitor": "loss"}, "early_stopping.monitor must be one of val_loss, val_accuracy"),
    ({"patience": -1}, "early_stopping.patience must be a whole number"),
    ({"min_delta": "x"}, "early_stopping.min_delta must be a number"),
    ({"wait": 3}, 'early_stopping: unknown setting "wait"'),
])
def test_bad_settings_are_one_line(spec, words):
    project = conv_project()
    project.training.early_stopping = spec
    messages = [p.message for p in infer(project).errors if p.field == "training.early_stopping"]
    assert len(messages) == 1 and words in messages[0]
    with pytest.raises(ValueError, match=words.split(" ", 1)[0]):
        EarlyStopping.from_spec(spec)


def test_keep_best_ends_with_the_best_epochs_weights_without_stopping_early():
    trainer = Trainer(conv_project(optimizer="sgd", learning_rate=0.5), blobs(n=80))
    trainer.keep_best()
    weights_at = {}
    for event in trainer.run(6):
        if isinstance(event, EpochEnd):
            weights_at[event.epoch] = trainer.network.state_dict()
    losses = [e.val_loss for e in trainer.history.epochs]
    best = int(np.argmin(losses)) + 1
    assert trainer.history.epochs_done == 6  # it watches, it does not stop
    assert trainer.history.message.endswith(f"the weights of epoch {best}, the best, are kept")
    for name, value in weights_at[best].items():
        np.testing.assert_array_equal(trainer.network.state_dict()[name], value)


def test_the_command_line_keeps_the_best_epoch_on_request(tmp_path, capsys):
    import json

    from netbuilder.core import cli
    from netbuilder.core.weights import load_weights

    project = conv_project(optimizer="sgd", learning_rate=0.5, epochs=4)
    project.dataset = {"kind": "shapes", "train_size": 120, "test_size": 0}
    project.input_shape = (1, 28, 28)
    project.blocks[-1]["units"] = 10
    project.num_classes = 10
    path = tmp_path / "p.json"
    path.write_text(json.dumps(project.to_dict()))
    assert cli.main(["train", str(path), "--keep", "best", "--out", str(tmp_path / "w.npz"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "the best, are kept; weights saved to" in out
    from netbuilder.core.datasets import load_project_dataset

    same = Trainer(project, load_project_dataset(project, base_dir=tmp_path))
    same.keep_best()
    same.fit()
    _, saved = load_weights(tmp_path / "w.npz")
    for name, value in same.network.state_dict().items():
        np.testing.assert_array_equal(saved[name], value)
