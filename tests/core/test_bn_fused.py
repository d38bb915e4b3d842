"""BatchNorm with its relu / leaky relu applied by the normalisation itself (no pass of its own): the
same bits as the separate layers, central differences, PyTorch, the Step view's Z and δ, and the
same bits for any thread count."""
from __future__ import annotations

import numpy as np
import pytest

from netbuilder.core.layers import Activation, parallel
from netbuilder.core.layers import batchnorm as batchnorm_module
from netbuilder.core.layers.activation import fuse
from netbuilder.core.layers.batchnorm import BatchNorm
from netbuilder.core.network import Network
from netbuilder.core.project import Project, TrainingSettings
from netbuilder.core.step_trace import StepRecorder
from tests.core.gradcheck import check_layer

FUSED = ["relu", "leaky_relu"]


def layouts(x):
    """``x`` as NCHW, batch-innermost (from a convolution) and channel-major."""
    yield x
    if x.ndim == 4:
        yield np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
        yield np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)


def pair(c, act, dtype=np.float64, seed=0):
    """A fused batchnorm + activation and the same two layers apart, with equal non-trivial parameters."""
    rng = np.random.default_rng(seed)
    fused, apart = (BatchNorm(c, momentum=0.2, dtype=dtype), Activation(act)), (BatchNorm(c, momentum=0.2,
                                                                                      dtype=dtype), Activation(act))
    fuse(*fused)
    w, b = rng.standard_normal(c), rng.standard_normal(c) * 0.5
    for bn, _ in (fused, apart):
        bn.params["weight"][:], bn.params["bias"][:] = w, b
    return fused, apart


def step(layers, x, g, training=True):
    for layer in layers:
        x = layer.forward(x, training)
    if not training:
        return [np.array(x)]
    y = np.array(x)
    for layer in reversed(layers):
        g = layer.backward(g)
    return [y, np.array(g), *(np.array(v) for v in layers[0].grads.values()),
            *(np.array(v) for v in layers[0].buffers.values())]


@pytest.mark.parametrize("act", FUSED)
@pytest.mark.parametrize("shape", [(6, 3, 5, 4), (7, 4), (1, 2, 3, 3)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_gives_the_bits_of_the_separate_layers(act, shape, dtype):
    rng = np.random.default_rng(1)
    base = (rng.standard_normal(shape) * 2 + 0.3).astype(dtype)
    for x in layouts(base):
        fused, apart = pair(shape[1], act, dtype)
        g = rng.standard_normal(shape).astype(dtype)
        for frozen in (False, True):
            fused[0].frozen = apart[0].frozen = frozen
            for a, b in zip(step(fused, x, g), step(apart, x, g)):
                np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(step(fused, x, g, False)[0], step(apart, x, g, False)[0])
        fused[0].needs_input_grad = apart[0].needs_input_grad = False
        fused[0].forward(x, True)
        assert fused[0].backward(fused[1].backward(g)) is None


@pytest.mark.parametrize("act", FUSED)
@pytest.mark.parametrize("shape", [(5, 3, 4, 3), (9, 4)])
def test_fused_gradients_match_central_differences(act, shape):
    rng = np.random.default_rng(2)
    bn = BatchNorm(shape[1], dtype=np.float64)
    bn.params["weight"][:] = rng.standard_normal(shape[1])
    bn.params["bias"][:] = rng.standard_normal(shape[1]) * 0.3
    fuse(bn, Activation(act))  # the batchnorm layer alone now computes act(BN(x))
    x = np.ascontiguousarray(rng.permutation(np.arange(np.prod(shape))).reshape(shape) * 0.05 - 0.4)
    errors = check_layer(bn, x, rng)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("act", FUSED)
def test_fused_matches_torch_batchnorm_and_activation_in_training(act):
    import torch  # the reference; CI installs torch==2.13.0, so its absence must fail, not skip
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 3, 5, 5)).astype(np.float32) * 2 + 1
    g = rng.standard_normal(x.shape).astype(np.float32)
    (bn, a), _ = pair(3, act, np.float32)
    y = a.forward(bn.forward(next(layouts(x)), True), True)
    dx = bn.backward(a.backward(g))
    tbn = torch.nn.BatchNorm2d(3, momentum=0.2)
    with torch.no_grad():
        tbn.weight[:] = torch.tensor(bn.params["weight"])
        tbn.bias[:] = torch.tensor(bn.params["bias"])
    xt = torch.tensor(x, requires_grad=True)
    f = torch.relu if act == "relu" else (lambda t: torch.nn.functional.leaky_relu(t, 0.01))
    yt = f(tbn(xt))
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.grads["weight"], tbn.weight.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.grads["bias"], tbn.bias.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.buffers["running_var"], tbn.running_var.numpy(), rtol=1e-5)


