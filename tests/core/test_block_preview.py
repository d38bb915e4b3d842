"""The Build view's preview: one block's output for one sample, before the network is finished."""
import numpy as np
import pytest

from netbuilder.core.block_preview import PreviewError, block_output
from netbuilder.core.network import Network
from netbuilder.core.project import load_project
from netbuilder.core.resources import example_path

X = np.random.default_rng(0).random((1, 28, 28), dtype=np.float32)


@pytest.mark.parametrize("example,address,path", [
    ("lenet5", (2,), "conv2"), ("resnet_small", (3, 0, 0), "residual2.conv1"),
    ("inception_mini", (2, 1, 1), "branches1.path2.conv2"), ("inception_mini", (4,), "branches2"),
])
def test_the_output_is_the_networks_own_at_the_seeds_weights(example, address, path):
    project = load_project(example_path(example))
    outputs = {stage.path: out[0] for stage, out in Network(project).forward_stages(X[None])}
    found = block_output(project, X, address)
    np.testing.assert_allclose(found.output, outputs[path], rtol=1e-6, atol=1e-6)
    assert found.trained == 0 and found.fresh > 0


def test_an_unfinished_network_previews_its_blocks_and_a_broken_block_says_why():
    project = load_project(example_path("lenet5"))
    project.blocks = project.blocks[:3]  # conv, pool, conv: no classifier yet
    assert block_output(project, X, (2,)).output.shape == (16, 10, 10)
    project.blocks[1]["size"] = 99
    with pytest.raises(PreviewError, match=r"fix this first: block 2 \(pool\): window 99x99"):
        block_output(project, X, (2,))


def test_trained_weights_are_used_where_their_names_and_shapes_still_fit():
    project = load_project(example_path("lenet5"))
    net = Network(project, rng=np.random.default_rng(7))  # "trained": other weights than the seed's
    weights = net.state_dict()
    outputs = {stage.path: out[0] for stage, out in net.forward_stages(X[None])}
    found = block_output(project, X, (2,), weights)
    np.testing.assert_allclose(found.output, outputs["conv2"], rtol=1e-6, atol=1e-6)
    assert (found.trained, found.fresh) == (4, 0)
    project.blocks[2]["filters"] = 8  # edited since: conv2's weights no longer fit
    changed = block_output(project, X, (2,), weights)
    assert changed.output.shape == (8, 10, 10) and (changed.trained, changed.fresh) == (2, 2)
