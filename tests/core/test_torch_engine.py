"""The torch engine (core/torch_engine.py) against the numpy engine, on the CPU: the same losses
batch by batch and the same final weights, control from another thread, checkpoints that move
between the engines, the ``--engine torch`` command line, and what happens without torch.

Tolerance. Both engines compute the same float32 formulas from the same initial weights on the
same batches in the same order, but they sum in different orders (im2col and BLAS against
oneDNN's convolutions, other reduction trees for BatchNorm's statistics and the softmax), so
each step's results differ by a few float32 units in the last place (relative 1e-7). Training
feeds that back: every later gradient is taken at slightly different weights, so the gap grows
with the steps, fastest with BatchNorm and momentum (a rounding-level change of a batch statistic
moves every activation after it; a ReLU whose input is rounding-close to zero may flip). Over
the 20 steps here the largest gaps measured (SGD, momentum and Nesterov with and without
BatchNorm, Adam without it) are a relative 3e-7 in a batch loss and 1.2e-6 absolute in a weight
(weights of size 0.01 to 1); the tests allow forty times that or more: losses rtol 5e-5, weights
and buffers rtol 1e-4 with atol 5e-5. Adam through BatchNorm drifts faster (see ADAM_BN), and
any longer run or higher learning rate further, without either engine being wrong: the gap is
float32 rounding amplified by the training dynamics, not a difference in the arithmetic (the
first step's gradients agree to 1e-6 relative, tests/core/test_torch_parity.py).

The parity tests train the torch engine on the CPU, or on ``NETBUILDER_TEST_DEVICE`` when set
(``NETBUILDER_TEST_DEVICE=cuda``: bench/gpu_check.sh; the control and CLI tests stay on the CPU).
"""
from __future__ import annotations

import dataclasses
import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from netbuilder.core import cli  # noqa: E402
from netbuilder.core.datasets.shapes import shapes_dataset  # noqa: E402
from netbuilder.core.errors import TrainingError  # noqa: E402
from netbuilder.core.project import Project, TrainingSettings, load_project  # noqa: E402
from netbuilder.core.resources import resource_path  # noqa: E402
from netbuilder.core.torch_devices import INSTALL_HINT, resolve_device  # noqa: E402
from netbuilder.core.torch_engine import TorchTrainer, make_trainer  # noqa: E402
from netbuilder.core.trainer import BatchEnd, EpochEnd, RunEnded, Trainer  # noqa: E402
from tests.core.test_trainer import next_of, run_in_thread  # noqa: E402

# One intra-op thread: the sums are then the same on any machine, and on a small CI machine
# (2 vCPUs) OpenMP's spinning threads make torch 40 times slower than one thread.
torch.set_num_threads(1)

EXAMPLES = resource_path("examples")
DEVICE = os.environ.get("NETBUILDER_TEST_DEVICE", "cpu")  # where the parity tests train the torch engine
LOSS_RTOL = 5e-5
WEIGHT_TOL = dict(rtol=1e-4, atol=5e-5)
# Adam through BatchNorm: Adam's step is lr * m / sqrt(v), about lr whatever the gradient's size,
# so where a gradient is small a rounding-level difference in it is a visible difference in the
# step, and BatchNorm spreads it over the channel and the layers after it. Measured after 20
# steps at lr 1e-3: losses 1.4e-5 apart, weights 2.4e-4 (VGG) and 6e-5 (ResNet). Allowed: losses
# rtol 2e-4, and no weight more than one Adam step (lr = 1e-3) from the other engine's.
ADAM_BN = (2e-4, dict(rtol=1e-3, atol=1e-3))
LOOSE = {"resnet-adam": ADAM_BN, "vgg_bn-adam": ADAM_BN}


def shapes(n=400):
    """400 images: 320 to train (20 batches of 16), 80 to validate."""
    return shapes_dataset(train_size=n, test_size=0, seed=5)


def example(name, **training):
    project = load_project(EXAMPLES / f"{name}.json")
    settings = dict(batch_size=16, validation_fraction=0.2)
    settings.update(training)
    project.training = dataclasses.replace(project.training, **settings)
    return project


def small_resnet(**training):
    """resnet_small trimmed: a stem with BatchNorm, an identity residual group, a projected one."""
    project = example("resnet_small", **training)
    project.blocks = project.blocks[:4] + project.blocks[-2:]
    return project