def bn_net(act, fused: bool) -> Network:
    project = Project(name="bn", input_shape=(2, 6, 6), num_classes=3, blocks=[
        {"kind": "conv", "filters": 4, "kernel_size": 3, "padding": "same", "activation": "identity", "bias": False},
        {"kind": "batchnorm", "activation": act},
        {"kind": "pool", "mode": "max", "size": 2},
        {"kind": "dense", "units": 3, "activation": "softmax"}], training=TrainingSettings(seed=4))
    net = Network(project)
    if not fused:  # the separate layers, as before fusion
        bn, activation = net.stages[1].layers
        bn.fused_activation, activation.applied_by = None, None
    return net


@pytest.mark.parametrize("act", FUSED)
def test_the_step_trace_shows_z_a_and_delta_of_the_fused_block_as_apart(act):
    rng = np.random.default_rng(5)
    x, labels = rng.random((8, 2, 6, 6), dtype=np.float32), rng.integers(0, 3, 8)
    traces = []
    for fused in (True, False):
        net = bn_net(act, fused)
        assert (net.stages[1].layers[0].fused_activation == act) is fused
        with StepRecorder(net, keep_arrays=True) as recorder:
            net.train_step(x, labels)
        block = recorder.trace(epoch=1, batch=1, batches_per_epoch=1, loss=0.0, optimizer=_Optimizer()).block(
            "batchnorm1")
        traces.append(block)
        assert net.stages[1].layers[0].record is None  # the recorder's dict is taken back
    fused, apart = traces
    assert fused.formula == apart.formula and f"a^[l] = {act}(Z)" in fused.formula
    for key in ("a_prev", "z", "a", "delta"):
        np.testing.assert_array_equal(fused.arrays[key], apart.arrays[key], err_msg=key)
    z, a, delta = (fused.arrays[k] for k in ("z", "a", "delta"))
    assert (z < 0).any() and not np.array_equal(z, a)  # Z is before the activation
    # δ = ∂L/∂Z: zero where Z <= 0 for relu; for leaky relu the slope lets some through
    assert np.all(delta[z <= 0] == 0) if act == "relu" else np.any(delta[z <= 0] != 0)


class _Optimizer:
    lr, steps = 0.1, 1


def test_fused_batchnorm_gives_the_same_bits_for_any_thread_count(monkeypatch):
    def run():
        out = []
        for act in FUSED:
            rng = np.random.default_rng(6)
            x = list(layouts(rng.standard_normal((16, 12, 9, 7)).astype(np.float32)))[1]  # batch-innermost
            g = rng.standard_normal(x.shape).astype(np.float32)
            out += step(pair(12, act, np.float32)[0], x, g) + step(pair(12, act, np.float32)[0], x, g, False)
            out += step(pair(12, act, np.float32)[1][:1], x[:, :, 0, 0].copy(), g[:, :, 0, 0].copy())
        return out

    before = parallel.threads()
    monkeypatch.setattr(batchnorm_module, "BLOCK_BYTES", 3000)  # many blocks of channels
    try:
        parallel.set_threads(1)
        want = run()
        monkeypatch.setattr(parallel, "MIN_ELEMENTS", 1)  # share even tiny jobs
        for n in (2, 3):
            parallel.set_threads(n)
            for a, b in zip(run(), want):
                np.testing.assert_array_equal(a, b)
    finally:
        parallel.set_threads(before)
