"""The example projects shipped in resources/examples: valid, canonical, and what they claim to be."""
from __future__ import annotations

import pytest

from netbuilder.core.inference import validate
from netbuilder.core.project import load_project
from netbuilder.core.resources import resource_path

EXAMPLES = resource_path("examples")
NAMES = ["lenet5", "mlp", "small_vgg", "xor", "vgg_bn", "resnet_small", "inception_mini"]


def test_the_examples_exist():
    assert set(NAMES) <= {p.stem for p in EXAMPLES.glob("*.json")}


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.stem)
def test_every_example_is_valid(path):
    assert validate(load_project(path)).problems == ()


@pytest.mark.parametrize("name", NAMES)
def test_example_is_canonical(name):
    path = EXAMPLES / f"{name}.json"
    assert load_project(path).to_json() == path.read_text(encoding="utf-8")  # saving it again changes nothing


def kinds(project):
    return [(b["kind"], b.get("filters") or b.get("units") or b.get("rate")) for b in project.blocks]


def test_lenet5():
    project = load_project(EXAMPLES / "lenet5.json")
    result = validate(project)
    assert result.total_params == 61_706
    assert [b.params for b in result.blocks] == [156, 0, 2416, 0, 0, 48120, 10164, 850]
    assert [b.output_shape for b in result.blocks] == [
        (6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 5, 5), (400,), (120,), (84,), (10,)]
    assert project.input_shape == (1, 28, 28) and project.num_classes == 10
    assert project.dataset == {"kind": "shapes"}
    t = project.training
    assert (t.loss, t.optimizer, t.learning_rate, t.batch_size, t.epochs) == ("cross_entropy", "adam", 0.001, 64, 5)
    assert project.blocks[0]["padding"] == "same" and project.blocks[2]["padding"] == "valid"
    assert project.blocks[1]["mode"] == "max" and project.blocks[-1]["activation"] == "softmax"


def test_mlp():
    project = load_project(EXAMPLES / "mlp.json")
    assert kinds(project) == [("flatten", None), ("dense", 128), ("dense", 64), ("dense", 10)]
    assert validate(project).total_params == 784 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10


def test_small_vgg():
    project = load_project(EXAMPLES / "small_vgg.json")
    assert kinds(project) == [("conv", 16), ("conv", 16), ("pool", None), ("conv", 32), ("conv", 32), ("pool", None),
                              ("flatten", None), ("dense", 64), ("dropout", 0.3), ("dense", 10)]
    result = validate(project)
    assert result.blocks[6].output_shape == (32 * 7 * 7,)
    assert all(b["kernel_size"] == 3 and b["padding"] == "same" for b in project.blocks if b["kind"] == "conv")


def test_xor():
    project = load_project(EXAMPLES / "xor.json")
    assert project.input_shape == (2, 1, 1) and project.num_classes == 1
    assert kinds(project) == [("flatten", None), ("dense", 4), ("dense", 1)]
    assert [b["activation"] for b in project.blocks[1:]] == ["sigmoid", "sigmoid"]
    assert (project.training.loss, project.training.optimizer) == ("squared_error", "sgd")
    assert validate(project).output_shape == (1,)


def test_vgg_bn_normalises_every_convolution_and_learns():
    import dataclasses

    from netbuilder.core.datasets.shapes import shapes_dataset
    from netbuilder.core.trainer import Trainer

    project = load_project(EXAMPLES / "vgg_bn.json")
    result = validate(project)
    assert [k for k, _ in kinds(project)] == ["conv", "batchnorm"] * 2 + ["pool"] + ["conv", "batchnorm"] * 2 + [
        "pool", "global_pool", "dense"]
    assert all(b["bias"] is False for b in project.blocks if b["kind"] == "conv")  # batchnorm shifts instead
    assert not result.warnings and result.total_params == 16_794 and result.total_buffers == 192
    # 1,200 images and two short epochs already leave chance (10%) far behind
    project.training = dataclasses.replace(project.training, epochs=2, batch_size=32)
    trainer = Trainer(project, shapes_dataset(1200, 0))
    trainer.fit(epochs=2)
    assert trainer.history.val_accuracy[-1] > 0.3


def test_resnet_small_has_three_residual_stages_and_learns():
    import dataclasses

    from netbuilder.core.datasets.shapes import shapes_dataset
    from netbuilder.core.trainer import Trainer

    project = load_project(EXAMPLES / "resnet_small.json")
    result = validate(project)
    stages = [b for b in result.blocks if b.kind == "residual"]
    assert len(stages) == 3 and [s.output_shape for s in stages] == [(8, 28, 28), (16, 14, 14), (32, 7, 7)]
    assert [b.kind for b in result.blocks[-2:]] == ["global_pool", "dense"]
    # the two stages that halve the size and double the channels take a 1x1 stride-2 convolution on the skip
    assert [s.geometry.stride for s in stages] == [None, (2, 2), (2, 2)] and not result.problems
    project.training = dataclasses.replace(project.training, epochs=3, batch_size=16)
    trainer = Trainer(project, shapes_dataset(1200, 0))
    trainer.fit(epochs=3)
    assert trainer.history.val_accuracy[-1] > 0.5  # chance is 10%


def test_inception_mini_merges_three_paths_twice_and_learns():
    import dataclasses

    from netbuilder.core.datasets.shapes import shapes_dataset
    from netbuilder.core.trainer import Trainer

    project = load_project(EXAMPLES / "inception_mini.json")
    result = validate(project)
    groups = [b for b in result.blocks if b.kind == "branches"]
    assert len(groups) == 2 and all(len(g.children) == 3 for g in groups)
    assert [g.output_shape for g in groups] == [(32, 14, 14), (64, 7, 7)]
    project.training = dataclasses.replace(project.training, epochs=3, batch_size=32)
    trainer = Trainer(project, shapes_dataset(1200, 0))
    trainer.fit(epochs=3)
    assert trainer.history.val_accuracy[-1] > 0.3
