"""BatchNorm, GlobalPool and Conv2D(bias=False) against central differences and PyTorch."""
from __future__ import annotations

import numpy as np
import pytest
import torch  # the reference; CI installs torch==2.13.0, so its absence must fail, not skip

from netbuilder.core.layers.batchnorm import BatchNorm
from netbuilder.core.layers.conv import Conv2D
from netbuilder.core.layers.global_pool import GlobalPool
from tests.core.gradcheck import check_layer

GRAD_TOL = 1e-6
# Not (2, C): with two values per channel x_hat is ±1 whatever x is, so dx is ~0 and a relative error is noise.
BN_SHAPES = [(3, 2, 3, 4), (2, 3, 1, 5), (4, 5), (3, 2)]


def channel_major(x: np.ndarray) -> np.ndarray:
    """The same NCHW values, stored (C, N, H, W)."""
    return np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)


def batch_innermost(x: np.ndarray) -> np.ndarray:
    """The same NCHW values, stored (C, H, W, N): what a convolution hands over."""
    return np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)


def layouts(x: np.ndarray) -> list[np.ndarray]:
    """``x`` and views of the same values in other memory layouts, the last a strided one."""
    strided = np.repeat(x, 2, axis=-1)[..., ::2]
    return [x, np.asfortranarray(x), strided] if x.ndim == 2 else [x, channel_major(x), batch_innermost(x), strided]


def make_bn(c: int, rng, dtype=np.float64, **kw) -> BatchNorm:
    bn = BatchNorm(c, dtype=dtype, **kw)
    bn.params["weight"][:] = rng.uniform(0.5, 2.0, c)  # weight 1, bias 0 at the start: make them count
    bn.params["bias"][:] = rng.standard_normal(c)
    return bn


def distinct(shape, rng) -> np.ndarray:
    """Values far apart relative to the finite-difference step: no max ties."""
    return rng.permutation(np.arange(np.prod(shape), dtype=np.float64)).reshape(shape) * 0.01 - 1


# ---------------------------------------------------------------- central differences

@pytest.mark.parametrize("shape", BN_SHAPES)
def test_batchnorm_training_gradients(shape):
    rng = np.random.default_rng(1)
    bn = make_bn(shape[1], rng)
    errors = check_layer(bn, rng.standard_normal(shape) * 3 + 1, rng)
    assert max(errors.values()) < GRAD_TOL, errors


@pytest.mark.parametrize("shape", BN_SHAPES)
def test_batchnorm_eval_mode_gradients(shape):
    """Frozen (eval-mode statistics in a training forward): the gradient of the fixed affine map."""
    rng = np.random.default_rng(2)
    bn = make_bn(shape[1], rng)
    bn.buffers["running_mean"][:] = rng.standard_normal(shape[1])
    bn.buffers["running_var"][:] = rng.uniform(0.2, 3.0, shape[1])
    x = rng.standard_normal(shape)
    want = bn.forward(x, training=False)
    bn.frozen = True
    np.testing.assert_allclose(bn.forward(x, training=True), want, rtol=1e-12, atol=1e-12)
    errors = check_layer(bn, x, rng)
    assert max(errors.values()) < GRAD_TOL, errors


@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (3, 1, 1, 6), (2, 2, 1, 1)])
def test_global_pool_gradients(mode, shape):
    rng = np.random.default_rng(3)
    errors = check_layer(GlobalPool(mode, dtype=np.float64), distinct(shape, rng), rng)
    assert errors["input"] < GRAD_TOL, errors


def test_conv_without_bias_gradients():
    rng = np.random.default_rng(4)
    conv = Conv2D(2, 3, (3, 2), (2, 1), (1, 0, 1, 1), rng, dtype=np.float64, bias=False)
    assert list(conv.params) == ["weight"]
    errors = check_layer(conv, rng.standard_normal((2, 2, 7, 6)), rng)
    assert set(errors) == {"input", "weight"} and max(errors.values()) < GRAD_TOL, errors
    assert list(conv.grads) == ["weight"]


# ---------------------------------------------------------------- PyTorch parity

