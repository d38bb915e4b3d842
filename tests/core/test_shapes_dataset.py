"""The built-in generated shapes dataset: layout, determinism, balance, difficulty, spec errors."""
from __future__ import annotations

import numpy as np
import pytest

from netbuilder.core.datasets import DatasetError, load_dataset
from netbuilder.core.datasets.shapes import CLASS_NAMES, DEFAULTS, MAX_SIZE, generate, parse_spec, shapes_dataset


def test_default_spec_gives_the_documented_sizes_and_layout():
    d = load_dataset({"kind": "shapes"})
    assert d.name == "shapes"
    assert d.x_train.shape == (DEFAULTS["train_size"], 1, 28, 28)
    assert d.x_test.shape == (DEFAULTS["test_size"], 1, 28, 28)
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64
    assert d.input_shape == (1, 28, 28) and d.num_classes == 10
    assert d.class_names == list(CLASS_NAMES) and len(set(CLASS_NAMES)) == 10
    for x in (d.x_train, d.x_test):
        assert x.min() >= 0.0 and x.max() <= 1.0
        assert x.min() < 0.05 and x.max() > 0.95  # the range is actually used
    assert np.bincount(d.y_train).tolist() == [1200] * 10
    assert np.bincount(d.y_test).tolist() == [200] * 10


@pytest.mark.parametrize("n", [1, 9, 10, 1003])
def test_classes_are_balanced_to_within_one(n):
    _, y = generate(n, np.random.default_rng(0))
    counts = np.bincount(y, minlength=10)
    assert counts.sum() == n and counts.max() - counts.min() <= 1


def test_labels_are_shuffled_not_grouped():
    _, y = generate(200, np.random.default_rng(0))
    assert np.count_nonzero(np.diff(y)) > 100


def test_same_seed_gives_identical_arrays_and_different_seeds_differ():
    a = generate(300, np.random.default_rng(5), 0.1)
    b = generate(300, np.random.default_rng(5), 0.1)
    c = generate(300, np.random.default_rng(6), 0.1)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1]) and not np.array_equal(a[0], c[0])


def test_same_spec_is_identical_even_after_the_cache_is_cleared():
    first = shapes_dataset(200, 50, 11, 0.1)
    x, y, xt = first.x_train.copy(), first.y_train.copy(), first.x_test.copy()
    shapes_dataset.cache_clear()
    again = shapes_dataset(200, 50, 11, 0.1)
    assert again is not first
    assert np.array_equal(again.x_train, x) and np.array_equal(again.y_train, y)
    assert np.array_equal(again.x_test, xt)


def test_loads_are_cached_and_the_shared_arrays_are_read_only():
    spec = {"train_size": 120, "test_size": 30, "seed": 2}
    d = load_dataset(spec)
    assert load_dataset(dict(spec)) is d
    for a in (d.x_train, d.y_train, d.x_test, d.y_test):
        with pytest.raises(ValueError, match="read-only"):
            a[0] = 0


def test_test_set_does_not_depend_on_train_size():
    small = shapes_dataset(100, 40, 9, 0.1)
    large = shapes_dataset(300, 40, 9, 0.1)
    assert np.array_equal(small.x_test, large.x_test) and np.array_equal(small.y_test, large.y_test)
    assert not np.array_equal(small.x_train[:100], large.x_train[:100])  # a different draw, not a prefix


def test_zero_test_size_gives_no_test_split():
    d = load_dataset({"train_size": 20, "test_size": 0})
    assert d.x_test is None and d.y_test is None


def test_noise_setting_adds_that_much_noise_to_the_same_shapes():
    clean, y_clean = generate(400, np.random.default_rng(3), 0.0)
    noisy, y_noisy = generate(400, np.random.default_rng(3), 0.1)
    assert np.array_equal(y_clean, y_noisy)
    diff = (noisy - clean)[(clean > 0.3) & (clean < 0.7)]  # 3 sigma away from clipping
    assert abs(diff.mean()) < 0.005 and 0.095 < diff.std() < 0.105


def test_every_clean_image_shows_a_shape_inside_the_frame():
    x, _ = generate(500, np.random.default_rng(4), 0.0)
    x = x[:, 0]
    lo, hi = x.min(axis=(1, 2)), x.max(axis=(1, 2))
    assert np.all(hi - lo > 0.25)  # contrast between shape and background
    inked = x > (lo + 0.5 * (hi - lo))[:, None, None]
    assert np.all(inked.sum(axis=(1, 2)) >= 25)
    assert np.all(inked.sum(axis=(1, 2)) < 0.75 * 28 * 28)


def test_classes_differ_in_their_average_image():
    x, y = generate(2000, np.random.default_rng(8), 0.1)
    means = np.stack([x[y == k, 0].mean(axis=0) for k in range(10)])
    gaps = np.abs(means[:, None] - means[None]).mean(axis=(2, 3))
    assert np.all(gaps[~np.eye(10, dtype=bool)] > 0.01)


def test_a_linear_classifier_on_raw_pixels_does_clearly_worse_than_perfect():
    # Ridge-regression onto one-hot labels: a closed-form linear classifier. It should beat
    # chance by far (the images carry the label) yet stay far from what a CNN reaches (~97%).
    d = shapes_dataset(3000, 1000, 21, 0.1)
    def features(x):
        return np.hstack([x.reshape(len(x), -1).astype(np.float64), np.ones((len(x), 1))])
    a, b = features(d.x_train), features(d.x_test)
    w = np.linalg.solve(a.T @ a + 1.0 * np.eye(a.shape[1]), a.T @ np.eye(10)[d.y_train])
    accuracy = np.mean((b @ w).argmax(axis=1) == d.y_test)
    assert 0.3 < accuracy < 0.8


@pytest.mark.parametrize(
    "spec, words",
    [
        ({"train_size": -5}, ["train_size", ">= 1", "-5"]),
        ({"train_size": 0}, ["train_size", ">= 1", "got 0"]),
        ({"test_size": -1}, ["test_size", ">= 0", "-1"]),
        ({"train_size": 12.5}, ["train_size", "integer", "12.5"]),
        ({"train_size": "100"}, ["train_size", "'100'"]),
        ({"test_size": True}, ["test_size", "True"]),
        ({"train_size": MAX_SIZE + 1}, ["train_size", "at most", str(MAX_SIZE + 1)]),
        ({"seed": -3}, ["seed", "-3"]),
        ({"seed": None}, ["seed", "None"]),
        ({"noise": 1.5}, ["noise", "[0, 1]", "1.5"]),
        ({"noise": -0.1}, ["noise", "-0.1"]),
        ({"noise": float("nan")}, ["noise", "nan"]),
        ({"noise": "low"}, ["noise", "'low'"]),
        ({"train_sise": 100}, ["unknown key", "'train_sise'", "100", "train_size"]),
    ],
)
def test_bad_specs_are_rejected_naming_the_key_and_value(spec, words):
    with pytest.raises(DatasetError) as err:
        load_dataset({"kind": "shapes", **spec})
    for word in words:
        assert word in str(err.value)


def test_parse_spec_fills_defaults_and_normalises_types():
    assert parse_spec({}) == DEFAULTS
    assert parse_spec({"kind": "shapes", "noise": 0, "seed": np.int64(5)}) == {**DEFAULTS, "noise": 0.0, "seed": 5}
    with pytest.raises(DatasetError, match="kind must be 'shapes', got 'mnist'"):
        parse_spec({"kind": "mnist"})