def mlp(loss, last, **training):
    settings = dict(loss=loss, optimizer="momentum", learning_rate=0.05, weight_decay=1e-3, batch_size=16,
                    validation_fraction=0.2, seed=1)
    settings.update(training)
    return Project(name="mlp", input_shape=(1, 28, 28), num_classes=10,
                   blocks=[{"kind": "flatten"}, {"kind": "dense", "units": 32, "activation": "tanh"},
                           {"kind": "dense", "units": 10, "activation": last}],
                   training=TrainingSettings(**settings))


CASES = {
    "lenet5-sgd": lambda: example("lenet5", optimizer="sgd", learning_rate=0.01, weight_decay=0.0),
    "lenet5-momentum": lambda: example("lenet5", optimizer="momentum", learning_rate=0.01, weight_decay=1e-3),
    "lenet5-nesterov": lambda: example("lenet5", optimizer="nesterov", learning_rate=0.01, momentum=0.8,
                                       weight_decay=1e-3),
    "lenet5-adam": lambda: example("lenet5", optimizer="adam", learning_rate=1e-3, weight_decay=1e-3),
    "vgg_bn-momentum": lambda: example("vgg_bn", optimizer="momentum", learning_rate=0.01, weight_decay=1e-4),
    "resnet-momentum": lambda: small_resnet(optimizer="momentum", learning_rate=0.003, weight_decay=1e-4),
    "resnet-adam": lambda: small_resnet(optimizer="adam", learning_rate=1e-3, weight_decay=1e-3),
    "vgg_bn-adam": lambda: example("vgg_bn", optimizer="adam", learning_rate=1e-3, weight_decay=0.0),
    "mlp-squared_error": lambda: mlp("squared_error", "sigmoid"),
    "mlp-binary_cross_entropy": lambda: mlp("binary_cross_entropy", "sigmoid", optimizer="adam",
                                            learning_rate=1e-3),
}


def assert_same_weights(a: dict, b: dict, tol=None) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        np.testing.assert_allclose(a[name], b[name], err_msg=name, **(tol or WEIGHT_TOL))


def both(make_project, data, epochs=1, callback=None):
    """(numpy trainer, torch trainer) after the same run; ``callback(trainer, event)`` sees every event."""
    trainers = Trainer(make_project(), data), TorchTrainer(make_project(), data, device=DEVICE)
    for trainer in trainers:
        trainer.fit((lambda e, t=trainer: callback(t, e)) if callback else None, epochs=epochs)
        assert trainer.history.status == "finished", trainer.history.message
    return trainers


@pytest.mark.parametrize("case", list(CASES))
def test_the_torch_engine_trains_as_the_numpy_engine(case):
    data = shapes()
    numpy_run, torch_run = both(CASES[case], data)
    loss_rtol, weight_tol = LOOSE.get(case, (LOSS_RTOL, WEIGHT_TOL))
    # the same initial weights: built from the same seed, copied into the torch model
    a, b = numpy_run.history, torch_run.history
    assert len(a.batch_losses[0]) == len(b.batch_losses[0]) == 20
    np.testing.assert_allclose(b.batch_losses[0], a.batch_losses[0], rtol=loss_rtol)
    assert b.epochs[0].train_accuracy == pytest.approx(a.epochs[0].train_accuracy, abs=1 / 320)
    assert b.val_loss[0] == pytest.approx(a.val_loss[0], rel=loss_rtol)
    # the trained weights came home: the numpy network holds them, under the same names
    assert_same_weights(numpy_run.weights(), torch_run.network.state_dict(), weight_tol)
    assert_same_weights(torch_run.weights(), torch_run.network.state_dict())


@pytest.mark.parametrize("case", [case for case in CASES if not case.startswith("vgg")])  # VGG: 3-4 s each
def test_in_float64_the_engines_agree_to_rounding_over_two_runs_in_a_row(case):
    """The same arithmetic, not just similar: in float64 the last-bit differences have 29 more bits
    of room, and after 40 steps (two runs, the second continuing the first's weights and optimiser
    state) the engines are 1e-14 apart (measured), Adam through BatchNorm included. So the float32
    gaps above are rounding amplified by training, and nothing that either engine computes otherwise."""
    data = shapes()
    a = Trainer(CASES[case](), data, dtype=np.float64)
    b = TorchTrainer(CASES[case](), data, dtype=np.float64, device=DEVICE)
    for trainer in (a, b):
        trainer.fit(epochs=1)
        trainer.fit(epochs=1)
    np.testing.assert_allclose(b.history.batch_losses[0], a.history.batch_losses[0], rtol=1e-11)
    assert b.optimizer.steps == a.optimizer.steps == 40
    wa, wb = a.weights(), b.weights()
    assert wa.keys() == wb.keys()
    for name in wa:
        assert wb[name].dtype == wa[name].dtype
        np.testing.assert_allclose(wb[name], wa[name], rtol=1e-10, atol=1e-11, err_msg=name)


