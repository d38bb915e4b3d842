"""Layers against loop references, central differences and PyTorch."""
from __future__ import annotations

import os

import numpy as np
import pytest

from netbuilder.core.blocks import LEAKY_RELU_SLOPE
from netbuilder.core.layers import Activation, Conv2D, Dense, Dropout, Flatten, Layer, Pool2D
from tests.core import naive
from tests.core.gradcheck import check_layer

GRAD_TOL = 1e-6

# (input shape, filters, kernel, stride, pads): strides 1-3, no / symmetric / asymmetric padding,
# non-square inputs and kernels.
CONV_CASES = [
    ((2, 2, 7, 8), 3, (3, 3), (1, 1), (0, 0, 0, 0)),
    ((2, 2, 7, 9), 3, (3, 2), (2, 2), (1, 1, 1, 1)),
    ((2, 3, 8, 7), 2, (2, 3), (3, 3), (0, 1, 1, 0)),
    ((2, 2, 6, 10), 3, (4, 4), (1, 1), (1, 2, 1, 2)),
    ((2, 2, 5, 12), 3, (3, 3), (1, 1), (1, 1, 1, 1)),
    ((2, 3, 4, 5), 2, (1, 1), (1, 1), (0, 0, 0, 0)),
    ((2, 2, 8, 9), 2, (3, 3), (2, 1), (1, 1, 0, 0)),
    ((1, 1, 9, 11), 2, (5, 2), (1, 3), (2, 0, 0, 1)),
    ((2, 2, 6, 14), 2, (2, 2), (1, 1), (0, 1, 0, 1)),
]

# (input shape, size, stride, pads): tiling, ragged edges, overlapping, gapped and padded windows.
POOL_CASES = [
    ((2, 3, 8, 6), (2, 2), (2, 2), (0, 0, 0, 0)),
    ((2, 3, 7, 9), (2, 2), (2, 2), (0, 0, 0, 0)),
    ((2, 2, 9, 8), (3, 3), (2, 2), (0, 0, 0, 0)),
    ((2, 2, 7, 8), (3, 3), (2, 2), (1, 1, 1, 1)),
    ((2, 2, 6, 7), (2, 3), (1, 2), (0, 1, 1, 0)),
    ((1, 2, 8, 5), (3, 2), (3, 1), (1, 0, 0, 1)),
    ((2, 2, 7, 7), (2, 2), (2, 2), (0, 1, 0, 1)),
    ((2, 1, 6, 6), (1, 1), (1, 1), (0, 0, 0, 0)),
    ((2, 2, 8, 9), (2, 2), (3, 3), (0, 0, 0, 0)),
    ((2, 2, 7, 8), (2, 2), (3, 2), (1, 0, 1, 1)),
]
POOL_MODES = ["max", "average", "sum"]


def make_conv(case, rng, dtype=np.float64):
    shape, filters, kernel, stride, pads = case
    conv = Conv2D(shape[1], filters, kernel, stride, pads, rng, dtype=dtype)
    conv.params["bias"][:] = rng.standard_normal(filters)  # biases start at zero: make them count
    return conv


def channel_major(x: np.ndarray) -> np.ndarray:
    """The same NCHW values, stored (C, N, H, W): the layout the layers hand each other."""
    return np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)


# ---------------------------------------------------------------- convolution

