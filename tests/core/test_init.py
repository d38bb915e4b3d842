"""Weight initialisation: distributions, determinism, dtype."""
from __future__ import annotations

import numpy as np
import pytest

from netbuilder.core.init import init_weight, scheme_for


def test_he_is_normal_with_std_sqrt_2_over_fan_in():
    w = init_weight((256, 64, 3, 3), 64 * 9, 256 * 9, "he", np.random.default_rng(0), np.float32)
    assert w.shape == (256, 64, 3, 3) and w.dtype == np.float32
    assert abs(w.mean()) < 0.002
    assert w.std() == pytest.approx(np.sqrt(2 / 576), rel=0.01)


def test_glorot_is_uniform_within_its_limit():
    limit = np.sqrt(6 / (300 + 100))
    w = init_weight((100, 300), 300, 100, "glorot", np.random.default_rng(0), np.float64)
    assert w.dtype == np.float64
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.99 * limit
    assert w.std() == pytest.approx(limit / np.sqrt(3), rel=0.02)


def test_same_seed_same_weights_in_either_dtype():
    a = init_weight((4, 5), 5, 4, "he", np.random.default_rng(7), np.float32)
    b = init_weight((4, 5), 5, 4, "he", np.random.default_rng(7), np.float32)
    c = init_weight((4, 5), 5, 4, "he", np.random.default_rng(7), np.float64)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c.astype(np.float32))


def test_scheme_for_activation():
    assert scheme_for("relu") == scheme_for("leaky_relu") == "he"
    for name in ("sigmoid", "tanh", "identity", "softmax"):
        assert scheme_for(name) == "glorot"


def test_bad_arguments_are_named():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="'lecun'"):
        init_weight((2, 2), 2, 2, "lecun", rng)
    with pytest.raises(ValueError, match="fan_in=0"):
        init_weight((2, 2), 0, 2, "he", rng)
