"""The Dataset contract, the stratified split and the loader registry."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netbuilder.core.datasets import LOADERS, Dataset, DatasetError, load_dataset, train_val_split


def _arrays(n=6, c=1, h=4, w=5, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, c, h, w), dtype=np.float32)
    y = (np.arange(n) % classes).astype(np.int64)
    return x, y


def _names(k=3):
    return [f"c{i}" for i in range(k)]


# ---------------------------------------------------------------- Dataset


def test_valid_dataset_reports_its_shape():
    x, y = _arrays(n=6, c=3, h=4, w=5)
    xt, yt = _arrays(n=2, c=3, h=4, w=5, seed=1)
    d = Dataset("toy", x, y, _names(), xt, yt)
    assert d.input_shape == (3, 4, 5)
    assert d.num_classes == 3
    assert d.class_names == ["c0", "c1", "c2"]
    assert "toy" in repr(d) and "train=6" in repr(d) and "test=2" in repr(d)


def test_class_names_given_as_tuple_are_stored_as_list():
    x, y = _arrays()
    assert Dataset("toy", x, y, ("a", "b", "c")).class_names == ["a", "b", "c"]


def test_test_split_is_optional():
    x, y = _arrays()
    d = Dataset("toy", x, y, _names())
    assert d.x_test is None and d.y_test is None


def test_fields_cannot_be_reassigned_after_validation():
    x, y = _arrays()
    d = Dataset("toy", x, y, _names())
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.x_train = x[:, :, :2]


def test_pixel_values_exactly_zero_and_one_are_allowed():
    x, y = _arrays()
    x[0, 0, 0, 0], x[1, 0, 0, 0] = 0.0, 1.0
    Dataset("toy", x, y, _names())


def _bad(**change):
    """Keyword arguments for a Dataset with one thing changed."""
    x, y = _arrays()
    kw = dict(name="toy", x_train=x, y_train=y, class_names=_names())
    kw.update(change)
    return kw


_x, _y = _arrays()
_x_hot = _x.copy()
_x_hot[2, 0, 1, 1] = 1.5
_x_neg = _x.copy()
_x_neg[0, 0, 0, 0] = -0.25
_x_nan = _x.copy()
_x_nan[3, 0, 2, 2] = np.nan
_y_big = _y.copy()
_y_big[4] = 3
_y_neg = _y.copy()
_y_neg[1] = -1


@pytest.mark.parametrize(
    "change, words",
    [
        (dict(name=""), ["name", "''"]),
        (dict(x_train=_x[:, 0]), ["x_train", "(N, C, H, W)", "(6, 4, 5)"]),
        (dict(x_train=_x.astype(np.float64)), ["x_train", "float32", "float64"]),
        (dict(x_train=_x.tolist()), ["x_train", "numpy array", "list"]),
        (dict(x_train=_x[:0], y_train=_y[:0]), ["x_train", "at least one", "(0, 1, 4, 5)"]),
        (dict(x_train=_x_hot), ["x_train", "[0, 1]", "1.5"]),
        (dict(x_train=_x_neg), ["x_train", "[0, 1]", "-0.25"]),
        (dict(x_train=_x_nan), ["x_train", "NaN"]),
        (dict(y_train=_y.astype(np.int32)), ["y_train", "int64", "int32"]),
        (dict(y_train=_y[:, None]), ["y_train", "(6, 1)"]),
        (dict(y_train=_y[:5]), ["y_train", "5 labels", "6 images"]),
        (dict(y_train=_y_big), ["y_train", "[0, 3)", "got 3"]),
        (dict(y_train=_y_neg), ["y_train", "got -1"]),
        (dict(class_names=["only"]), ["at least 2 classes", "'only'"]),
        (dict(class_names="abc"), ["class_names", "'abc'"]),
        (dict(class_names=["a", "b", "a"]), ["unique", "'a'"]),
        (dict(class_names=["a", "", "c"]), ["non-empty", "''"]),
        (dict(x_test=_x), ["x_test", "without y_test"]),
        (dict(y_test=_y), ["y_test", "without x_test"]),
        (dict(x_test=_x[:, :, :3], y_test=_y), ["x_test", "(1, 3, 5)", "(1, 4, 5)"]),
        (dict(x_test=_x, y_test=_y[:4]), ["y_test", "4 labels", "x_test has 6"]),
    ],
)
def test_bad_contents_are_rejected_with_a_message_naming_the_problem(change, words):
    with pytest.raises(DatasetError) as err:
        Dataset(**_bad(**change))
    for word in words:
        assert word in str(err.value)


def test_dataset_error_is_a_value_error():
    assert issubclass(DatasetError, ValueError)


# ---------------------------------------------------------------- train_val_split


def test_split_respects_the_fraction_in_every_class():
    labels = np.repeat(np.arange(4), [10, 20, 7, 3]).astype(np.int64)
    np.random.default_rng(3).shuffle(labels)
    train, val = train_val_split(labels, 0.2, seed=0)
    assert np.bincount(labels[val], minlength=4).tolist() == [2, 4, 1, 1]  # round(0.2 * n)
    assert np.bincount(labels[train], minlength=4).tolist() == [8, 16, 6, 2]


def test_split_is_disjoint_sorted_and_covers_everything():
    labels = np.random.default_rng(0).integers(0, 5, 101)
    train, val = train_val_split(labels, 0.3, seed=7)
    assert train.dtype == np.int64 and val.dtype == np.int64
    assert np.intersect1d(train, val).size == 0
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(101))
    assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)


def test_split_keeps_at_least_one_sample_of_each_class_for_training():
    labels = np.array([0, 1, 1, 2, 2, 2, 2, 2, 2, 2])
    train, val = train_val_split(labels, 0.9, seed=0)
    assert set(labels[train].tolist()) == {0, 1, 2}
    assert np.bincount(labels[val], minlength=3).tolist() == [0, 1, 6]


def test_split_seed_decides_the_choice():
    labels = np.arange(200) % 4
    a = train_val_split(labels, 0.25, seed=1)
    b = train_val_split(labels, 0.25, seed=1)
    c = train_val_split(labels, 0.25, seed=2)
    assert np.array_equal(a[1], b[1]) and np.array_equal(a[0], b[0])
    assert not np.array_equal(a[1], c[1])


def test_zero_fraction_leaves_validation_empty():
    train, val = train_val_split(np.arange(10) % 2, 0.0, seed=0)
    assert val.size == 0 and np.array_equal(train, np.arange(10))


def test_split_of_no_labels_is_two_empty_arrays():
    train, val = train_val_split(np.zeros(0, np.int64), 0.5, seed=0)
    assert train.size == 0 and val.size == 0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 6), min_size=1, max_size=80),
    st.floats(0.0, 0.99),
    st.integers(0, 2**32),
)
def test_split_properties_hold_for_any_labels(labels, fraction, seed):
    labels = np.array(labels)
    train, val = train_val_split(labels, fraction, seed)
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(len(labels)))
    counts = np.bincount(labels, minlength=7)
    in_val = np.bincount(labels[val], minlength=7)
    in_train = np.bincount(labels[train], minlength=7)
    assert np.all(in_train[counts > 0] >= 1)
    expected = np.minimum(np.floor(counts * fraction + 0.5), np.maximum(counts - 1, 0))
    assert np.array_equal(in_val, expected)


@pytest.mark.parametrize(
    "labels, fraction, seed, words",
    [
        (np.arange(4), 1.0, 0, ["fraction", "1.0"]),
        (np.arange(4), -0.1, 0, ["fraction", "-0.1"]),
        (np.arange(4), float("nan"), 0, ["fraction", "nan"]),
        (np.arange(4), "0.2", 0, ["fraction", "'0.2'"]),
        (np.arange(4), True, 0, ["fraction", "True"]),
        (np.arange(4), 0.2, -1, ["seed", "-1"]),
        (np.arange(4), 0.2, 1.5, ["seed", "1.5"]),
        (np.arange(4.0), 0.2, 0, ["integer", "float64"]),
        (np.zeros((2, 2), np.int64), 0.2, 0, ["1-D", "(2, 2)"]),
        (np.array([0, -2, 1]), 0.2, 0, [">= 0", "-2"]),
    ],
)
def test_split_rejects_bad_arguments(labels, fraction, seed, words):
    with pytest.raises(DatasetError) as err:
        train_val_split(labels, fraction, seed)
    for word in words:
        assert word in str(err.value)


# ---------------------------------------------------------------- load_dataset


def test_unknown_kind_is_named_and_known_kinds_listed():
    with pytest.raises(DatasetError) as err:
        load_dataset({"kind": "cifar-1000"})
    assert "'cifar-1000'" in str(err.value) and "shapes" in str(err.value)


def test_non_string_kind_is_rejected():
    with pytest.raises(DatasetError, match=r"unknown dataset kind \['shapes'\]"):
        load_dataset({"kind": ["shapes"]})


def test_spec_must_be_a_mapping():
    with pytest.raises(DatasetError, match="mapping.*'shapes'"):
        load_dataset("shapes")


def test_spec_without_kind_loads_the_builtin_shapes():
    d = load_dataset({"train_size": 30, "test_size": 10, "seed": 3}, base_dir="/nowhere")
    assert d.name == "shapes" and len(d.x_train) == 30 and len(d.x_test) == 10


def test_registry_dispatches_on_kind_and_passes_base_dir(monkeypatch, tmp_path):
    seen = {}

    def fake(spec, base_dir):
        seen.update(spec=spec, base_dir=base_dir)
        x, y = _arrays()
        return Dataset("fake", x, y, _names())

    monkeypatch.setitem(LOADERS, "fake", fake)
    d = load_dataset({"kind": "fake", "path": "a.npz"}, base_dir=str(tmp_path))
    assert d.name == "fake"
    assert seen == {"spec": {"kind": "fake", "path": "a.npz"}, "base_dir": tmp_path}
