"""The batchnorm block: shapes and counts, its lints, train and eval modes in the network, its running
statistics in weights files, checkpoints (exact resume) and every export, verified by each runtime."""
from __future__ import annotations

import numpy as np
import pytest

from netbuilder.core.export import export, import_weights
from netbuilder.core.inference import infer
from netbuilder.core.network import Network
from netbuilder.core.project import Project, TrainingSettings
from netbuilder.core.summary import format_summary
from netbuilder.core.trainer import Trainer
from netbuilder.core.weights import load_weights, save_weights
from tests.core.test_checkpoint import _resumed
from tests.core.test_trainer import blobs


def bn_project(bias=False, batch_size=8, dense_bn=True) -> Project:
    blocks = [{"kind": "conv", "filters": 3, "kernel_size": 3, "padding": "same", "activation": "identity",
               "bias": bias},
              {"kind": "batchnorm", "activation": "relu", "momentum": 0.3},
              {"kind": "pool", "mode": "max", "size": 2},
              {"kind": "flatten"},
              {"kind": "dense", "units": 6, "activation": "identity"}]
    if dense_bn:
        blocks.append({"kind": "batchnorm", "activation": "tanh"})
    blocks.append({"kind": "dense", "units": 3, "activation": "softmax"})
    return Project(name="bn", input_shape=(1, 4, 4), num_classes=3, blocks=blocks,
                   training=TrainingSettings(optimizer="momentum", learning_rate=0.05, batch_size=batch_size, seed=3))


def test_it_keeps_the_shape_and_counts_parameters_and_buffers_apart():
    result = infer(bn_project())
    assert result.ok, result.problems
    bn2d, bn1d = result.blocks[1], result.blocks[5]
    assert bn2d.output_shape == (3, 4, 4) and bn2d.params == 6 and bn2d.buffers == 6
    assert bn1d.output_shape == (6,) and bn1d.params == 12 and bn1d.buffers == 12
    assert result.total_buffers == 18
    text = format_summary(bn_project(), result)
    assert "Total buffers: 18 (saved with the weights, not trained)" in text
    assert "batchnorm · momentum 0.3 · eps 1e-05 · relu" in text


def test_a_conv_bias_before_it_is_pointed_out_on_the_conv():
    [warning] = [p for p in infer(bn_project(bias=True)).warnings if "redundant" in p.message]
    assert warning.block == 0 and warning.field == "bias" and warning.message.startswith("block 1 (conv): its bias")
    assert not [p for p in infer(bn_project(bias=False)).warnings if "redundant" in p.message]


def test_batch_size_one_is_a_warning_that_says_what_happens():
    messages = [p.message for p in infer(bn_project(batch_size=1)).warnings]
    assert any("block 2 (batchnorm): with batch size 1" in m and "larger batch" in m for m in messages)
    assert any("block 6 (batchnorm): with batch size 1" in m and "running statistics only" in m for m in messages)


def test_training_uses_the_batch_and_moves_the_running_statistics_evaluation_does_not():
    net = Network(bn_project())
    x = np.random.default_rng(0).random((8, 1, 4, 4), dtype=np.float32) * 3 + 1
    before = {k: v.copy() for k, v in net.buffers().items()}
    eval_out = net.forward(x)
    assert all(np.array_equal(before[k], v) for k, v in net.buffers().items())  # eval changes nothing
    train_out = net.forward(x, training=True)
    assert not np.allclose(train_out, eval_out)  # batch statistics are not the running ones
    moved = net.buffers()
    assert not np.allclose(moved["batchnorm1.running_mean"], before["batchnorm1.running_mean"])
    assert int(moved["batchnorm1.num_batches_tracked"]) == 1


def test_weights_files_carry_the_running_statistics(tmp_path):
    project = bn_project()
    trainer = Trainer(project, blobs(n=48, shape=(1, 4, 4)))
    trainer.fit(epochs=2)
    save_weights(tmp_path / "w.npz", trainer.network, project)
    _, state = load_weights(tmp_path / "w.npz")
    assert {"batchnorm1.running_mean", "batchnorm1.running_var", "batchnorm2.running_var"} <= set(state)
    other = Network(project)
    import_weights(other, tmp_path / "w.npz")
    for name, buf in trainer.network.buffers().items():
        np.testing.assert_array_equal(other.buffers()[name], buf)
    x = np.random.default_rng(1).random((5, 1, 4, 4), dtype=np.float32)
    np.testing.assert_array_equal(other.forward(x), trainer.network.forward(x))


def test_resume_is_exact_with_batchnorm(tmp_path):
    project, data = bn_project(), blobs(n=40, shape=(1, 4, 4))
    unbroken = Trainer(project, data)
    unbroken.fit(epochs=3)
    a, b = _resumed(project, data, 1, 2, tmp_path).network.state_dict(), unbroken.network.state_dict()
    assert a.keys() == b.keys() and "batchnorm2.running_mean" in a
    assert all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("fmt", ["numpy", "onnx", "torch"])
def test_every_export_runs_it_with_the_running_statistics_and_agrees(tmp_path, fmt):
    project = bn_project()
    trainer = Trainer(project, blobs(n=48, shape=(1, 4, 4)))
    trainer.fit(epochs=2)  # running statistics far from 0 and 1
    assert not np.allclose(trainer.network.buffers()["batchnorm2.running_var"], 1)
    samples = np.random.default_rng(2).random((16, 1, 4, 4), dtype=np.float32)
    report = export(trainer.network, tmp_path / ("net.onnx" if fmt == "onnx" else "net"), fmt, samples=samples)
    assert report.checked and report.passed and report.max_abs_diff < 1e-5


def test_the_pytorch_state_dict_is_pytorchs_own():
    import torch

    from netbuilder.core.export.torch_export import state_dict

    net = Network(bn_project())
    net.forward(np.ones((4, 1, 4, 4), np.float32), training=True)
    state = state_dict(net)
    reference = torch.nn.BatchNorm2d(3).state_dict()
    ours = {k.split(".", 1)[1]: v for k, v in state.items() if k.startswith("batchnorm1.")}
    assert set(ours) == set(reference)  # weight, bias, running_mean, running_var, num_batches_tracked
    assert ours["num_batches_tracked"].dtype == torch.int64 and int(ours["num_batches_tracked"]) == 1