def test_a_batch_of_one_sample_through_batchnorm_after_a_dense_block():
    """320 training images in batches of 29: the last batch is one sample, which has no variance per
    channel after a dense block; both engines normalise it with the running statistics, unmoved."""
    def project():
        return Project(name="bn", input_shape=(1, 28, 28), num_classes=10,
                       blocks=[{"kind": "flatten"}, {"kind": "dense", "units": 16, "activation": "identity"},
                               {"kind": "batchnorm", "momentum": 0.1, "eps": 1e-5, "activation": "relu"},
                               {"kind": "dense", "units": 10, "activation": "softmax"}],
                       training=TrainingSettings(loss="cross_entropy", optimizer="momentum", learning_rate=0.01,
                                                 batch_size=29, validation_fraction=0.2, seed=2))

    numpy_run, torch_run = both(project, shapes())
    assert len(torch_run.history.batch_losses[0]) == 12
    np.testing.assert_allclose(torch_run.history.batch_losses[0], numpy_run.history.batch_losses[0], rtol=LOSS_RTOL)
    assert torch_run.weights()["batchnorm1.num_batches_tracked"] == 11
    assert_same_weights(numpy_run.weights(), torch_run.weights())


def test_the_first_step_starts_from_the_same_weights():
    data = shapes()
    a, b = Trainer(example("lenet5"), data), TorchTrainer(example("lenet5"), data, device=DEVICE)
    first = [next(e.loss for e in t.run(1) if isinstance(e, BatchEnd)) for t in (a, b)]
    assert first[1] == pytest.approx(first[0], rel=1e-6)


def test_a_learning_rate_changed_during_the_run_is_used_from_the_next_step():
    def slow_down(trainer, event):
        if isinstance(event, BatchEnd) and event.batch == 5:
            trainer.set_learning_rate(1e-4)

    numpy_run, torch_run = both(CASES["lenet5-momentum"], shapes(), callback=slow_down)
    assert torch_run.learning_rate == 1e-4
    np.testing.assert_allclose(torch_run.history.batch_losses[0], numpy_run.history.batch_losses[0], rtol=LOSS_RTOL)
    assert_same_weights(numpy_run.weights(), torch_run.weights())


def test_pause_resume_and_stop_from_another_thread():
    trainer = TorchTrainer(CASES["lenet5-adam"](), shapes(), device="cpu")
    initial = trainer.weights()
    trainer.pause()
    thread, events = run_in_thread(trainer, epochs=3)
    assert trainer.wait_until_paused(20)
    assert events.empty() or not any(isinstance(e, BatchEnd) for e in list(events.queue))
    trainer.resume()
    next_of(events, BatchEnd)
    during = trainer.weights()  # taken between batches, from the torch model
    assert any(not np.array_equal(during[k], initial[k]) for k in initial)
    trainer.stop()
    ended = next_of(events, RunEnded)
    thread.join(20)
    assert ended.status == "stopped" and ended.epochs_done == 0
    # the weights of the last batch done are in the numpy network, for weights files and exports
    assert_same_weights(trainer.weights(), trainer.network.state_dict())
    assert trainer.history.batch_losses[0]


def test_probes_see_the_weights_of_the_batch_just_done():
    data = shapes()
    trainer = TorchTrainer(CASES["lenet5-sgd"](), data, device="cpu")
    for event in trainer.run(1):
        if isinstance(event, BatchEnd) and event.batch == 3:
            out = trainer.probe(data.x_train[0])[-1][2]
            model = trainer._model.eval()
            with torch.no_grad():
                expected = torch.softmax(model(torch.from_numpy(np.array(data.x_train[:1]))), dim=1)[0].numpy()
            np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("first,second", [("numpy", "torch"), ("torch", "numpy")])
