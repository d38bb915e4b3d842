"""The global_pool block: each map to one value, a dense block after it without flatten or its note,
an image input required; the lowerings are checked with every kind in test_block_registry."""
from __future__ import annotations

import numpy as np

from netbuilder.core.formula import output_size_formula
from netbuilder.core.inference import infer
from netbuilder.core.network import Network
from netbuilder.core.project import Project


def project(mode="average", blocks=None) -> Project:
    blocks = blocks or [{"kind": "conv", "filters": 4, "kernel_size": 3, "padding": "same"},
                        {"kind": "global_pool", "mode": mode},
                        {"kind": "dense", "units": 3, "activation": "softmax"}]
    return Project(name="gap", input_shape=(2, 5, 6), num_classes=3, blocks=blocks)


def test_each_map_becomes_one_value_and_dense_follows_without_a_note():
    result = infer(project())
    assert result.ok, result.problems
    gap, dense = result.blocks[1], result.blocks[2]
    assert gap.output_shape == (4, 1, 1) and gap.params == 0 and gap.macs == 0
    assert dense.params == 4 * 3 + 3  # four values in, not 4 x 5 x 6
    assert not result.notes  # C x 1 x 1 is a vector already: no "flattened first" note
    assert output_size_formula(gap) == ["out = 4·1·1: each 5x6 map becomes its mean"]


def test_the_engine_takes_the_mean_or_the_largest_of_each_map():
    x = np.random.default_rng(0).random((3, 2, 5, 6), dtype=np.float32)
    for mode, reduce in (("average", np.mean), ("max", np.max)):
        net = Network(project(mode, [{"kind": "global_pool", "mode": mode}, {"kind": "flatten"},
                                     {"kind": "dense", "units": 3, "activation": "softmax"}]))
        pooled = net.forward_blocks(x)[0][1]
        np.testing.assert_allclose(pooled[:, :, 0, 0], reduce(x, axis=(2, 3)), rtol=1e-6)


def test_a_flat_input_is_refused_naming_the_block():
    result = infer(project(blocks=[{"kind": "flatten"}, {"kind": "global_pool"},
                                   {"kind": "dense", "units": 3, "activation": "softmax"}]))
    [error] = result.errors
    assert error.message.startswith("block 2 (global_pool): needs a (channels, height, width) input")