@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_matches_loop_reference(case):
    rng = np.random.default_rng(1)
    conv = make_conv(case, rng)
    x = rng.standard_normal(case[0])
    w, b = conv.params["weight"], conv.params["bias"]
    y = conv.forward(x, training=True)
    want = naive.conv_forward(x, w, b, case[3], case[4])
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(y.shape)
    dx = conv.backward(g)
    dx_want, dw_want, db_want = naive.conv_backward(x, w, case[3], case[4], g)
    np.testing.assert_allclose(dx, dx_want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv.grads["weight"], dw_want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv.grads["bias"], db_want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_gradients_match_central_differences(case):
    rng = np.random.default_rng(2)
    conv = make_conv(case, rng)
    errors = check_layer(conv, rng.standard_normal(case[0]), rng)
    assert max(errors.values()) < GRAD_TOL, errors


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_matches_torch_in_float32(case):
    import torch  # the reference; CI installs torch==2.13.0, so its absence must fail, not skip
    F = torch.nn.functional
    rng = np.random.default_rng(3)
    conv = make_conv(case, rng, dtype=np.float32)
    x = rng.standard_normal(case[0]).astype(np.float32)
    y = conv.forward(x, training=True)
    g = rng.standard_normal(y.shape).astype(np.float32)
    dx = conv.backward(g)

    t, b, l, r = case[4]
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(conv.params["weight"], requires_grad=True)
    bt = torch.tensor(conv.params["bias"], requires_grad=True)
    yt = F.conv2d(F.pad(xt, (l, r, t, b)), wt, bt, stride=case[3])
    yt.backward(torch.tensor(g))
    assert y.dtype == dx.dtype == conv.grads["weight"].dtype == conv.grads["bias"].dtype == np.float32
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(conv.grads["weight"], wt.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(conv.grads["bias"], bt.grad.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", [CONV_CASES[0], CONV_CASES[3], CONV_CASES[4], CONV_CASES[6]])
def test_conv_reads_any_memory_layout(case):
    rng = np.random.default_rng(4)
    conv = make_conv(case, rng)
    x = rng.standard_normal(case[0])
    g = rng.standard_normal(conv.forward(x).shape)
    conv.forward(x, training=True)
    want_y, want_dx = conv.forward(x, training=True).copy(), conv.backward(g).copy()
    big = rng.standard_normal((case[0][0], case[0][1], case[0][2] * 2, case[0][3] + 3))
    big[:, :, ::2, 1:-2] = x
    for view in (channel_major(x), big[:, :, ::2, 1:-2], np.asfortranarray(x)):
        np.testing.assert_array_equal(conv.forward(view, training=True), want_y)
        np.testing.assert_array_equal(conv.backward(channel_major(g)), want_dx)
        np.testing.assert_array_equal(conv.backward(np.asfortranarray(g)), want_dx)


def test_conv_chain_of_views_matches_reference():
    """conv -> relu -> pool -> conv passes strided views along; values must not care."""
    rng = np.random.default_rng(5)
    c1 = Conv2D(2, 4, (3, 3), (1, 1), (1, 1, 1, 1), rng, dtype=np.float64)
    c2 = Conv2D(4, 3, (2, 2), (1, 1), (0, 1, 0, 1), rng, dtype=np.float64)
    relu, pool = Activation("relu"), Pool2D("max", (2, 2), (2, 2), (0, 0, 0, 0), dtype=np.float64)
    x = rng.standard_normal((3, 2, 10, 12))
    y = c2.forward(pool.forward(relu.forward(c1.forward(x, True), True), True), True)
    h = naive.conv_forward(x, c1.params["weight"], c1.params["bias"], (1, 1), (1, 1, 1, 1))
    h = naive.pool_forward(np.maximum(h, 0), "max", (2, 2), (2, 2), (0, 0, 0, 0))
    want = naive.conv_forward(h, c2.params["weight"], c2.params["bias"], (1, 1), (0, 1, 0, 1))
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)


def test_inference_between_forward_and_backward_leaves_training_state_alone():
    rng = np.random.default_rng(6)
    case = CONV_CASES[4]
    conv = make_conv(case, rng)
    x, other = rng.standard_normal(case[0]), rng.standard_normal(case[0])
    g = rng.standard_normal(conv.forward(x).shape)
    conv.forward(x, training=True)
    want = conv.backward(g).copy(), conv.grads["weight"].copy()
    conv.forward(x, training=True)
    conv.forward(other, training=False)
    conv.forward(other[:1], training=False)
    dx = conv.backward(g)
    np.testing.assert_array_equal(dx, want[0])
    np.testing.assert_array_equal(conv.grads["weight"], want[1])


def test_conv_outputs_are_not_overwritten_by_later_calls():
    rng = np.random.default_rng(7)
    conv = make_conv(CONV_CASES[4], rng)
    x1, x2 = rng.standard_normal((2,) + CONV_CASES[4][0])
    y1 = conv.forward(x1, training=True)
    dx1 = conv.backward(np.ones(y1.shape))
    keep = y1.copy(), dx1.copy()
    conv.forward(x2, training=True)
    conv.backward(np.full(y1.shape, 2.0))
    np.testing.assert_array_equal(y1, keep[0])
    np.testing.assert_array_equal(dx1, keep[1])


def test_conv_init_and_shapes():
    rng = np.random.default_rng(8)
    conv = Conv2D(3, 5, (3, 2), (1, 1), (0, 0, 0, 0), rng)
    assert conv.params["weight"].shape == (5, 3, 3, 2) and conv.params["weight"].dtype == np.float32
    assert conv.params["bias"].shape == (5,) and not conv.params["bias"].any()
    assert conv.forward(np.zeros((2, 3, 6, 6), np.float32)).shape == (2, 5, 4, 5)
    same = Conv2D(3, 5, (3, 2), (1, 1), (0, 0, 0, 0), np.random.default_rng(8))
    np.testing.assert_array_equal(same.params["weight"], conv.params["weight"])


def test_conv_rejects_bad_arguments_and_inputs():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="filters.*0"):
        Conv2D(3, 0, (3, 3), (1, 1), (0, 0, 0, 0), rng)
    with pytest.raises(ValueError, match="stride.*0"):
        Conv2D(3, 4, (3, 3), (0, 1), (0, 0, 0, 0), rng)
    with pytest.raises(ValueError, match=r"pads.*-1"):
        Conv2D(3, 4, (3, 3), (1, 1), (0, -1, 0, 0), rng)
    with pytest.raises(ValueError, match="unknown weight initialisation 'xavier'"):
        Conv2D(3, 4, (3, 3), (1, 1), (0, 0, 0, 0), rng, init="xavier")
    conv = Conv2D(3, 4, (3, 3), (1, 1), (0, 0, 0, 0), rng)
    with pytest.raises(ValueError, match=r"\(batch, 3, height, width\).*\(2, 1, 8, 8\)"):
        conv.forward(np.zeros((2, 1, 8, 8), np.float32))
    with pytest.raises(ValueError, match="2 x 8"):
        conv.forward(np.zeros((2, 3, 2, 8), np.float32))
    with pytest.raises(RuntimeError, match="training=True"):
        conv.backward(np.zeros((2, 4, 6, 6), np.float32))
    conv.forward(np.zeros((2, 3, 8, 8), np.float32), training=True)
    with pytest.raises(ValueError, match=r"\(2, 4, 6, 6\).*\(2, 4, 5, 5\)"):
        conv.backward(np.zeros((2, 4, 5, 5), np.float32))


# ---------------------------------------------------------------- pooling

def continuous_input(shape, rng):
    """Distinct values far apart relative to the finite-difference step: no max ties."""
    return rng.permutation(np.arange(np.prod(shape), dtype=np.float64)).reshape(shape) * 0.01 - 1


@pytest.mark.parametrize("mode", POOL_MODES)
@pytest.mark.parametrize("case", POOL_CASES)
def test_pool_matches_loop_reference(mode, case):
    rng = np.random.default_rng(10)
    shape, size, stride, pads = case
    pool = Pool2D(mode, size, stride, pads, dtype=np.float64)
    x = continuous_input(shape, rng)
    y = pool.forward(x, training=True)
    np.testing.assert_allclose(y, naive.pool_forward(x, mode, size, stride, pads), rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(y.shape)
    np.testing.assert_allclose(pool.backward(g), naive.pool_backward(x, mode, size, stride, pads, g),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", POOL_MODES)
@pytest.mark.parametrize("case", POOL_CASES)
def test_pool_gradients_match_central_differences(mode, case):
    rng = np.random.default_rng(11)
    shape, size, stride, pads = case
    pool = Pool2D(mode, size, stride, pads, dtype=np.float64)
    errors = check_layer(pool, continuous_input(shape, rng), rng)
    assert errors["input"] < GRAD_TOL, errors


@pytest.mark.parametrize("case", POOL_CASES)
def test_max_pool_ties_send_the_gradient_to_the_first_window_element(case):
    shape, size, stride, pads = case
    pool = Pool2D("max", size, stride, pads, dtype=np.float64)
    x = np.full(shape, 0.5)
    y = pool.forward(x, training=True)
    g = np.random.default_rng(12).standard_normal(y.shape)
    dx = pool.backward(g)
    np.testing.assert_allclose(dx, naive.pool_backward(x, "max", size, stride, pads, g), rtol=1e-12)
    if pads == (0, 0, 0, 0):  # then every window's first element is its top-left corner
        corners = np.zeros_like(dx)
        sh, sw = stride
        corners[:, :, :y.shape[2] * sh:sh, :y.shape[3] * sw:sw] += g
        np.testing.assert_allclose(dx, corners, rtol=1e-12)


def test_max_pool_ties_agree_with_torch():
    import torch  # the reference; CI installs torch==2.13.0, so its absence must fail, not skip
    x = np.zeros((1, 2, 6, 6), np.float32)
    x[0, 0, :3] = 1.0  # mixed: all-equal windows, and windows whose max is repeated
    pool = Pool2D("max", (3, 3), (2, 2), (0, 0, 0, 0))
    y = pool.forward(x, training=True)
    g = np.arange(y.size, dtype=np.float32).reshape(y.shape) + 1
    xt = torch.tensor(x, requires_grad=True)
    torch.nn.functional.max_pool2d(xt, 3, 2).backward(torch.tensor(g))
    np.testing.assert_array_equal(pool.backward(g), xt.grad.numpy())


@pytest.mark.parametrize("mode", POOL_MODES)
@pytest.mark.parametrize("case", POOL_CASES)
def test_pool_matches_torch_in_float32(mode, case):
    import torch  # the reference; CI installs torch==2.13.0, so its absence must fail, not skip
    F = torch.nn.functional
    rng = np.random.default_rng(13)
    shape, size, stride, pads = case
    pool = Pool2D(mode, size, stride, pads)
    x = rng.standard_normal(shape).astype(np.float32)
    y = pool.forward(x, training=True)
    g = rng.standard_normal(y.shape).astype(np.float32)
    dx = pool.backward(g)
    t, b, l, r = pads
    xt = torch.tensor(x, requires_grad=True)
    padded = F.pad(xt, (l, r, t, b), value=float("-inf") if mode == "max" else 0.0)
    if mode == "max":
        yt = F.max_pool2d(padded, size, stride)
    else:
        yt = F.avg_pool2d(padded, size, stride) * (1 if mode == "average" else size[0] * size[1])
    yt.backward(torch.tensor(g))
    assert y.dtype == dx.dtype == np.float32
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", POOL_MODES)
def test_pool_reads_any_memory_layout(mode):
    rng = np.random.default_rng(14)
    for shape, size, stride, pads in (POOL_CASES[0], POOL_CASES[3]):
        pool = Pool2D(mode, size, stride, pads, dtype=np.float64)
        x = continuous_input(shape, rng)
        y = pool.forward(x, training=True).copy()
        g = rng.standard_normal(y.shape)
        dx = pool.backward(g).copy()
        np.testing.assert_array_equal(pool.forward(channel_major(x), training=True), y)
        np.testing.assert_array_equal(pool.backward(channel_major(g)), dx)


def test_pool_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown pooling mode 'min'"):
        Pool2D("min", (2, 2), (2, 2), (0, 0, 0, 0))
    with pytest.raises(ValueError, match=r"pads \(2, 0, 0, 0\).*\(2, 2\)"):
        Pool2D("max", (2, 2), (2, 2), (2, 0, 0, 0))
    pool = Pool2D("max", (3, 3), (1, 1), (0, 0, 0, 0))
    with pytest.raises(ValueError, match="2 x 5"):
        pool.forward(np.zeros((1, 1, 2, 5), np.float32))
    with pytest.raises(ValueError, match=r"\(1, 4, 4\)"):
        pool.forward(np.zeros((1, 4, 4), np.float32))


# ---------------------------------------------------------------- dense, flatten

def test_dense_forward_backward_and_gradients():
    rng = np.random.default_rng(20)
    dense = Dense(7, 4, rng, dtype=np.float64)
    dense.params["bias"][:] = rng.standard_normal(4)
    x = rng.standard_normal((5, 7))
    np.testing.assert_allclose(dense.forward(x), x @ dense.params["weight"].T + dense.params["bias"], rtol=1e-12)
    assert dense.params["weight"].shape == (4, 7)
    errors = check_layer(dense, x, rng)
    assert max(errors.values()) < GRAD_TOL, errors


def test_dense_float32_matches_torch_and_stays_float32():
    import torch  # the reference; CI installs torch==2.13.0, so its absence must fail, not skip
    rng = np.random.default_rng(21)
    dense = Dense(6, 3, rng)
    x = rng.standard_normal((4, 6)).astype(np.float32)
    y = dense.forward(x, training=True)
    g = rng.standard_normal(y.shape).astype(np.float32)
    dx = dense.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(dense.params["weight"], requires_grad=True)
    torch.nn.functional.linear(xt, wt, torch.tensor(dense.params["bias"])).backward(torch.tensor(g))
    assert {a.dtype for a in (y, dx, *dense.grads.values())} == {np.dtype(np.float32)}
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dense.grads["weight"], wt.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dense.grads["bias"], g.sum(0), rtol=1e-5)
    with pytest.raises(ValueError, match=r"\(batch, 6\).*\(4, 5\)"):
        dense.forward(np.zeros((4, 5), np.float32))


def test_flatten_gradient():
    rng = np.random.default_rng(22)
    errors = check_layer(Flatten(), rng.standard_normal((2, 3, 4, 2)), rng)
    assert errors["input"] < GRAD_TOL, errors


def test_flatten_is_c_order_for_any_layout():
    import torch  # the reference; CI installs torch==2.13.0, so its absence must fail, not skip
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    flat = Flatten()
    for view in (x, channel_major(x)):
        y = flat.forward(view, training=True)
        np.testing.assert_array_equal(y, torch.flatten(torch.tensor(x), 1).numpy())
        np.testing.assert_array_equal(flat.backward(y), x)


# ---------------------------------------------------------------- activations, dropout

ACTIVATION_NAMES = ["relu", "leaky_relu", "sigmoid", "tanh", "identity", "softmax"]


@pytest.mark.parametrize("name", ACTIVATION_NAMES)
@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 4, 3)])
def test_activation_gradients(name, shape):
    rng = np.random.default_rng(30)
    x = rng.standard_normal(shape)
    x += np.sign(x) * 0.1  # keep away from relu's kink
    errors = check_layer(Activation(name), x, rng)
    assert errors["input"] < GRAD_TOL, errors


