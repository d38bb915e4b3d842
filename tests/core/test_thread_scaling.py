"""The splits added so that a second thread helps: same bits for any thread count, right values."""
from __future__ import annotations

import numpy as np
import pytest

from netbuilder.core.layers import Activation, Conv2D, parallel
from netbuilder.core.layers import conv as conv_module
from netbuilder.core.layers.groups import Residual, added


@pytest.fixture
def threads():
    """Set the layer threads in a test; the count from before comes back after it."""
    before = parallel.threads()
    yield parallel.set_threads
    parallel.set_threads(before)


def batch_innermost(rng, n: int, c: int, h: int, w: int) -> np.ndarray:
    """An (N, C, H, W) view of a (C, H, W, N) array, as a convolution hands its output on."""
    return rng.standard_normal((c, h, w, n), dtype=np.float32).transpose(3, 0, 1, 2)


def test_added_is_a_plus_b_in_the_first_layout_for_any_thread_count(threads, monkeypatch):
    monkeypatch.setattr(parallel, "MIN_ELEMENTS", 1 << 10)  # small arrays are split too
    rng = np.random.default_rng(0)
    a, b = batch_innermost(rng, 8, 6, 10, 10), rng.standard_normal((8, 6, 10, 10), dtype=np.float32)
    for n in (1, 2, 3):
        threads(n)
        got = added(a, b)
        np.testing.assert_array_equal(got, a + b)
        assert got.transpose(1, 2, 3, 0).flags.c_contiguous  # a's batch-innermost layout kept


def test_added_leaves_broadcasting_and_type_promotion_to_numpy():
    a = np.ones((2, 3), np.float32)
    assert added(a, np.ones(3, np.float32)).shape == (2, 3)
    assert added(a, np.ones((2, 3), np.float64)).dtype == np.float64


def test_residual_forward_and_backward_same_bits_for_any_thread_count(threads, monkeypatch):
    monkeypatch.setattr(parallel, "MIN_ELEMENTS", 1 << 10)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 3, 12, 12), dtype=np.float32)
    g = rng.standard_normal((4, 3, 12, 12), dtype=np.float32)

    def run() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        inner = [Conv2D(3, 3, (3, 3), (1, 1), (1, 1, 1, 1), np.random.default_rng(2))]
        block = Residual(inner, activation=Activation("relu"))
        y = block.forward(x, True)
        dx = block.backward(g)
        return y, dx, inner[0].grads["weight"]

    threads(1)
    want = run()
    for n in (2, 3):
        threads(n)
        for got, w in zip(run(), want):
            np.testing.assert_array_equal(got, w)
    np.testing.assert_array_equal(want[0], np.maximum(want[0], 0))


def thin_conv_grads(bias: bool) -> tuple[Conv2D, np.ndarray, np.ndarray]:
    """A first convolution with few weights (1 channel, 6 filters 5x5: under GIL_OUTPUT), trained once."""
    rng = np.random.default_rng(3)
    layer = Conv2D(1, 6, (5, 5), (1, 1), (2, 2, 2, 2), rng, bias=bias)
    layer.needs_input_grad = False
    x = rng.standard_normal((16, 1, 20, 20), dtype=np.float32)
    g = rng.standard_normal((16, 6, 20, 20), dtype=np.float32)
    layer.forward(x, True)
    assert layer.backward(g) is None
    return layer, x, g


@pytest.mark.parametrize("bias", [True, False])
def test_thin_weight_gradient_same_bits_for_any_thread_count_and_right(threads, monkeypatch, bias):
    monkeypatch.setattr(conv_module, "CHUNK_BYTES", 1 << 12)  # many chunks, so threads share them
    monkeypatch.setattr(parallel, "MIN_ELEMENTS", 1 << 10)
    layer = Conv2D(1, 6, (5, 5), (1, 1), (2, 2, 2, 2), np.random.default_rng(0), bias=bias)
    assert (layer.in_channels * 25 + bias) * layer.filters < conv_module.GIL_OUTPUT  # the np.dot path
    threads(1)
    want, x, g = thin_conv_grads(bias)
    for n in (2, 3):
        threads(n)
        got, _, _ = thin_conv_grads(bias)
        for name in want.grads:
            np.testing.assert_array_equal(got.grads[name], want.grads[name])
    # ∂L/∂W[f, 0, i, j] = Σ δ[n, f, y, x] · x_padded[n, 0, y + i, x + j]; ∂L/∂b[f] = Σ δ[n, f]
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (2, 2), (2, 2)))
    windows = np.lib.stride_tricks.sliding_window_view(xp, (5, 5), axis=(2, 3))  # (N, 1, 20, 20, 5, 5)
    dw = np.einsum("nfyx,ncyxij->fcij", g.astype(np.float64), windows)
    np.testing.assert_allclose(want.grads["weight"], dw, rtol=1e-4, atol=1e-3)
    if bias:
        np.testing.assert_allclose(want.grads["bias"], g.astype(np.float64).sum(axis=(0, 2, 3)), rtol=1e-4, atol=1e-3)
