"""Residual and branches groups in a network: shapes and counts, path-named messages, names by path,
gradients through the whole network (float64, central differences), exact resume and every export."""
from __future__ import annotations

import numpy as np
import pytest

from netbuilder.core.blocks import default_block
from netbuilder.core.export import export
from netbuilder.core.inference import infer
from netbuilder.core.network import Network
from netbuilder.core.project import Project, TrainingSettings
from netbuilder.core.summary import format_summary
from netbuilder.core.trainer import Trainer
from tests.core.gradcheck import numeric_grad, rel_error
from tests.core.test_checkpoint import _resumed
from tests.core.test_trainer import blobs

CONV = {"kind": "conv", "filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"}


def nested_project(dropout=False) -> Project:
    inner = [dict(CONV), {"kind": "batchnorm", "activation": "relu"}] + (
        [{"kind": "dropout", "rate": 0.3}] if dropout else [])
    blocks = [
        dict(CONV, name="stem"),
        {"kind": "residual", "name": "res1", "blocks": inner},
        {"kind": "residual", "name": "down", "blocks": [dict(CONV, filters=6, stride=2)]},
        {"kind": "branches", "name": "inc1", "merge": "concat", "paths": [
            [dict(CONV, kernel_size=1)],
            [{"kind": "residual", "blocks": [dict(CONV, filters=6, activation="identity")], "activation": "tanh"}],
            []]},
        {"kind": "global_pool"},
        {"kind": "dense", "units": 3, "activation": "softmax"}]
    return Project(name="nested", input_shape=(2, 6, 6), num_classes=3, blocks=blocks,
                   training=TrainingSettings(optimizer="adam", learning_rate=0.01, batch_size=8, seed=2))


def test_shapes_counts_and_the_automatic_projection():
    result = infer(nested_project())
    assert result.ok, result.problems
    res1, down, inc1 = result.blocks[1], result.blocks[2], result.blocks[3]
    assert res1.output_shape == (4, 6, 6) and down.output_shape == (6, 3, 3)
    assert inc1.output_shape == (4 + 6 + 6, 3, 3)  # concat of the three paths' channels
    assert down.params == (6 * 4 * 9 + 6) + (4 * 6 + 6)  # the conv, and the 1x1 stride-2 projection
    assert res1.params == sum(i.params for i in res1.children) and res1.buffers == 8
    [note] = result.notes
    assert note.block == 2 and "a 1x1 convolution with stride 2 on the skip path" in note.message
    text = format_summary(nested_project(), result)
    assert "   2.1    conv1" in text and "4.p2.1    residual1" in text


def test_messages_name_the_path_to_the_block():
    project = nested_project()
    inner = project.blocks[3]["paths"][1][0]["blocks"][0]
    inner.update(kernel_size=9, padding="valid")  # a kernel larger than the 3x3 maps it gets
    errors = infer(project).errors
    assert [e.block for e in errors] == [3]  # the group's card shows it
    assert errors[0].message.startswith("block 4 › path 2 › block 1 › block 1 (conv): kernel 9x9 is larger")
    project = nested_project()
    project.blocks[2]["projection"] = "none"
    [error] = infer(project).errors
    assert error.message.startswith("block 3 (residual): its inner blocks change the shape from 4 x 6 x 6 to "
                                    "6 x 3 x 3")
    project = nested_project()
    project.blocks[3]["paths"][0] = [dict(CONV, stride=2)]
    [error] = infer(project).errors
    assert "'concat' joins channels, so the paths' heights and widths must agree, but path 1 gives 4 x 2 x 2 " \
           "and path 2 6 x 3 x 3" in error.message
    project.blocks[3]["merge"] = "add"
    [error] = infer(project).errors
    assert "'add' needs paths of one shape" in error.message


def test_parameters_are_named_by_their_path():
    names = set(Network(nested_project()).parameters())
    assert {"res1.conv1.weight", "res1.batchnorm1.weight", "down.conv1.weight", "down.projection.weight",
            "inc1.path1.conv1.weight", "inc1.path2.residual1.conv1.weight"} <= names
    assert "inc1.path2.residual1.projection.weight" not in names  # its shape is kept: an identity skip
    assert "res1.batchnorm1.running_mean" in Network(nested_project()).buffers()


def test_the_gradient_of_the_loss_through_every_group_matches_central_differences():
    project = nested_project()
    net = Network(project, np.random.default_rng(0), dtype=np.float64)
    x = np.random.default_rng(1).random((4, 2, 6, 6))
    y = np.array([0, 1, 2, 1])
    net.train_step(x, y, input_grad=True)
    grads = {k: v.copy() for k, v in net.gradients().items()}
    input_grad = net.input_grad.copy()

    def loss() -> float:
        return net.train_step(x, y)[0]  # batch statistics, as the step whose gradients are checked

    params = net.parameters()
    for name in ("res1.conv1.weight", "down.projection.weight", "inc1.path2.residual1.conv1.bias", "stem.weight"):
        assert rel_error(grads[name], numeric_grad(loss, params[name])) < 1e-5, name
    assert rel_error(input_grad, numeric_grad(loss, x)) < 1e-5


def test_resume_is_exact_with_groups_holding_batchnorm_and_dropout(tmp_path):
    project, data = nested_project(dropout=True), blobs(n=32, shape=(2, 6, 6))
    unbroken = Trainer(project, data)
    unbroken.fit(epochs=3)
    a, b = _resumed(project, data, 1, 2, tmp_path).network.state_dict(), unbroken.network.state_dict()
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("fmt", ["numpy", "onnx", "torch"])
def test_every_export_of_a_nested_net_is_verified(tmp_path, fmt):
    trainer = Trainer(nested_project(), blobs(n=32, shape=(2, 6, 6)))
    trainer.fit(epochs=1)
    samples = np.random.default_rng(3).random((8, 2, 6, 6), dtype=np.float32)
    report = export(trainer.network, tmp_path / ("net.onnx" if fmt == "onnx" else "net"), fmt, samples=samples)
    assert report.passed and report.max_abs_diff < 1e-5


def test_the_default_groups_from_the_palette_are_valid_where_they_are_dropped():
    for kind in ("residual", "branches"):
        project = Project(name=kind, input_shape=(3, 16, 16), num_classes=3, blocks=[
            default_block(kind), {"kind": "global_pool"}, {"kind": "dense", "units": 3, "activation": "softmax"}])
        assert infer(project).ok, infer(project).problems


def test_the_inspector_formula_of_a_group_shows_how_its_inner_blocks_make_its_output():
    from netbuilder.core.formula import output_size_formula

    result = infer(nested_project())
    down, inc1 = result.blocks[2], result.blocks[3]
    assert output_size_formula(down) == ["inner: conv1 6 x 3 x 3",
                                         "out = relu(inner + 1x1 convolution, stride 2, of the input) = 6 x 3 x 3"]
    lines = output_size_formula(inc1)
    assert lines[0] == "path 1: conv1 4 x 3 x 3" and lines[2] == "path 3: the input itself"
    assert lines[-1] == "out = the paths' outputs channels stacked = 16 x 3 x 3"
