"""The splits added so that a second thread helps: same bits for any thread count, right values."""
from __future__ import annotations

import numpy as np
import pytest

from netbuilder.core.layers import Activation, Conv2D, parallel
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
