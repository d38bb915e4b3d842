"""Saliency maps from the engine's backward pass: the input gradient equals central differences
of the class's logit (float64), Grad-CAM has the input's size and range, and neither changes the
network (weights, BatchNorm running statistics, gradients) or depends on dropout's randomness."""
from __future__ import annotations

import numpy as np
import pytest

from netbuilder.core import saliency
from netbuilder.core.layers import Dropout
from netbuilder.core.network import Network
from netbuilder.core.project import load_project
from netbuilder.core.resources import example_path
from netbuilder.core.trainer import Trainer
from tests.core.test_groups import nested_project
from tests.core.test_trainer import blobs


def trained_nested(dtype=np.float64) -> tuple[Network, np.ndarray]:
    """Residual and branches groups, BatchNorm (running statistics moved by training) and dropout;
    two input channels."""
    data = blobs(24, shape=(2, 6, 6))
    trainer = Trainer(nested_project(dropout=True), data, dtype=dtype)
    trainer.fit(epochs=1)
    return trainer.network, data.x_train[4].astype(dtype)


def central_difference(network, x, k, c, i, j, eps=1e-6) -> float:
    e = np.zeros_like(x)
    e[c, i, j] = eps
    return (saliency.class_score(network, x + e, k) - saliency.class_score(network, x - e, k)) / (2 * eps)


def test_the_input_gradient_equals_central_differences_of_the_logit_max_over_channels():
    network, x = trained_nested()
    k = int(network.classify(network.forward(x[None]))[0])
    raw = saliency.input_gradient(network, x, k, raw=True)
    assert raw.shape == x.shape[1:]
    for i, j in ((0, 0), (2, 3), (5, 1), (4, 4)):
        numeric = max(abs(central_difference(network, x, k, c, i, j)) for c in range(x.shape[0]))
        assert raw[i, j] == pytest.approx(numeric, rel=1e-6, abs=1e-9)
        if numeric > 1e-6:  # a pixel whose change moves the score is lit
            assert raw[i, j] > 0
    scaled = saliency.input_gradient(network, x, k)
    assert scaled.dtype == np.float32 and scaled.shape == x.shape[1:]
    assert scaled.min() >= 0 and scaled.max() == pytest.approx(1.0)
    np.testing.assert_allclose(scaled, raw / raw.max(), rtol=1e-6, atol=1e-7)


def test_the_score_is_the_logit_and_every_class_has_its_own_gradient():
    network, x = trained_nested()
    probs = network.forward(x[None])[0]
    scores = np.array([saliency.class_score(network, x, k) for k in range(3)])
    softmax = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
    np.testing.assert_allclose(softmax, probs, rtol=1e-9)
    maps = [saliency.input_gradient(network, x, k, raw=True) for k in range(3)]
    assert not np.allclose(maps[0], maps[1])


def test_lenet5_input_gradient_by_finite_differences_and_grad_cam_on_conv2():
    network = Network(load_project(example_path("lenet5")), dtype=np.float64)
    x = np.random.default_rng(0).random((1, 28, 28))
    result = saliency.explain(network, x)
    assert result.class_index == int(network.predict(x[None]).argmax())
    assert result.cam_block == "conv2"
    raw = saliency.input_gradient(network, x, result.class_index, raw=True)
    for i, j in ((3, 4), (14, 14), (20, 7)):
        numeric = abs(central_difference(network, x, result.class_index, 0, i, j))
        assert raw[i, j] == pytest.approx(numeric, rel=1e-6)
    for m in (result.input_gradient, result.grad_cam):
        assert m.shape == (28, 28) and m.dtype == np.float32
        assert m.min() >= 0 and m.max() <= 1
    assert result.grad_cam.max() == pytest.approx(1.0) or result.grad_cam.max() == 0


def test_grad_cam_uses_the_last_convolution_inside_groups_and_has_the_input_size():
    network, x = trained_nested(np.float32)
    assert saliency.last_convolution(network).path == "inc1.path2.residual1.conv1"
    cam = saliency.grad_cam(network, x, 1)
    assert cam.shape == (6, 6) and cam.dtype == np.float32
    assert 0 <= cam.min() and cam.max() <= 1


def test_nothing_in_the_network_changes_and_dropout_does_not_draw():
    network, x = trained_nested()
    state = network.state_dict()
    grads = {k: v.copy() for k, v in network.gradients().items()}
    dropouts = [layer for layer in saliency._all_layers(network) if isinstance(layer, Dropout)]
    draws = [layer.rng.bit_generator.state for layer in dropouts]
    first = saliency.explain(network, x, 0)
    second = saliency.explain(network, x, 0)  # dropout passes everything: the same maps again
    np.testing.assert_array_equal(first.input_gradient, second.input_gradient)
    np.testing.assert_array_equal(first.grad_cam, second.grad_cam)
    after = network.state_dict()
    assert state.keys() == after.keys() and all(np.array_equal(state[k], after[k]) for k in state)
    assert all(np.array_equal(grads[k], v) for k, v in network.gradients().items())
    assert dropouts and [layer.rng.bit_generator.state for layer in dropouts] == draws


def test_normalisation_is_differentiated_through():
    network = Network(load_project(example_path("lenet5")), dtype=np.float64)
    x = np.random.default_rng(1).random((1, 28, 28))
    plain = saliency.input_gradient(network, x, 3, raw=True)
    network.set_normalization({"mean": [0.5], "std": [0.25]})
    shifted = saliency.input_gradient(network, x, 3, raw=True)
    numeric = abs(central_difference(network, x, 3, 0, 10, 12))
    assert shifted[10, 12] == pytest.approx(numeric, rel=1e-6)
    assert not np.allclose(plain, shifted)


def test_bad_inputs_are_refused_in_words():
    network = Network(load_project(example_path("lenet5")))
    with pytest.raises(ValueError, match="one image of shape"):
        saliency.input_gradient(network, np.zeros((3, 28, 28)), 0)
    with pytest.raises(ValueError, match="not one of the network's 10 outputs"):
        saliency.input_gradient(network, np.zeros((1, 28, 28)), 10)
    mlp = Network(load_project(example_path("mlp")))
    with pytest.raises(ValueError, match="convolution"):
        saliency.grad_cam(mlp, np.zeros(tuple(mlp.inference.input_shape)), 0)