def test_a_checkpoint_of_one_engine_resumes_on_the_other(first, second, tmp_path):
    from netbuilder.core.checkpoint import load_checkpoint, save_checkpoint

    data = shapes()
    project = CASES["lenet5-adam"]
    unbroken = Trainer(project(), data)
    unbroken.fit(epochs=2)
    one = make_trainer(project(), data, engine=first, device=DEVICE if first == "torch" else None)
    one.fit(epochs=1)
    save_checkpoint(tmp_path / "ck.npz", one.checkpoint())  # Adam's moments and step count included
    two = make_trainer(project(), data, engine=second, device=DEVICE if second == "torch" else None,
                       checkpoint=load_checkpoint(tmp_path / "ck.npz"))
    events = list(two.run(1))
    assert isinstance(events[-1], RunEnded) and events[-1].status == "finished"
    assert [e.epoch for e in events if isinstance(e, EpochEnd)] == [2]
    assert two.optimizer.steps == unbroken.optimizer.steps == 40
    np.testing.assert_allclose(two.history.batch_losses[1], unbroken.history.batch_losses[1], rtol=LOSS_RTOL)
    assert_same_weights(unbroken.weights(), two.weights())
    for key, buf in unbroken.optimizer.state_dict().items():
        np.testing.assert_allclose(two.optimizer.state_dict()[key], buf, err_msg=key, rtol=1e-3, atol=1e-6)


def test_a_diverging_run_stops_with_the_numpy_engines_message():
    data = shapes()
    project = lambda: mlp("squared_error", "identity", optimizer="sgd", learning_rate=1e6)  # noqa: E731
    a, b = Trainer(project(), data), TorchTrainer(project(), data, device="cpu")
    for trainer in (a, b):
        trainer.fit(epochs=1)
    assert b.history.status == a.history.status == "diverged"
    assert b.history.message.split(":")[0] == a.history.message.split(":")[0]
    assert all(np.isfinite(p).all() for p in b.network.parameters().values())


def test_devices():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in ("cpu", "mps") or resolve_device("auto").startswith("cuda:")
    with pytest.raises(TrainingError, match="unknown device 'tpu'; choose cpu, cuda, cuda:N, mps or auto"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(TrainingError, match="device cuda:1 is not available: torch .* sees no CUDA GPU"):
            resolve_device("cuda:1")
    with pytest.raises(TrainingError, match="the numpy engine runs on the CPU only"):
        make_trainer(example("lenet5"), shapes(), engine="numpy", device="cuda")


# --- the command line -----------------------------------------------------------------------------
def write_lenet(folder, train_size=300, test_size=60):
    import json

    doc = json.loads((EXAMPLES / "lenet5.json").read_text())
    doc["dataset"] = {"kind": "shapes", "train_size": train_size, "test_size": test_size}
    path = folder / "lenet.json"
    path.write_text(json.dumps(doc))
    return path


def test_cli_trains_with_torch_and_the_weights_export_verified(tmp_path, capsys):
    path, weights = write_lenet(tmp_path), tmp_path / "W.npz"
    assert cli.main(["train", str(path), "--engine", "torch", "--device", "cpu", "--epochs", "1",
                     "--out", str(weights), "--quiet"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0] == "training 'LeNet-5' on 270 images, 30 for validation: 1 epoch of 5 batches, torch engine on cpu"
    assert lines[1].startswith("epoch 1/1  loss ")
    assert lines[2] == f"finished 1 epoch; weights saved to {weights}"
    assert "Traceback" not in err
    pytest.importorskip("onnxruntime")
    assert cli.main(["export", str(path), str(weights), "--format", "onnx", "-o", str(tmp_path / "net.onnx")]) == 0
    out = capsys.readouterr()[0]
    assert out.startswith("ONNX export verified with onnxruntime") and "same predicted class for 30/30" in out


def test_without_torch_the_cli_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    path = write_lenet(tmp_path, train_size=100, test_size=0)
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    weights = tmp_path / "W.npz"
    assert cli.main(["train", str(path), "--engine", "torch", "--out", str(weights)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err == f"netbuilder: {INSTALL_HINT}\n"
    assert INSTALL_HINT == "the torch engine needs PyTorch: pip install 'netbuilder[torch]'"
    assert not weights.exists()
    # the numpy engine does not need torch
    assert cli.main(["train", str(path), "--epochs", "1", "--out", str(weights), "--quiet"]) == 0
    assert weights.exists()


def test_cli_device_problems_are_one_line(tmp_path, capsys):
    path = write_lenet(tmp_path, train_size=100, test_size=0)
    assert cli.main(["train", str(path), "--engine", "torch", "--device", "tpu"]) == 1
    assert capsys.readouterr()[1] == "netbuilder: unknown device 'tpu'; choose cpu, cuda, cuda:N, mps or auto\n"
    assert cli.main(["train", str(path), "--device", "cuda"]) == 1
    assert capsys.readouterr()[1] == ("netbuilder: the numpy engine runs on the CPU only; add --engine torch to "
                                      "train on cuda\n")
