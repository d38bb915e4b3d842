"""Relu and leaky relu fused into the conv and dense layers, and the convolution's two input-gradient
paths (flipped kernels, one-pass col2im): against the unfused layers bit for bit, loop references,
central differences, PyTorch, any thread count, and through a network, its probe and its Step trace."""
from __future__ import annotations

import numpy as np
import pytest

import netbuilder.core.layers.conv as conv_module
import netbuilder.core.layers.dense as dense_module
from netbuilder.core.blocks import LEAKY_RELU_SLOPE
from netbuilder.core.layers import Activation, Conv2D, Dense, Flatten, Layer, parallel
from netbuilder.core.layers.activation import fuse
from netbuilder.core.network import Network
from netbuilder.core.project import Project, TrainingSettings
from netbuilder.core.step_trace import StepRecorder
from tests.core import naive
from tests.core.gradcheck import check_layer
from tests.core.test_layers import CONV_CASES

# (input shape, filters, kernel, stride, pads): stride 1 and 2, padded and not, 1x1 kernels,
# fewer filters than channels (flipped kernels at stride 1) and more (col2im).
CASES = [
    ((2, 3, 7, 8), 2, (3, 3), (1, 1), (1, 1, 1, 1)),
    ((2, 2, 7, 8), 4, (3, 3), (1, 1), (0, 0, 0, 0)),
    ((2, 3, 9, 9), 4, (3, 3), (2, 2), (1, 1, 1, 1)),
    ((2, 2, 8, 9), 3, (2, 2), (2, 2), (0, 0, 0, 0)),
    ((2, 4, 6, 5), 3, (1, 1), (1, 1), (0, 0, 0, 0)),
    ((2, 2, 6, 5), 3, (1, 1), (2, 2), (0, 0, 0, 0)),
    ((2, 3, 6, 6), 3, (1, 1), (1, 1), (1, 1, 1, 1)),  # pads wider than the kernel less one
    ((1, 2, 11, 10), 3, (5, 5), (2, 2), (2, 2, 2, 2)),  # a chunk's rows reach two chunks on
    ((1, 2, 9, 11), 2, (5, 2), (1, 3), (2, 0, 0, 1)),
]
ACTS = ["relu", "leaky_relu"]


def conv_pair(case, act, dtype=np.float64, seed=0):
    """(fused conv, its pass-through activation), (plain conv, plain activation): the same weights."""
    shape, filters, kernel, stride, pads = case
    layers = []
    for _ in range(2):
        rng = np.random.default_rng(seed)
        conv = Conv2D(shape[1], filters, kernel, stride, pads, rng, dtype=dtype)
        conv.params["bias"][:] = rng.standard_normal(filters)
        layers.append((conv, Activation(act)))
    fuse(*layers[0])
    return layers


def run(layers, x, g, input_grad=True):
    layers[0].needs_input_grad = input_grad
    y = x
    for layer in layers:
        y = layer.forward(y, training=True)
    for layer in reversed(layers):
        g = layer.backward(g)
    return [np.array(y), None if g is None else np.array(g)] + [np.array(v) for v in layers[0].grads.values()]


class Pair(Layer):
    """A fused layer and its activation as one layer, for the central-difference check."""

    def __init__(self, layer, act):
        super().__init__()
        self.layers = [layer, act]
        self.params, self.grads = layer.params, layer.grads

    def forward(self, x, training=False):
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    def backward(self, g):
        for layer in reversed(self.layers):
            g = layer.backward(g)
        self.grads = self.layers[0].grads
        return g


# ---------------------------------------------------------------- convolution