@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (8, 6), (2, 4, 1, 1)])
@pytest.mark.parametrize("momentum", [0.1, 0.3])
def test_batchnorm_matches_torch_over_training_steps(shape, momentum):
    rng = np.random.default_rng(10)
    c = shape[1]
    bn = make_bn(c, rng, dtype=np.float32, momentum=momentum, eps=1e-3)
    ref = (torch.nn.BatchNorm2d if len(shape) == 4 else torch.nn.BatchNorm1d)(c, momentum=momentum, eps=1e-3)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(bn.params["weight"]))
        ref.bias.copy_(torch.tensor(bn.params["bias"]))
    ref.train()
    for step in range(5):
        x = (rng.standard_normal(shape) * (step + 1) + step).astype(np.float32)
        g = rng.standard_normal(shape).astype(np.float32)
        y = bn.forward(layouts(x)[step % len(layouts(x))], training=True)
        dx = bn.backward(g)
        xt = torch.tensor(x, requires_grad=True)
        ref.zero_grad()
        yt = ref(xt)
        yt.backward(torch.tensor(g))
        assert {a.dtype for a in (y, dx, *bn.grads.values(), bn.buffers["running_mean"], bn.buffers["running_var"])} \
            == {np.dtype(np.float32)}
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(bn.grads["weight"], ref.weight.grad.numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(bn.grads["bias"], ref.bias.grad.numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(bn.buffers["running_mean"], ref.running_mean.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(bn.buffers["running_var"], ref.running_var.numpy(), rtol=1e-5, atol=1e-6)
        assert int(bn.buffers["num_batches_tracked"]) == int(ref.num_batches_tracked)
    ref.eval()
    x = (rng.standard_normal(shape) * 2).astype(np.float32)
    xt = torch.tensor(x, requires_grad=True)
    yt = ref(xt)
    np.testing.assert_allclose(bn.forward(x, training=False), yt.detach().numpy(), rtol=1e-5, atol=1e-5)
    g = rng.standard_normal(shape).astype(np.float32)  # eval-mode gradients: the frozen layer
    yt.backward(torch.tensor(g))
    bn.frozen = True
    bn.forward(x, training=True)
    np.testing.assert_allclose(bn.backward(g), xt.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["avg", "max"])
def test_global_pool_matches_torch(mode):
    rng = np.random.default_rng(11)
    ref = torch.nn.AdaptiveAvgPool2d(1) if mode == "avg" else torch.nn.AdaptiveMaxPool2d(1)
    pool = GlobalPool(mode)
    x = rng.standard_normal((3, 4, 5, 7)).astype(np.float32)
    x[0, 0] = 0.0  # a tied channel (all zeros, as after a ReLU)
    x[1, 2, 1:3, 2] = 9.0  # a repeated maximum
    g = rng.standard_normal((3, 4, 1, 1)).astype(np.float32)
    xt = torch.tensor(x, requires_grad=True)
    yt = ref(xt)
    yt.backward(torch.tensor(g))
    for view in layouts(x):
        y = pool.forward(view, training=True)
        dx = pool.backward(g)
        assert y.shape == (3, 4, 1, 1) and y.dtype == dx.dtype == np.float32
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(pool.forward(view, training=False), y)


@pytest.mark.parametrize("case", [((2, 3, 7, 8), 4, (3, 3), (1, 1), (1, 1, 1, 1)),
                                  ((3, 2, 9, 7), 5, (2, 3), (2, 2), (0, 1, 1, 0))])
def test_conv_without_bias_matches_torch(case):
    shape, filters, kernel, stride, pads = case
    rng = np.random.default_rng(12)
    conv = Conv2D(shape[1], filters, kernel, stride, pads, rng, bias=False)
    x = rng.standard_normal(shape).astype(np.float32)
    y = conv.forward(x, training=True)
    g = rng.standard_normal(y.shape).astype(np.float32)
    dx = conv.backward(g)
    F = torch.nn.functional
    t, b, l, r = pads
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(conv.params["weight"], requires_grad=True)
    yt = F.conv2d(F.pad(xt, (l, r, t, b)), wt, None, stride=stride)
    yt.backward(torch.tensor(g))
    assert set(conv.params) == set(conv.grads) == {"weight"}
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(conv.grads["weight"], wt.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(conv.forward(x), y, rtol=1e-6, atol=1e-6)  # inference path too
    with_bias = Conv2D(shape[1], filters, kernel, stride, pads, np.random.default_rng(12))
    np.testing.assert_array_equal(with_bias.params["weight"], conv.params["weight"])  # same draws
    np.testing.assert_allclose(with_bias.forward(x), y, rtol=1e-6, atol=1e-6)


def test_conv_batchnorm_global_pool_stack_matches_torch():
    rng = np.random.default_rng(13)
    conv = Conv2D(3, 4, (3, 3), (1, 1), (1, 1, 1, 1), rng, bias=False)
    bn, pool = make_bn(4, rng, dtype=np.float32), GlobalPool("avg")
    ref = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1, bias=False), torch.nn.BatchNorm2d(4),
                              torch.nn.AdaptiveAvgPool2d(1))
    with torch.no_grad():
        ref[0].weight.copy_(torch.tensor(conv.params["weight"]))
        ref[1].weight.copy_(torch.tensor(bn.params["weight"]))
        ref[1].bias.copy_(torch.tensor(bn.params["bias"]))
    x = rng.standard_normal((5, 3, 6, 7)).astype(np.float32)
    y = pool.forward(bn.forward(conv.forward(x, training=True), training=True), training=True)
    g = rng.standard_normal(y.shape).astype(np.float32)
    dx = conv.backward(bn.backward(pool.backward(g)))
    xt = torch.tensor(x, requires_grad=True)
    yt = ref(xt)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(conv.grads["weight"], ref[0].weight.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(bn.grads["weight"], ref[1].weight.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.buffers["running_var"], ref[1].running_var.numpy(), rtol=1e-5)


# ---------------------------------------------------------------- state, layouts, errors

def test_batchnorm_buffers_change_only_in_training_and_in_place():
    rng = np.random.default_rng(20)
    bn = make_bn(3, rng, dtype=np.float32)
    mean, var = bn.buffers["running_mean"], bn.buffers["running_var"]
    x = rng.standard_normal((4, 3, 2, 2)).astype(np.float32) + 5
    bn.forward(x, training=True)
    g = rng.standard_normal(x.shape).astype(np.float32)
    dx = bn.backward(g).copy()
    after = mean.copy(), var.copy()
    assert not np.allclose(after[0], 0) and not np.allclose(after[1], 1)
    assert bn.buffers["running_mean"] is mean and bn.buffers["running_var"] is var
    for other in (x[:1, :, :1, :1], x * 3, x[:, :, :1]):  # eval: one value per channel is fine
        bn.forward(other, training=False)
    np.testing.assert_array_equal(mean, after[0])
    np.testing.assert_array_equal(var, after[1])
    np.testing.assert_array_equal(bn.backward(g), dx)  # eval forwards kept nothing either
    bn.frozen = True
    bn.forward(x, training=True)
    np.testing.assert_array_equal(mean, after[0])


@pytest.mark.parametrize("shape", [(1, 3, 1, 1), (1, 3), (0, 3, 2, 2)])
def test_one_value_per_channel_is_normalised_with_the_running_statistics(shape):
    bn = BatchNorm(3)
    bn.buffers["running_mean"][:] = [1.0, 2.0, 3.0]
    bn.buffers["running_var"][:] = [4.0, 4.0, 4.0]
    x = np.ones(shape, np.float32) * 5
    y = bn.forward(x, training=True)  # no variance to take: as if frozen for this batch
    np.testing.assert_allclose(y, bn.forward(x, training=False), rtol=1e-6)
    np.testing.assert_array_equal(bn.buffers["running_mean"], [1.0, 2.0, 3.0])  # and nothing learnt from it
    assert int(bn.buffers["num_batches_tracked"]) == 0
    if x.size:
        dx = bn.backward(np.ones(shape, np.float32))
        np.testing.assert_allclose(dx, np.ones(shape) / np.sqrt(4.0 + 1e-5), rtol=1e-5)
    bn.forward(np.ones((2, 3), np.float32), training=True)  # two samples, or one with pixels, take statistics
    bn.forward(np.ones((1, 3, 1, 2), np.float32), training=True)
    assert int(bn.buffers["num_batches_tracked"]) == 2


def test_batchnorm_rejects_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match="num_features.*0"):
        BatchNorm(0)
    with pytest.raises(ValueError, match="momentum.*1.5"):
        BatchNorm(3, momentum=1.5)
    with pytest.raises(ValueError, match="eps.*0"):
        BatchNorm(3, eps=0)
    bn = BatchNorm(3)
    for bad in ((2, 4, 5, 5), (2, 4), (2, 3, 5), (3,)):
        with pytest.raises(ValueError, match=r"\(batch, 3\) or \(batch, 3, height, width\)"):
            bn.forward(np.zeros(bad, np.float32), training=True)
    with pytest.raises(RuntimeError, match="training=True"):
        bn.backward(np.zeros((2, 3), np.float32))
    bn.forward(np.ones((2, 3, 2, 2), np.float32), training=True)
    with pytest.raises(ValueError, match=r"\(2, 3, 2, 2\).*\(2, 3, 2, 1\)"):
        bn.backward(np.zeros((2, 3, 2, 1), np.float32))


@pytest.mark.parametrize("shape", [(3, 4, 5, 2), (6, 4)])
def test_batchnorm_reads_any_layout_and_answers_in_it(shape):
    rng = np.random.default_rng(21)
    x, g = rng.standard_normal(shape), rng.standard_normal(shape)
    got = []
    views = layouts(x)
    for view, g_view in zip(views, layouts(g)):  # the gradient in the same layout, then in NCHW
        for grad in (g_view, g):
            bn = make_bn(4, np.random.default_rng(0))
            y = bn.forward(view, training=True)
            got.append((y, bn.backward(grad)))
            assert y.strides == view.strides or view is views[-1]  # y laid out as x (strided x aside)
    for y, dx in got[1:]:
        np.testing.assert_allclose(y, got[0][0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dx, got[0][1], rtol=1e-12, atol=1e-12)


def test_batchnorm_can_skip_its_input_gradient():
    rng = np.random.default_rng(22)
    bn, x = make_bn(3, rng), rng.standard_normal((4, 3, 2, 2))
    g = rng.standard_normal(x.shape)
    bn.forward(x, training=True)
    assert bn.needs_input_grad and bn.backward(g) is not None
    want = {k: v.copy() for k, v in bn.grads.items()}
    bn.needs_input_grad = False
    bn.forward(x, training=True)
    assert bn.backward(g) is None
    assert all(np.array_equal(bn.grads[k], v) for k, v in want.items())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_new_layers_keep_their_dtype(dtype):
    rng = np.random.default_rng(23)
    cases = [(BatchNorm(3, dtype=dtype), (4, 3, 2, 2)), (BatchNorm(5, dtype=dtype), (4, 5)),
             (GlobalPool("avg", dtype=dtype), (2, 3, 4, 4)), (GlobalPool("max", dtype=dtype), (2, 3, 4, 4)),
             (Conv2D(2, 3, (3, 3), (1, 1), (1, 1, 1, 1), rng, dtype=dtype, bias=False), (2, 2, 5, 5))]
    for layer, shape in cases:
        other = np.float64 if dtype == np.float32 else np.float32
        y = layer.forward(rng.standard_normal(shape).astype(other), training=True)
        dx = layer.backward(np.ones(y.shape, other))
        floats = {k: v for k, v in layer.buffers.items() if k != "num_batches_tracked"}  # a count: int64
        dtypes = {y.dtype, dx.dtype, *(a.dtype for d in (layer.grads, layer.params, floats) for a in d.values())}
        assert dtypes == {np.dtype(dtype)}, (layer, dtypes)
        assert set(layer.grads) == set(layer.params)
        assert all(layer.grads[k].shape == p.shape for k, p in layer.params.items())


def test_global_pool_max_ties_go_to_the_first_position():
    x = np.zeros((2, 2, 3, 3), np.float32)
    x[1, 1, 2, 0] = x[1, 1, 1, 2] = 4.0
    pool = GlobalPool("max")
    for view in layouts(x):
        pool.forward(view, training=True)
        dx = pool.backward(np.full((2, 2, 1, 1), 2.0, np.float32))
        want = np.zeros_like(x)
        want[:, :, 0, 0] = 2.0
        want[1, 1, 0, 0], want[1, 1, 1, 2] = 0.0, 2.0  # row-major: (1, 2) comes before (2, 0)
        np.testing.assert_array_equal(dx, want)


def test_global_pool_state_and_errors():
    with pytest.raises(ValueError, match="unknown global pooling mode 'average'; expected 'avg' or 'max'"):
        GlobalPool("average")
    pool = GlobalPool("max")
    with pytest.raises(ValueError, match=r"\(batch, channels, height, width\).*\(2, 3\)"):
        pool.forward(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="at least one value"):
        pool.forward(np.zeros((2, 3, 0, 4), np.float32))
    with pytest.raises(RuntimeError, match="training=True"):
        pool.backward(np.zeros((2, 3, 1, 1), np.float32))
    x = distinct((2, 3, 4, 4), np.random.default_rng(24)).astype(np.float32)
    pool.forward(x, training=True)
    dx = pool.backward(np.ones((2, 3, 1, 1), np.float32)).copy()
    pool.forward(x[:, :, ::-1], training=False)  # inference keeps nothing
    np.testing.assert_array_equal(pool.backward(np.ones((2, 3, 1, 1), np.float32)), dx)
    with pytest.raises(ValueError, match=r"\(2, 3, 1, 1\).*\(2, 3\)"):
        pool.backward(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="bias must be True or False, got 'no'"):
        Conv2D(2, 3, (3, 3), (1, 1), (0, 0, 0, 0), np.random.default_rng(0), bias="no")