@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_activation_matches_torch(name):
    import torch  # the reference; CI installs torch==2.13.0, so its absence must fail, not skip
    F = torch.nn.functional
    ref = {"relu": F.relu, "leaky_relu": lambda t: F.leaky_relu(t, LEAKY_RELU_SLOPE), "sigmoid": torch.sigmoid,
           "tanh": torch.tanh, "identity": lambda t: t, "softmax": lambda t: F.softmax(t, dim=1)}[name]
    x = np.random.default_rng(31).standard_normal((3, 4, 2, 5)).astype(np.float32) * 3
    layer = Activation(name)
    for view in (x, channel_major(x)):
        y = layer.forward(view, training=True)
        g = np.cos(np.arange(x.size, dtype=np.float32)).reshape(x.shape)
        xt = torch.tensor(x, requires_grad=True)
        ref(xt).backward(torch.tensor(g))
        dx = layer.backward(g)
        assert y.dtype == dx.dtype == np.float32
        np.testing.assert_allclose(y, ref(torch.tensor(x)).numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_activation_keeps_the_channel_major_layout():
    x = channel_major(np.random.default_rng(32).standard_normal((2, 3, 4, 5)).astype(np.float32))
    layer = Activation("relu")
    y = layer.forward(x, training=True)
    assert y.transpose(1, 0, 2, 3).flags.c_contiguous
    assert layer.backward(x).transpose(1, 0, 2, 3).flags.c_contiguous


def test_sigmoid_and_softmax_are_stable_for_huge_inputs():
    x = np.array([[-1000.0, 0.0, 1000.0]], np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        s = Activation("sigmoid").forward(x)
        p = Activation("softmax").forward(x)
    np.testing.assert_array_equal(s, [[0.0, 0.5, 1.0]])
    np.testing.assert_array_equal(p, [[0.0, 0.0, 1.0]])


def test_unknown_activation_is_named():
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        Activation("gelu")


def test_dropout_scales_kept_values_and_is_identity_in_eval():
    x = np.random.default_rng(40).standard_normal((64, 8, 6, 6)).astype(np.float32)
    drop = Dropout(0.25, np.random.default_rng(41))
    assert drop.forward(x, training=False) is x
    y = drop.forward(x, training=True)
    kept = y != 0
    assert y.dtype == np.float32
    np.testing.assert_allclose(y[kept], x[kept] / 0.75, rtol=1e-6)
    assert abs(kept.mean() - 0.75) < 0.01
    g = np.ones_like(x)
    np.testing.assert_allclose(drop.backward(g), kept / np.float32(0.75), rtol=1e-6)
    assert drop.forward(x, training=False) is x


def test_dropout_gradient_for_a_fixed_mask():
    class Reseeded(Dropout):
        """Draws the same mask on every forward, so central differences see one function."""

        def forward(self, x, training=False):
            self.rng = np.random.default_rng(44)
            return super().forward(x, training)

    rng = np.random.default_rng(45)
    errors = check_layer(Reseeded(0.4, rng), rng.standard_normal((3, 2, 3, 3)), rng)
    assert errors["input"] < GRAD_TOL, errors


def test_dropout_mask_follows_the_generator():
    x = np.ones((4, 100), np.float32)
    a = Dropout(0.5, np.random.default_rng(42)).forward(x, training=True)
    b = Dropout(0.5, np.random.default_rng(42)).forward(x, training=True)
    c = Dropout(0.5, np.random.default_rng(43)).forward(x, training=True)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(Dropout(0.0, np.random.default_rng(0)).forward(x, training=True), x)
    with pytest.raises(ValueError, match="rate.*1.5"):
        Dropout(1.5, np.random.default_rng(0))


# ---------------------------------------------------------------- all layers

def all_layers(dtype, rng):
    return [
        (Conv2D(2, 3, (3, 3), (1, 1), (1, 1, 1, 1), rng, dtype=dtype), (2, 2, 6, 6)),
        (Conv2D(2, 3, (3, 2), (2, 2), (0, 1, 1, 0), rng, dtype=dtype), (2, 2, 7, 6)),
        (Pool2D("max", (3, 3), (2, 2), (1, 1, 1, 1), dtype=dtype), (2, 2, 6, 6)),
        (Pool2D("average", (2, 2), (2, 2), (0, 0, 0, 0), dtype=dtype), (2, 2, 6, 6)),
        (Pool2D("sum", (2, 2), (1, 1), (0, 0, 0, 0), dtype=dtype), (2, 2, 6, 6)),
        (Dense(5, 3, rng, dtype=dtype), (2, 5)),
        (Flatten(), (2, 2, 3, 3)),
        (Dropout(0.5, rng), (2, 3, 4, 4)),
        *[(Activation(name), (2, 3, 4, 4)) for name in ACTIVATION_NAMES],
    ]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_layer_keeps_its_dtype(dtype):
    rng = np.random.default_rng(50)
    for layer, shape in all_layers(dtype, rng):
        assert isinstance(layer, Layer)
        y = layer.forward(rng.standard_normal(shape).astype(dtype), training=True)
        dx = layer.backward(np.ones(y.shape, dtype))
        dtypes = {y.dtype, dx.dtype, *(g.dtype for g in layer.grads.values()),
                  *(p.dtype for p in layer.params.values())}
        assert dtypes == {np.dtype(dtype)}, (layer, dtypes)
        assert set(layer.grads) == set(layer.params)
        assert all(layer.grads[k].shape == p.shape for k, p in layer.params.items())


# ---------------------------------------------------------------- threads

def run_everything(seed: int):
    """Forward + backward of every parallel code path at sizes that cut work into pieces."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((6, 3, 12, 10)).astype(np.float32)
    conv = Conv2D(3, 5, (3, 3), (1, 1), (1, 1, 1, 1), rng)
    conv2 = Conv2D(5, 4, (3, 2), (2, 1), (0, 1, 1, 0), rng)
    relu = Activation("relu")
    pool = Pool2D("max", (2, 2), (2, 2), (0, 0, 0, 0))
    pool2 = Pool2D("average", (3, 3), (2, 2), (1, 1, 1, 1))
    flat, dense = Flatten(), Dense(4 * 2 * 3, 7, rng)
    layers = [conv, relu, pool, conv2, pool2, flat, dense]
    h = x
    outs = []
    for layer in layers:
        h = layer.forward(h, training=True)
        outs.append(np.array(h))
    g = np.ones_like(h)
    for layer in reversed(layers):
        g = layer.backward(g)
        outs.append(np.array(g))
    outs += [np.array(v) for layer in layers for v in layer.grads.values()]
    return outs


def test_results_are_bitwise_identical_for_any_thread_count(monkeypatch):
    import netbuilder.core.layers.conv as conv_module
    import netbuilder.core.layers.dense as dense_module
    from netbuilder.core.layers import parallel

    before = parallel.threads()
    try:
        parallel.set_threads(1)
        want = run_everything(60)
        monkeypatch.setattr(parallel, "MIN_ELEMENTS", 1)  # share even tiny jobs
        monkeypatch.setattr(conv_module, "CHUNK_BYTES", 256)  # many row chunks
        monkeypatch.setattr(dense_module, "SPLIT_MACS", 1)
        parallel.set_threads(1)
        single = run_everything(60)
        for n in (2, 3):
            parallel.set_threads(n)
            got = run_everything(60)
            for a, b, c in zip(got, single, want):
                np.testing.assert_array_equal(a, b)
                np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-6)
    finally:
        parallel.set_threads(before)


def test_split_covers_the_range_once_and_reports_errors(monkeypatch):
    from netbuilder.core.layers import parallel

    before = parallel.threads()
    monkeypatch.setattr(parallel, "MIN_ELEMENTS", 1)
    try:
        parallel.set_threads(3)
        hits = np.zeros(100, int)

        def mark(lo, hi):
            hits[lo:hi] += 1

        for _ in range(20):
            parallel.split(mark, 100, 10 ** 6)
        assert (hits == 20).all()

        def fail(lo, hi):
            if lo > 0:
                raise KeyError("from a helper")

        with pytest.raises(KeyError, match="from a helper"):
            parallel.split(fail, 100, 10 ** 6)
        with pytest.raises(ValueError, match="positive integer, got 0"):
            parallel.set_threads(0)
    finally:
        parallel.set_threads(before)


IMPORT_AND_TRAIN = """
import json
import numpy  # BLAS is loaded with numpy, before anything of ours
from threadpoolctl import threadpool_info
blas = lambda: [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
before = blas()
import netbuilder.core.layers, netbuilder.core.trainer, netbuilder.core.network, netbuilder.core.cli
after_import = blas()
from netbuilder.core.datasets import load_project_dataset
from netbuilder.core.project import load_project
from netbuilder.core.resources import example_path
from netbuilder.core.trainer import Trainer
project = load_project(example_path("xor"))
trainer = Trainer(project, load_project_dataset(project))
during = []
for event in trainer.run(2):
    during.append(blas())
print(json.dumps({"before": before, "after_import": after_import, "during": during, "after": blas()}))
"""


def test_importing_the_engine_leaves_blas_threads_alone_and_training_limits_them_for_its_run():
    import json
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    env["OPENBLAS_NUM_THREADS"] = "2"  # a multi-threaded BLAS to begin with, even on one core
    out = subprocess.run([sys.executable, "-c", IMPORT_AND_TRAIN], capture_output=True, text=True, env=env,
                         check=True)
    seen = json.loads(out.stdout)
    assert seen["before"] and all(n == 2 for n in seen["before"])
    assert seen["after_import"] == seen["before"]
    assert seen["during"] and all(n == [1] * len(seen["before"]) for n in seen["during"])
    assert seen["after"] == seen["before"]


@pytest.mark.parametrize("kind", ["conv", "dense"])
def test_first_layer_can_skip_its_input_gradient(kind):
    rng = np.random.default_rng(70)
    if kind == "conv":
        layer, x = make_conv(CONV_CASES[4], rng), rng.standard_normal(CONV_CASES[4][0])
    else:
        layer, x = Dense(6, 4, rng, dtype=np.float64), rng.standard_normal((3, 6))
    g = rng.standard_normal(layer.forward(x).shape)
    layer.forward(x, training=True)
    assert layer.backward(g) is not None
    want = {k: v.copy() for k, v in layer.grads.items()}
    layer.needs_input_grad = False
    layer.forward(x, training=True)
    assert layer.backward(g) is None
    for k, v in want.items():
        np.testing.assert_array_equal(layer.grads[k], v)


def test_overlapping_blas_limits_share_one_limit_until_the_last_ends():
    """A probe that began before a training run and ends inside it (they overlap, as threads do)
    must not put BLAS back while the run goes on; the original returns when the last one ends."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from netbuilder.core.layers.parallel import blas_single_threaded

    def blas():
        return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}

    with threadpool_limits(limits=2, user_api="blas"):
        probe, run = blas_single_threaded(), blas_single_threaded()
        probe.__enter__()
        run.__enter__()
        probe.__exit__(None, None, None)
        assert blas() == {1}  # the run still holds it
        run.__exit__(None, None, None)
        assert blas() == {2}