@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("chunk", [conv_module.CHUNK_BYTES, 1])
def test_fused_conv_is_conv_then_activation_bit_for_bit(case, act, chunk, monkeypatch):
    monkeypatch.setattr(conv_module, "CHUNK_BYTES", chunk)  # 1: one output row a chunk
    (fc, fa), (pc, pa) = conv_pair(case, act, np.float32)
    assert fc.fused_activation == act and fa.applied_by is fc and pc.fused_activation is None
    rng = np.random.default_rng(1)
    x = rng.standard_normal(case[0]).astype(np.float32)
    g = rng.standard_normal(pc.forward(x).shape).astype(np.float32)
    for input_grad in (True, False):
        for got, want in zip(run([fc, fa], x, g, input_grad), run([pc, pa], x, g, input_grad)):
            if want is None:
                assert got is None
            else:
                np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(fa.forward(fc.forward(x)), pa.forward(pc.forward(x)))  # inference


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("case", CASES)
def test_fused_conv_matches_loop_reference(case, act):
    (conv, a), _ = conv_pair(case, act)
    rng = np.random.default_rng(2)
    x = rng.standard_normal(case[0])
    w, b = conv.params["weight"], conv.params["bias"]
    z = naive.conv_forward(x, w, b, case[3], case[4])
    slope = 0.0 if act == "relu" else LEAKY_RELU_SLOPE
    y = a.forward(conv.forward(x, training=True), training=True)
    np.testing.assert_allclose(y, np.where(z > 0, z, slope * z), rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(y.shape)
    dx = conv.backward(a.backward(g))
    dx_want, dw_want, db_want = naive.conv_backward(x, w, case[3], case[4], np.where(z > 0, g, slope * g))
    np.testing.assert_allclose(dx, dx_want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv.grads["weight"], dw_want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv.grads["bias"], db_want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("case", "flipped"), [(c, False) for c in CONV_CASES + CASES] +
                         [(c, True) for c in CONV_CASES + CASES if c[3] == (1, 1)])
def test_both_input_gradient_paths_match_the_loop_reference(case, flipped, monkeypatch):
    """Stride 1 takes the flipped kernels or col2im by the filter count; each is checked on every
    stride-1 case (col2im on every case), with one output row a chunk and channel groups of one."""
    monkeypatch.setattr(conv_module, "flipped_input_grad", lambda conv: flipped)
    monkeypatch.setattr(conv_module, "CHUNK_BYTES", 1)
    monkeypatch.setattr(conv_module, "COL2IM_GROUPS", 8)  # with COL2IM_ADD 1: a group for each channel
    monkeypatch.setattr(conv_module, "COL2IM_ADD", 1)
    monkeypatch.setattr(conv_module, "COL2IM_CHUNKS", 1)  # and (CHUNK_BYTES 1) a chunk for each output row
    rng = np.random.default_rng(3)
    shape, filters, kernel, stride, pads = case
    conv = Conv2D(shape[1], filters, kernel, stride, pads, rng, dtype=np.float64)
    x = rng.standard_normal(shape)
    g = rng.standard_normal(conv.forward(x, training=True).shape)
    dx = conv.backward(g)
    plan = next(iter(conv._plans.values()))
    assert len(plan.groups) - 1 == shape[1] and plan.col2im_bounds == list(range(len(plan.col2im_bounds)))
    want, _, _ = naive.conv_backward(x, conv.params["weight"], stride, pads, g)
    np.testing.assert_allclose(dx, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("case", [CASES[0], CASES[1], CASES[2], CASES[4], CASES[5], CASES[7]])
def test_fused_conv_gradients_match_central_differences(case, act):
    (conv, a), _ = conv_pair(case, act, seed=4)
    rng = np.random.default_rng(5)
    errors = check_layer(Pair(conv, a), rng.standard_normal(case[0]), rng)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("case", [CASES[0], CASES[2], CASES[4], CASES[6]])
def test_fused_conv_matches_torch_in_float32(case, act):
    import torch  # the reference; CI installs torch==2.13.0, so its absence must fail, not skip
    F = torch.nn.functional
    (conv, a), _ = conv_pair(case, act, np.float32, seed=6)
    rng = np.random.default_rng(7)
    x = rng.standard_normal(case[0]).astype(np.float32)
    y = a.forward(conv.forward(x, training=True), training=True)
    g = rng.standard_normal(y.shape).astype(np.float32)
    dx = conv.backward(a.backward(g))
    t, b, l, r = case[4]
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(conv.params["weight"], requires_grad=True)
    bt = torch.tensor(conv.params["bias"], requires_grad=True)
    zt = F.conv2d(F.pad(xt, (l, r, t, b)), wt, bt, stride=case[3])
    yt = F.relu(zt) if act == "relu" else F.leaky_relu(zt, LEAKY_RELU_SLOPE)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(conv.grads["weight"], wt.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(conv.grads["bias"], bt.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_an_inference_forward_between_forward_and_backward_changes_nothing():
    """Backward makes the input's columns again from the staged input: an inference forward of the
    same shape in between (a probe) must stage elsewhere."""
    (conv, a), _ = conv_pair(CASES[0], "relu")
    rng = np.random.default_rng(8)
    x, other = rng.standard_normal((2,) + CASES[0][0])
    g = rng.standard_normal(conv.forward(x).shape)
    want = run([conv, a], x, g)
    a.forward(conv.forward(x, training=True), training=True)
    a.forward(conv.forward(other))
    got = [conv.backward(a.backward(g))] + [np.array(v) for v in conv.grads.values()]
    for u, v in zip(got, want[1:]):
        np.testing.assert_array_equal(u, v)


# ---------------------------------------------------------------- dense

@pytest.mark.parametrize("act", ACTS)
def test_fused_dense_is_dense_then_activation_bit_for_bit_and_matches_differences_and_torch(act):
    import torch  # the reference; CI installs torch==2.13.0, so its absence must fail, not skip
    pairs = []
    for _ in range(2):
        rng = np.random.default_rng(9)
        dense = Dense(7, 5, rng, dtype=np.float64)
        dense.params["bias"][:] = rng.standard_normal(5)
        pairs.append((dense, Activation(act)))
    fuse(*pairs[0])
    rng = np.random.default_rng(10)
    x, g = rng.standard_normal((6, 7)), rng.standard_normal((6, 5))
    for got, want in zip(run(list(pairs[0]), x, g), run(list(pairs[1]), x, g)):
        np.testing.assert_array_equal(got, want)
    errors = check_layer(Pair(*pairs[0]), x, rng)
    assert max(errors.values()) < 1e-6, errors

    dense, a = pairs[0]
    x32, g32 = x.astype(np.float32), g.astype(np.float32)
    f32 = Dense(7, 5, np.random.default_rng(0))
    for k in f32.params:
        f32.params[k][...] = dense.params[k]
    a32 = Activation(act)
    fuse(f32, a32)
    y = a32.forward(f32.forward(x32, True), True)
    dx = f32.backward(a32.backward(g32))
    F = torch.nn.functional
    xt = torch.tensor(x32, requires_grad=True)
    wt, bt = (torch.tensor(f32.params[k], requires_grad=True) for k in ("weight", "bias"))
    zt = F.linear(xt, wt, bt)
    yt = F.relu(zt) if act == "relu" else F.leaky_relu(zt, LEAKY_RELU_SLOPE)
    yt.backward(torch.tensor(g32))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(f32.grads["weight"], wt.grad.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(f32.grads["bias"], bt.grad.numpy(), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- threads

def fused_everything(seed: int) -> list[np.ndarray]:
    """Every new path at sizes that cut the work into many pieces: flipped kernels, col2im at
    stride 1 and 2 (overlapping windows), fused relu and leaky relu in conv and dense."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((6, 4, 12, 10)).astype(np.float32)
    specs = [(4, 3, (3, 3), (1, 1), (1, 1, 1, 1), "relu"),  # flipped
             (3, 5, (3, 3), (1, 1), (1, 1, 1, 1), "leaky_relu"),  # col2im, stride 1
             (5, 4, (5, 5), (2, 2), (2, 2, 2, 2), "relu")]  # col2im, stride 2
    layers: list = []
    for c, f, k, s, p, act in specs:
        conv, a = Conv2D(c, f, k, s, p, rng), Activation(act)
        fuse(conv, a)
        layers += [conv, a]
    dense, a = Dense(4 * 6 * 5, 7, rng), Activation("leaky_relu")
    fuse(dense, a)
    layers += [Flatten(), dense, a]
    h, outs = x, []
    for layer in layers:
        h = layer.forward(h, training=True)
        outs.append(np.array(h))
    g = np.ones_like(h)
    for layer in reversed(layers):
        g = layer.backward(g)
        outs.append(np.array(g))
    return outs + [np.array(v) for layer in layers for v in layer.grads.values()]


@pytest.mark.parametrize("chunk", [256, 4096])  # a chunk a block, or several chunks a block
def test_fused_and_new_paths_are_bitwise_identical_for_any_thread_count(chunk, monkeypatch):
    before = parallel.threads()
    monkeypatch.setattr(parallel, "MIN_ELEMENTS", 1)  # share even tiny jobs
    monkeypatch.setattr(conv_module, "CHUNK_BYTES", chunk)  # many row chunks
    monkeypatch.setattr(dense_module, "SPLIT_MACS", 1)
    try:
        parallel.set_threads(1)
        want = fused_everything(11)
        for n in (2, 3, 4):
            parallel.set_threads(n)
            for got, w in zip(fused_everything(11), want):
                np.testing.assert_array_equal(got, w)
    finally:
        parallel.set_threads(before)


# ---------------------------------------------------------------- through a network

def project(act: str) -> Project:
    blocks = [{"kind": "conv", "filters": 4, "kernel_size": 3, "padding": "same", "activation": act},
              {"kind": "conv", "filters": 3, "kernel_size": 3, "stride": 2, "activation": act},
              {"kind": "dense", "units": 6, "activation": act},
              {"kind": "dense", "units": 3, "activation": "softmax"}]
    return Project(name="fused", input_shape=(2, 8, 8), num_classes=3, blocks=blocks,
                   training=TrainingSettings(optimizer="sgd", learning_rate=0.1, batch_size=4, seed=1))


def unfuse(network: Network) -> None:
    """The network as it was before fusion: each layer's activation applied by its own layer."""
    for layer in network.layers:
        if isinstance(layer, Activation) and layer.applied_by is not None:
            layer.applied_by.fused_activation = None
            layer.applied_by = None


@pytest.mark.parametrize("act", ACTS)
def test_a_network_fuses_its_blocks_and_nothing_observable_changes(act):
    fused, plain = Network(project(act)), Network(project(act))
    unfuse(plain)
    kinds = [(type(a).__name__, type(b).__name__) for a, b in zip(fused.layers, plain.layers)]
    assert kinds == [(type(b).__name__,) * 2 for b in plain.layers]  # the same layers, in order
    weighted = [layer for layer in fused.layers if isinstance(layer, (Conv2D, Dense))]
    assert [layer.fused_activation for layer in weighted] == [act, act, act, None]  # softmax stays apart
    assert list(fused.state_dict()) == list(plain.state_dict())
    rng = np.random.default_rng(12)
    x, y = rng.standard_normal((4, 2, 8, 8)).astype(np.float32), np.array([0, 1, 2, 1])
    for (sa, a), (sb, b) in zip(fused.forward_stages(x), plain.forward_stages(x)):  # the probe's view
        assert sa.path == sb.path
        np.testing.assert_array_equal(a, b)

    traces = []
    for net in (fused, plain):
        with StepRecorder(net, keep_arrays=True) as recorder:
            loss, _ = net.train_step(x, y, input_grad=True)
        traces.append(recorder.trace(epoch=1, batch=1, batches_per_epoch=1, loss=loss, optimizer=_Opt()))
        assert all(getattr(layer, "record", None) is None for layer in net.layers)  # asked for one step only
    for a, b in zip(traces[0].blocks, traces[1].blocks):
        assert (a.path, a.formula, a.delta_of, list(a.tensors)) == (b.path, b.formula, b.delta_of, list(b.tensors))
        for key in a.arrays:
            np.testing.assert_array_equal(a.arrays[key], b.arrays[key])
    conv = traces[0].block("conv1")
    assert set(conv.tensors) == {"a_prev", "z", "a", "delta"} and f"{act}(Z)" in conv.formula
    below = conv.arrays["delta"][conv.arrays["z"] <= 0]
    assert below.size and (np.any(below != 0) if act == "leaky_relu" else np.all(below == 0))
    np.testing.assert_array_equal(fused.input_grad, plain.input_grad)
    for k, v in plain.gradients().items():
        np.testing.assert_array_equal(fused.gradients()[k], v)


class _Opt:
    lr, steps = 0.1, 1
