"""What a training step keeps alive: a layer keeps what its backward needs and nothing else, and the
work arrays that die within a call are shared by every layer rather than held per layer."""
from __future__ import annotations

import gc
import tracemalloc
import weakref

import numpy as np
import pytest

import netbuilder.core.layers.activation as activation_module
from netbuilder.core.layers import Activation, Conv2D, parallel
from netbuilder.core.layers.activation import ZERO_PIECE, fuse
from netbuilder.core.network import Network
from netbuilder.core.project import Project, TrainingSettings


@pytest.mark.parametrize("fused", [False, True], ids=["identity", "fused relu"])
def test_a_pass_through_activation_keeps_nothing_of_what_passes(fused):
    conv = Conv2D(2, 3, (3, 3), (1, 1), (1, 1, 1, 1), np.random.default_rng(0))
    act = Activation("relu" if fused else "identity")
    if fused:
        fuse(conv, act)
    x = np.random.default_rng(1).standard_normal((2, 2, 6, 6)).astype(np.float32)
    y = act.forward(conv.forward(x, True), True)
    owner = weakref.ref(y.base if y.base is not None else y)
    del y
    gc.collect()
    assert owner() is None  # neither the activation nor the conv holds the output for backward
    g = np.ones((2, 3, 6, 6), np.float32)
    assert act.backward(g) is g
    with pytest.raises(ValueError, match=r"shape \(2, 3, 6, 6\)"):
        act.backward(np.ones((2, 3, 5, 6), np.float32))


def test_relu_zeros_are_as_long_as_a_contiguous_run_not_the_array():
    activation_module._zero_buffers.clear()
    activation_module._zero_views.clear()
    rng = np.random.default_rng(0)
    wide = rng.standard_normal((64, 40_000)).astype(np.float32)  # a conv output (F, Ho*Wo*N)
    chunk = wide[:, 1000:9000]  # a block of its columns: strided rows, each 8,000 long
    out = np.empty_like(chunk)
    activation_module._relu(chunk, out)
    np.testing.assert_array_equal(out, np.maximum(chunk, 0))
    assert activation_module._zero_buffers[np.dtype(np.float32)].size <= 1 << 16

    big = rng.standard_normal(3 * ZERO_PIECE + 5).astype(np.float32)  # contiguous: done in pieces
    out = np.empty_like(big)
    activation_module._relu(big, out)
    np.testing.assert_array_equal(out, np.maximum(big, 0))
    assert activation_module._zero_buffers[np.dtype(np.float32)].size <= ZERO_PIECE


def _convs(depth: int) -> Project:
    blocks = [{"kind": "conv", "filters": 16, "kernel_size": 3, "stride": 1, "padding": "same",
               "activation": "relu"} for _ in range(depth)]
    blocks += [{"kind": "flatten"}, {"kind": "dense", "units": 10, "activation": "softmax"}]
    return Project(name="convs", input_shape=[16, 16, 16], num_classes=10, blocks=blocks,
                   training=TrainingSettings(batch_size=32))


def _held_after_steps(depth: int, threads: int) -> int:
    """Bytes allocated (numpy's arrays included) by building a net and training it two steps that
    are still allocated after them."""
    parallel.set_threads(threads)
    gc.collect()
    tracemalloc.start()
    try:
        net = Network(_convs(depth), rng=np.random.default_rng(0))
        x = np.random.default_rng(1).random((32, 16, 16, 16), dtype=np.float32)
        y = np.random.default_rng(2).integers(0, 10, 32)
        net.train_step(x, y)
        net.train_step(x, y)
        gc.collect()
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return held


@pytest.mark.parametrize("threads", [1, 2])
def test_each_more_conv_layer_holds_only_what_its_backward_reads(threads):
    """Two more identical conv layers cost their staged (padded) inputs, their masks and their
    weights: their error terms, padded error terms and im2col columns are work arrays shared by
    every layer, not held by each."""
    before = parallel.threads()
    try:
        _held_after_steps(6, threads)  # imports done, the shared work arrays grown to these sizes
        extra = _held_after_steps(6, threads) - _held_after_steps(4, threads)
    finally:
        parallel.set_threads(before)
    staged = 16 * 18 * 18 * 32 * 4  # (C, H + 2, W + 2, N) float32
    mask = 16 * 16 * 16 * 32  # Z > 0, a byte a value
    weights = 2 * (16 * 16 * 9 + 16) * 4  # weights and grads
    per_layer = staged + mask + weights
    assert extra <= 2 * per_layer * 1.1, f"{extra / 2:,.0f} bytes held per layer against {per_layer:,}"
