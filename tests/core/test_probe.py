"""Probing a network with groups: every block's output, those inside groups too, named by path and
in the order the data goes through them, equal to running the inner blocks' layers by hand."""
from __future__ import annotations

import numpy as np

from netbuilder.core.trainer import Trainer
from tests.core.test_groups import nested_project
from tests.core.test_trainer import blobs

# nested_project: stem, res1 [conv1, batchnorm1], down [conv1] (+ projection),
# inc1 [path1: conv1 | path2: residual1 [conv1] (tanh) | path3: identity], global_pool1, dense1
EXPECTED = [
    ("stem", "conv", (4, 6, 6)),
    ("res1.conv1", "conv", (4, 6, 6)),
    ("res1.batchnorm1", "batchnorm", (4, 6, 6)),
    ("res1", "residual", (4, 6, 6)),
    ("down.conv1", "conv", (6, 3, 3)),
    ("down", "residual", (6, 3, 3)),
    ("inc1.path1.conv1", "conv", (4, 3, 3)),
    ("inc1.path2.residual1.conv1", "conv", (6, 3, 3)),
    ("inc1.path2.residual1", "residual", (6, 3, 3)),
    ("inc1", "branches", (16, 3, 3)),
    ("global_pool1", "global_pool", (16, 1, 1)),
    ("dense1", "dense", (3,)),
]


def trained_trainer() -> tuple[Trainer, np.ndarray]:
    data = blobs(24, shape=(2, 6, 6))
    trainer = Trainer(nested_project(), data)
    trainer.fit(epochs=1)  # batchnorm's running statistics are no longer the identity
    return trainer, data.x_train[5]


def run(layers, x):
    for layer in layers:
        x = layer.forward(x, False)
    return x


def test_the_probe_lists_the_blocks_inside_groups_by_path_before_their_group():
    trainer, x = trained_trainer()
    before = trainer.network.state_dict()
    probe = trainer.probe(x)
    assert [(name, kind, a.shape) for name, kind, a in probe] == EXPECTED
    after = trainer.network.state_dict()  # inference mode: batchnorm's running statistics untouched
    assert before.keys() == after.keys() and all(np.array_equal(before[k], after[k]) for k in before)
    # the top-level entries are still what forward_blocks gives, and the last is the network's output
    top = {info.name: out[0] for info, out in trainer.network.forward_blocks(x[None])}
    for name, _, a in probe:
        if name in top:
            np.testing.assert_array_equal(a, top[name])
    np.testing.assert_array_equal(probe[-1][2], trainer.network.forward(x[None])[0])


def test_the_inner_outputs_equal_a_forward_of_the_inner_layers_by_hand():
    trainer, x = trained_trainer()
    got = {name: a for name, _, a in trainer.probe(x)}
    stages = {s.path: s for s in trainer.network.walk_stages()}
    stats = trainer.network.normalization  # the trainer measured it on the training data
    mean, std = (np.asarray(stats[k], np.float32).reshape(-1, 1, 1) for k in ("mean", "std"))
    want = {}
    want["stem"] = stem = run(stages["stem"].layers, ((x - mean) / std)[None])
    want["res1.conv1"] = h = run(stages["res1.conv1"].layers, stem)
    want["res1.batchnorm1"] = h = run(stages["res1.batchnorm1"].layers, h)
    want["res1"] = res1 = np.maximum(h + stem, 0)  # relu(inner + identity skip)
    want["down.conv1"] = h = run(stages["down.conv1"].layers, res1)
    projection = stages["down"].layers[0].projection_layer
    want["down"] = down = np.maximum(h + projection.forward(res1, False), 0)  # the 1x1 stride-2 skip
    want["inc1.path1.conv1"] = p1 = run(stages["inc1.path1.conv1"].layers, down)
    want["inc1.path2.residual1.conv1"] = h = run(stages["inc1.path2.residual1.conv1"].layers, down)
    want["inc1.path2.residual1"] = p2 = np.tanh(h + down)
    want["inc1"] = np.concatenate([p1, p2, down], axis=1)  # path3 is the identity
    assert set(want) < set(got)
    for name, value in want.items():
        np.testing.assert_allclose(got[name], value[0], rtol=1e-5, atol=1e-6, err_msg=name)


def test_forward_stages_can_hand_over_each_output_without_keeping_them():
    trainer, _ = trained_trainer()
    net = trainer.network
    x = blobs(8, shape=(2, 6, 6), seed=4).x_train
    seen = []
    assert net.forward_stages(x, visit=lambda stage, y: seen.append((stage.path, y.shape))) == []
    assert seen == [(name, (8, *shape)) for name, _, shape in EXPECTED]
    kept = net.forward_stages(x)
    assert [(s.path, y.shape) for s, y in kept] == seen

