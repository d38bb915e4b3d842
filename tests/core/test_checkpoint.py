"""Checkpoints and resume: N epochs + checkpoint + M epochs equals an unbroken N + M run bit for bit
(every optimiser, with dropout, conv and a network built outside the trainer); the file keeps every
piece of state without pickle; bad checkpoints and mismatches are refused clearly."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from netbuilder.core.checkpoint import CheckpointError, is_checkpoint, load_checkpoint, save_checkpoint
from netbuilder.core.errors import TrainingError
from netbuilder.core.network import Network
from netbuilder.core.trainer import EpochEnd, RunStarted, Trainer
from netbuilder.core.weights import WeightsError, save_weights
from tests.core.test_trainer import blobs, conv_project, mlp_project


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def _resumed(project, data, n, m, tmp_path, **trainer_kwargs):
    first = Trainer(project, data, **trainer_kwargs)
    first.fit(epochs=n)
    save_checkpoint(tmp_path / "ck.npz", first.checkpoint())
    second = Trainer.from_checkpoint(tmp_path / "ck.npz", data)
    second.fit(epochs=m)
    return second


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "adam"])
def test_resume_equals_an_unbroken_run_bit_for_bit(optimizer, tmp_path):
    project = mlp_project(dropout=True, optimizer=optimizer, weight_decay=1e-3)
    data = blobs(n=90)
    unbroken = Trainer(project, data)
    unbroken.fit(epochs=5)
    resumed = _resumed(project, data, 2, 3, tmp_path)
    assert _same(resumed.network.state_dict(), unbroken.network.state_dict())
    assert _same(resumed.optimizer.state_dict(), unbroken.optimizer.state_dict())
    assert resumed.rng.bit_generator.state == unbroken.rng.bit_generator.state
    # the history goes on too: numbering, losses (timings aside)
    assert [e.epoch for e in resumed.history.epochs] == [1, 2, 3, 4, 5]
    assert resumed.history.train_loss == unbroken.history.train_loss
    assert resumed.history.val_accuracy == unbroken.history.val_accuracy
    assert resumed.history.batch_losses == unbroken.history.batch_losses
    assert resumed.history.epochs_done == 5


def test_conv_network_and_several_stops(tmp_path):
    project = conv_project(optimizer="nesterov", learning_rate=0.05)
    project.blocks.insert(2, {"kind": "dropout", "rate": 0.3})
    data = blobs(n=40, shape=(1, 4, 4))
    unbroken = Trainer(project, data)
    unbroken.fit(epochs=4)
    trainer = Trainer(project, data)
    for _ in range(4):  # one epoch at a time, a new trainer from the file every time
        trainer.fit(epochs=1)
        save_checkpoint(tmp_path / "ck.npz", trainer.checkpoint())
        trainer = Trainer.from_checkpoint(tmp_path / "ck.npz", data)
    assert trainer.history.epochs_done == 4
    assert _same(trainer.network.state_dict(), unbroken.network.state_dict())


def test_a_network_built_outside_the_trainer_with_its_own_dropout_generator(tmp_path):
    project = mlp_project(dropout=True, optimizer="adam")
    data = blobs()
    unbroken = Trainer(project, data, network=Network(project, rng=np.random.default_rng(7)))
    unbroken.fit(epochs=3)
    first = Trainer(project, data, network=Network(project, rng=np.random.default_rng(7)))
    first.fit(epochs=1)
    checkpoint = first.checkpoint()
    assert set(checkpoint.dropout_rng_states) == {"dropout1"}
    save_checkpoint(tmp_path / "ck.npz", checkpoint)
    second = Trainer(project, data, network=Network(project, rng=np.random.default_rng(123)))
    second.restore(load_checkpoint(tmp_path / "ck.npz"))
    second.fit(epochs=2)
    assert _same(second.network.state_dict(), unbroken.network.state_dict())


def test_events_of_a_resumed_run_continue_the_numbering(tmp_path):
    project, data = mlp_project(), blobs()
    trainer = _resumed(project, data, 2, 1, tmp_path)
    events = list(Trainer.from_checkpoint(load_checkpoint_of(trainer, tmp_path), data).run(2))
    started = events[0]
    assert isinstance(started, RunStarted) and (started.start_epoch, started.epochs) == (3, 2)
    assert [e.epoch for e in events if isinstance(e, EpochEnd)] == [4, 5]
    assert events[-1].epochs_done == 5
    # a later run of the same trainer starts afresh, as runs always did
    again = list(trainer.run(1))
    assert again[0].start_epoch == 0 and [e.epoch for e in again if isinstance(e, EpochEnd)] == [1]


def load_checkpoint_of(trainer, tmp_path):
    save_checkpoint(tmp_path / "again.npz", trainer.checkpoint())
    return load_checkpoint(tmp_path / "again.npz")


def test_the_file_holds_every_piece_without_pickle(tmp_path):
    trainer = Trainer(mlp_project(dropout=True, optimizer="adam"), blobs())
    trainer.fit(epochs=2)
    trainer.set_learning_rate(0.02)  # changed live: kept
    original = trainer.checkpoint()
    save_checkpoint(tmp_path / "ck.npz", original)
    with np.load(tmp_path / "ck.npz", allow_pickle=False) as data:
        names = set(data.files)
        meta = json.loads(data["__checkpoint__"].tobytes().decode())
    assert {"__project__", "__checkpoint__", "order", "batch_losses", "weights/dense1.weight",
            "optimizer/steps", "optimizer/exp_avg/dense1.weight", "optimizer/exp_avg_sq/dense2.bias"} <= names
    assert meta["epoch"] == 2 and meta["rng_state"]["bit_generator"] == "PCG64"
    back = load_checkpoint(tmp_path / "ck.npz")
    assert back.epoch == 2 and back.optimizer == "adam" and back.learning_rate == 0.02
    assert back.rng_state == original.rng_state
    assert _same(back.weights, original.weights) and _same(back.optimizer_state, original.optimizer_state)
    assert np.array_equal(back.order, original.order)
    assert back.history == original.history and back.batch_losses == original.batch_losses
    assert back.project.to_dict() == original.project.to_dict()
    assert Trainer.from_checkpoint(back, blobs()).learning_rate == 0.02
    assert is_checkpoint(tmp_path / "ck.npz")


def test_no_checkpoint_in_the_middle_of_an_epoch():
    trainer = Trainer(mlp_project(epochs=3), blobs())
    for event in trainer.run():
        if getattr(event, "batch", None) == 2:
            trainer.stop()
    with pytest.raises(TrainingError, match=r"in the middle of epoch 1; a checkpoint can only be taken between "
                                            r"epochs \(after epoch 0\)"):
        trainer.checkpoint()
    assert Trainer(mlp_project(), blobs()).checkpoint().epoch == 0  # before any run: fine


def test_truncated_and_foreign_files(tmp_path):
    trainer = Trainer(mlp_project(), blobs())
    save_checkpoint(tmp_path / "ck.npz", trainer.checkpoint())
    raw = (tmp_path / "ck.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match=f"^{tmp_path / 'cut.npz'}: not a valid checkpoint .*truncated"):
        load_checkpoint(tmp_path / "cut.npz")
    assert not is_checkpoint(tmp_path / "cut.npz")
    save_weights(tmp_path / "w.npz", trainer.network, trainer.project)
    with pytest.raises(CheckpointError, match="not a netbuilder checkpoint.*it is a weights file"):
        load_checkpoint(tmp_path / "w.npz")
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "nothing.npz")
    assert issubclass(CheckpointError, WeightsError)


def test_damaged_metadata_is_named(tmp_path):
    trainer = Trainer(mlp_project(), blobs())
    save_checkpoint(tmp_path / "ck.npz", trainer.checkpoint())
    with np.load(tmp_path / "ck.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["__checkpoint__"] = np.frombuffer(b'{"format": 1, "epoch": 0}', np.uint8)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(CheckpointError, match="the checkpoint is damaged: 'batches' is missing"):
        load_checkpoint(tmp_path / "bad.npz")


@pytest.mark.parametrize("change,message", [
    ({"epoch": -1}, "epoch must be a whole number >= 0, got -1"),
    ({"epoch": 1.5}, "epoch must be a whole number >= 0, got 1.5"),
    ({"epoch": True}, "epoch must be a whole number >= 0, got True"),
    ({"epoch": 3}, "batches has 1 epochs' counts but epoch is 3"),
    ({"batches": [-4]}, "each of batches must be a whole number >= 0, got -4"),
    ({"learning_rate": 0}, "learning_rate must be a positive number, got 0"),
    ({"learning_rate": "fast"}, "learning_rate must be a positive number, got 'fast'"),
    ({"rng_state": {"bit_generator": "PCG64", "state": "garbage"}}, "rng_state is not a random generator's state"),
    ({"rng_state": 7}, "rng_state is not a random generator's state"),
    ({"dropout_rng_states": []}, "dropout_rng_states must be an object, got []"),
    ({"history": "x"}, "history must be a list of per-epoch objects"),
    ({"engine": "jax"}, "engine must be 'numpy' or 'torch', got 'jax'"),
])
def test_every_metadata_field_is_checked_and_named(tmp_path, change, message):
    trainer = Trainer(mlp_project(epochs=1), blobs())
    trainer.fit()
    save_checkpoint(tmp_path / "ck.npz", trainer.checkpoint())
    with np.load(tmp_path / "ck.npz") as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(arrays["__checkpoint__"].tobytes())
    meta.update(change)
    arrays["__checkpoint__"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(tmp_path / "bad.npz")
    assert str(caught.value).startswith(f"{tmp_path / 'bad.npz'}: the checkpoint is damaged: {message}")


def test_unwritable_destination_leaves_nothing(tmp_path):
    trainer = Trainer(mlp_project(), blobs())
    with pytest.raises(CheckpointError, match="cannot write the checkpoint"):
        save_checkpoint(tmp_path / "missing" / "ck.npz", trainer.checkpoint())
    (tmp_path / "adir").mkdir()
    with pytest.raises(CheckpointError, match="cannot write the checkpoint"):
        save_checkpoint(tmp_path / "adir", trainer.checkpoint())
    assert [p.name for p in tmp_path.iterdir()] == ["adir"] and not any((tmp_path / "adir").iterdir())


def test_resuming_another_network_optimiser_or_dataset_is_refused(tmp_path):
    trainer = Trainer(mlp_project(), blobs())
    trainer.fit(epochs=1)
    checkpoint = trainer.checkpoint()
    wider = mlp_project()
    wider.blocks[1]["units"] = 8
    with pytest.raises(TrainingError, match=r"cannot resume from this checkpoint: .*dense1.weight: the file has "
                                            r"16 x 16, the network needs 8 x 16"):
        Trainer.from_checkpoint(checkpoint, blobs(), project=wider)
    with pytest.raises(TrainingError, match="trained with the momentum optimiser, the project uses adam"):
        Trainer.from_checkpoint(checkpoint, blobs(), project=mlp_project(optimizer="adam"))
    with pytest.raises(TrainingError, match="made with other training data"):
        Trainer.from_checkpoint(checkpoint, blobs(n=90))
    fresh = Trainer(mlp_project(), blobs())
    before = fresh.network.state_dict()
    with pytest.raises(TrainingError):
        fresh.restore(load_checkpoint_of(Trainer(wider, blobs()), tmp_path))
    assert _same(fresh.network.state_dict(), before)  # unchanged on error


def test_npz_layout_is_a_plain_zip(tmp_path):
    save_checkpoint(tmp_path / "ck.npz", Trainer(mlp_project(), blobs()).checkpoint())
    with zipfile.ZipFile(tmp_path / "ck.npz") as z:
        assert "__checkpoint__.npy" in z.namelist() and "weights/dense1.weight.npy" in z.namelist()


def test_resume_keeps_the_normalisation_the_weights_were_trained_with(tmp_path):
    data = blobs(n=90)
    unbroken = Trainer(mlp_project(), data)
    unbroken.fit(epochs=3)
    first = Trainer(mlp_project(), data)
    first.fit(epochs=1)
    stats = first.project.dataset["normalization"]  # computed from the training split
    save_checkpoint(tmp_path / "ck.npz", first.checkpoint())
    project = mlp_project()
    project.dataset["normalization"] = {"mean": [0.0], "std": [1.0]}
    second = Trainer.from_checkpoint(tmp_path / "ck.npz", data, project=project)
    assert project.dataset["normalization"] == stats
    second.fit(epochs=2)
    assert _same(second.network.state_dict(), unbroken.network.state_dict())


def test_a_checkpoint_names_its_engine_and_the_other_engine_says_it_continues_it(tmp_path):
    from netbuilder.core.torch_engine import TorchTrainer

    data = blobs(n=60)
    first = Trainer(mlp_project(epochs=1), data)
    first.fit()
    save_checkpoint(tmp_path / "ck.npz", first.checkpoint())
    checkpoint = load_checkpoint(tmp_path / "ck.npz")
    assert checkpoint.engine == "numpy"
    assert Trainer.from_checkpoint(checkpoint, data).notes == []  # the same engine: nothing to say
    torch_run = TorchTrainer.from_checkpoint(checkpoint, data, device="cpu")
    assert any("trained by the numpy engine; the torch engine continues it" in n for n in torch_run.notes)
    torch_run.fit(epochs=1)
    assert torch_run.checkpoint().engine == "torch"


def test_a_checkpoint_from_before_engines_is_the_numpy_engine(tmp_path):
    trainer = Trainer(mlp_project(epochs=1), blobs())
    trainer.fit()
    save_checkpoint(tmp_path / "ck.npz", trainer.checkpoint())
    with np.load(tmp_path / "ck.npz") as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(arrays["__checkpoint__"].tobytes())
    del meta["engine"]
    arrays["__checkpoint__"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(tmp_path / "old.npz", **arrays)
    assert load_checkpoint(tmp_path / "old.npz").engine == "numpy"
