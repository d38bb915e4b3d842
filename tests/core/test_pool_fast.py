"""Pooling's blocked and phase-split paths: 2x2 / stride 2 and 3x3 / stride 2 (odd sizes, padding,
ties) against loops, central differences and PyTorch, and the same bits for any thread count,
block size and memory layout."""
from __future__ import annotations

import numpy as np
import pytest

from netbuilder.core.layers import Pool2D, parallel
from netbuilder.core.layers import pool as pool_module
from tests.core import naive
from tests.core.gradcheck import check_layer

MODES = ["max", "average", "sum"]
# (N, C, H, W), window, stride, pads (top, bottom, left, right)
CASES = [
    ((2, 3, 8, 8), (2, 2), (2, 2), (0, 0, 0, 0)),
    ((3, 2, 9, 7), (2, 2), (2, 2), (0, 0, 0, 0)),  # odd sizes: the last row and column are left out
    ((2, 2, 7, 9), (2, 2), (2, 2), (1, 0, 0, 1)),  # padded on one side only
    ((2, 3, 9, 9), (3, 3), (2, 2), (0, 0, 0, 0)),  # overlapping windows
    ((2, 2, 8, 8), (3, 3), (2, 2), (1, 1, 1, 1)),  # the common ResNet stem pooling
    ((3, 2, 7, 10), (3, 3), (2, 2), (1, 1, 1, 1)),
    ((2, 2, 6, 6), (3, 3), (1, 1), (1, 1, 1, 1)),  # stride 1: one phase
]
IDS = [f"{s[2]}x{s[3]}-k{k[0]}{k[1]}-s{st[0]}-p{''.join(map(str, p))}" for s, k, st, p in CASES]


def distinct(shape, rng):
    """Values far apart relative to a finite-difference step: no max ties."""
    return rng.permutation(np.arange(np.prod(shape), dtype=np.float64)).reshape(shape) * 0.01 - 1


def tied(shape, rng, dtype=np.float64):
    """Small integers after a relu: most windows hold their maximum more than once (zeros above all)."""
    return np.maximum(rng.integers(-2, 3, shape), 0).astype(dtype)


def batch_innermost(x):
    """``x`` stored (C, H, W, N) as a convolution hands it over, seen as NCHW."""
    return np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_pool_matches_loops_with_distinct_and_tied_values(mode, case):
    shape, size, stride, pads = case
    rng = np.random.default_rng(1)
    for x in (distinct(shape, rng), tied(shape, rng)):
        pool = Pool2D(mode, size, stride, pads, dtype=np.float64)
        y = pool.forward(batch_innermost(x), training=True)
        np.testing.assert_allclose(y, naive.pool_forward(x, mode, size, stride, pads), rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(pool.forward(x, training=False), y)  # inference: the same values
        g = rng.standard_normal(y.shape)
        np.testing.assert_allclose(pool.backward(g), naive.pool_backward(x, mode, size, stride, pads, g),
                                   rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_pool_gradients_match_central_differences(mode, case):
    shape, size, stride, pads = case
    rng = np.random.default_rng(2)
    pool = Pool2D(mode, size, stride, pads, dtype=np.float64)
    errors = check_layer(pool, distinct(shape, rng), rng)
    assert errors["input"] < 1e-7, errors


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_max_pool_ties_and_values_agree_with_torch(case):
    import torch  # the reference; CI installs torch==2.13.0, so its absence must fail, not skip
    F = torch.nn.functional
    shape, size, stride, pads = case
    rng = np.random.default_rng(3)
    for x in (tied(shape, rng, np.float32), rng.standard_normal(shape).astype(np.float32)):
        pool = Pool2D("max", size, stride, pads)
        y = pool.forward(batch_innermost(x), training=True)
        g = (np.arange(y.size, dtype=np.float32).reshape(y.shape) % 7) + 1  # which element won shows
        dx = pool.backward(g)
        t, b, l, r = pads
        xt = torch.tensor(x, requires_grad=True)
        yt = F.max_pool2d(F.pad(xt, (l, r, t, b), value=float("-inf")), size, stride)
        yt.backward(torch.tensor(g))
        np.testing.assert_array_equal(y, yt.detach().numpy())
        np.testing.assert_array_equal(dx, xt.grad.numpy())


def test_max_pool_keeps_one_byte_per_output_for_backward():
    pool = Pool2D("max", (3, 3), (2, 2), (1, 1, 1, 1))
    y = pool.forward(np.zeros((4, 3, 16, 16), np.float32), training=True)
    kept = [a for a in pool._saved if isinstance(a, np.ndarray)]
    assert [(a.dtype, a.shape) for a in kept] == [(np.dtype(np.uint8), (3, 8, 8, 4))]
    assert y.shape == (4, 3, 8, 8)
    pool.forward(np.zeros((4, 3, 16, 16), np.float32), training=False)  # inference keeps nothing new
    assert pool._saved[2].shape == (3, 8, 8, 4)


def run_all(seed: int, layout) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    outs = []
    for mode in MODES:
        for shape, size, stride, pads in CASES:
            n, c, h, w = shape
            shape = (n, 3 * c, h, w)  # more channels, to share out
            x = layout(tied(shape, rng, np.float32) + rng.integers(0, 2, shape).astype(np.float32) * 0.5)
            pool = Pool2D(mode, size, stride, pads)
            y = pool.forward(x, training=True)
            g = rng.standard_normal(y.shape).astype(np.float32)
            outs += [np.array(y), np.array(pool.backward(g)), np.array(pool.forward(x, training=False))]
    return outs


def test_pool_gives_the_same_bits_for_any_threads_blocks_and_layout(monkeypatch):
    before = parallel.threads()
    try:
        parallel.set_threads(1)
        want = run_all(4, batch_innermost)
        np.testing.assert_equal(run_all(4, lambda x: x), want)  # plain NCHW input: the same bits
        monkeypatch.setattr(parallel, "MIN_ELEMENTS", 1)  # share even tiny jobs
        for threads, block in ((2, 1 << 30), (3, 64), (2, 2000)):  # one block per thread, then many
            monkeypatch.setattr(pool_module, "BLOCK_BYTES", block)
            parallel.set_threads(threads)
            got = run_all(4, batch_innermost)
            for a, b in zip(got, want):
                np.testing.assert_array_equal(a, b)
    finally:
        parallel.set_threads(before)
