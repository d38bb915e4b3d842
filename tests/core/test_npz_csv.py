"""Array sources (.npz and CSV), the normalisation statistics, and the fit-to-project helpers."""
from __future__ import annotations

import numpy as np
import pytest

from netbuilder.core.datasets import DatasetError, load_dataset
from netbuilder.core.datasets.normalize import apply_normalization, compute_normalization, invert_normalization
from netbuilder.core.datasets.npz import detect_layout, encode_labels
from netbuilder.core.datasets.preview import fit_problems, match_project, preview_dataset
from netbuilder.core.project import Project

RNG = np.random.default_rng(11)
X = RNG.integers(0, 256, (8, 3, 4, 5)).astype(np.uint8)  # N, C, H, W
Y = np.array([0, 1, 2, 0, 1, 2, 0, 1])


def load_npz(tmp_path, notes=None, **arrays):
    np.savez(tmp_path / "d.npz", **arrays)
    return load_dataset({"kind": "npz", "path": "d.npz"}, base_dir=tmp_path)


# ---------------------------------------------------------------- npz


@pytest.mark.parametrize("x, layout", [
    (X, "NCHW"),
    (X.transpose(0, 2, 3, 1), "NHWC"),
    (X[:, 0], "NHW"),
    (X[:, 0].reshape(8, 20), "flat"),
])
def test_layouts_are_detected_and_put_in_nchw(tmp_path, x, layout, caplog):
    if layout == "flat":
        x = np.pad(x, ((0, 0), (0, 5)))  # 25 values: a 5x5 square
    ds = load_npz(tmp_path, x=x, y=Y)
    assert detect_layout(x.shape, "x") == layout
    if layout in ("NCHW", "NHWC"):
        np.testing.assert_array_equal(ds.x_train, X / np.float32(255))
    elif layout == "NHW":
        np.testing.assert_array_equal(ds.x_train[:, 0], X[:, 0] / np.float32(255))
    else:
        assert ds.input_shape == (1, 5, 5)
    if layout == "NHWC":
        assert "images laid out as (N, H, W, C), reordered to (N, C, H, W)" in caplog.text


def test_layout_can_be_given_when_ambiguous(tmp_path):
    x = RNG.integers(0, 256, (8, 3, 2, 3)).astype(np.uint8)  # 3 channels first, or 2x3 RGB pixels?
    np.savez(tmp_path / "d.npz", x=x, y=Y)
    assert load_dataset({"kind": "npz", "path": "d.npz"}, tmp_path).input_shape == (3, 2, 3)
    ds = load_dataset({"kind": "npz", "path": "d.npz", "layout": "NHWC"}, tmp_path)
    assert ds.input_shape == (3, 3, 2)


def test_keras_style_names_and_a_test_split(tmp_path):
    ds = load_npz(tmp_path, x_train=X, y_train=Y, x_test=X[:3], y_test=Y[:3])
    assert len(ds.x_train) == 8 and len(ds.x_test) == 3 and ds.class_names == ["0", "1", "2"]


def test_float_pixels_in_0_1_are_kept_and_0_255_scaled(tmp_path, caplog):
    unit = RNG.random((8, 1, 3, 3))
    np.testing.assert_allclose(load_npz(tmp_path, x=unit, y=Y).x_train, unit.astype(np.float32))
    ds = load_npz(tmp_path, x=unit * 255, y=Y)
    np.testing.assert_allclose(ds.x_train, unit, atol=1e-6)
    assert "taken as 0..255 and divided by 255" in caplog.text


def test_text_and_one_hot_labels(tmp_path):
    names = np.array(["dog", "cat", "emu", "dog", "cat", "emu", "dog", "cat"])
    ds = load_npz(tmp_path, x=X, y=names)
    assert ds.class_names == ["cat", "dog", "emu"]
    np.testing.assert_array_equal(ds.y_train, [1, 0, 2, 1, 0, 2, 1, 0])
    ds = load_npz(tmp_path, x=X, y=np.eye(3)[Y])
    np.testing.assert_array_equal(ds.y_train, Y)


def test_class_names_array_and_a_separate_test_file(tmp_path):
    np.savez(tmp_path / "train.npz", x=X, y=Y, class_names=np.array(["r", "g", "b"]))
    np.savez(tmp_path / "test.npz", x=X[:2], y=Y[:2])
    ds = load_dataset({"kind": "npz", "path": "train.npz", "test_path": "test.npz"}, tmp_path)
    assert ds.class_names == ["r", "g", "b"] and len(ds.x_test) == 2


def test_label_beyond_the_class_names_is_named(tmp_path):
    np.savez(tmp_path / "d.npz", x=X, y=Y)
    with pytest.raises(DatasetError, match=r"d.npz \[y\]: label 2 at index 2 is out of range: .* \[0, 2\)"):
        load_dataset({"kind": "npz", "path": "d.npz", "class_names": ["a", "b"]}, tmp_path)


def test_npz_preview_reads_only_sampled_rows(tmp_path):
    np.savez(tmp_path / "d.npz", x=X, y=Y, y_test=Y[:4])
    p = preview_dataset({"kind": "npz", "path": "d.npz"}, tmp_path, per_class=2)
    assert p.counts == [3, 3, 2] and p.test_counts == [2, 1, 1]
    np.testing.assert_array_equal(p.samples[1], X[[1, 4]] / np.float32(255))


def test_encode_labels_shares_text_classes_across_splits():
    (train, test), names = encode_labels([(np.array(["b", "a"]), "tr"), (np.array(["a", "c"]), "te")])
    assert names == ["a", "b", "c"]
    assert train.tolist() == [1, 0] and test.tolist() == [0, 2]


# ---------------------------------------------------------------- CSV


def write_csv(path, rows, header=True):
    lines = ["label," + ",".join(f"pixel{i}" for i in range(len(rows[0]) - 1))] if header else []
    lines += [",".join(str(v) for v in r) for r in rows]
    path.write_text("\n".join(lines) + "\n")


def test_kaggle_style_csv(tmp_path):
    pixels = RNG.integers(0, 256, (6, 9))
    labels = np.array([0, 1, 0, 1, 2, 2])
    write_csv(tmp_path / "train.csv", np.column_stack([labels, pixels]))
    write_csv(tmp_path / "test.csv", np.column_stack([labels[:2], pixels[:2]]), header=False)
    ds = load_dataset({"kind": "csv", "path": "train.csv", "test_path": "test.csv"}, tmp_path)
    assert ds.input_shape == (1, 3, 3) and ds.class_names == ["0", "1", "2"]
    np.testing.assert_array_equal(ds.x_train.reshape(6, 9), pixels.astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(ds.y_train, labels)
    assert len(ds.x_test) == 2


def test_label_column_by_name_or_index_text_labels_and_image_shape(tmp_path):
    (tmp_path / "d.csv").write_text(
        "r0,g0,r1,g1,kind\n" "1,2,3,4,apple\n" "5,6,7,8,pear\n" "\n" "9,10,11,12,apple\n")
    spec = {"kind": "csv", "path": "d.csv", "label_column": "kind", "image_shape": [2, 1, 2], "layout": "NHWC"}
    ds = load_dataset(spec, tmp_path)
    assert ds.class_names == ["apple", "pear"] and ds.y_train.tolist() == [0, 1, 0]
    np.testing.assert_array_equal(ds.x_train[0] * 255, [[[1, 3]], [[2, 4]]])  # pixel-major rows -> planes
    assert load_dataset({**spec, "label_column": 4}, tmp_path).y_train.tolist() == [0, 1, 0]


def test_csv_errors_name_the_line_after_blank_lines(tmp_path):
    (tmp_path / "d.csv").write_text("label,a,b,c,d\n0,1,2,3,4\n\n1,1,2,3,4\n7.5,1,2,3,4\n")
    with pytest.raises(DatasetError, match=r"d.csv: label 7.5 at line 5 is not a whole number"):
        load_dataset({"kind": "csv", "path": "d.csv"}, tmp_path)


# ---------------------------------------------------------------- normalisation


def test_statistics_are_per_channel_and_exact():
    x = np.zeros((4, 2, 3, 3), np.float32)
    x[:, 0] = np.array([0.0, 1.0, 0.0, 1.0])[:, None, None]  # mean 0.5, std 0.5
    x[:, 1] = 0.25  # constant: std recorded as 1.0 so it is centred, never divided by ~0
    stats = compute_normalization(x)
    assert stats == {"mean": [0.5, 0.25], "std": [0.5, 1.0]}
    out = apply_normalization(x, stats)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[:, 0, 0, 0], [-1, 1, -1, 1])
    np.testing.assert_array_equal(out[:, 1], 0)
    np.testing.assert_allclose(invert_normalization(out, stats), x, atol=1e-7)
    assert apply_normalization(x.astype(np.float64), stats).dtype == np.float64


def test_statistics_match_numpy_over_chunks():
    x = RNG.random((5000, 3, 4, 4), dtype=np.float32)
    stats = compute_normalization(x)
    np.testing.assert_allclose(stats["mean"], x.astype(np.float64).mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(stats["std"], x.astype(np.float64).std(axis=(0, 2, 3)), rtol=1e-10)
    subset = np.arange(0, 5000, 3)
    np.testing.assert_allclose(compute_normalization(x, subset)["mean"],
                               x[subset].astype(np.float64).mean(axis=(0, 2, 3)), rtol=1e-12)
    normalised = apply_normalization(x, stats)
    np.testing.assert_allclose(normalised.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(normalised.std(axis=(0, 2, 3)), 1, atol=1e-5)


@pytest.mark.parametrize("stats, message", [
    ({"mean": [0.5]}, "must be"),
    ({"mean": [0.5], "std": [0.0]}, "std values must be > 0"),
    ({"mean": [0.5, 0.5], "std": [1.0]}, "2 means but 1 stds"),
    ({"mean": ["a"], "std": [1.0]}, "mean must be a non-empty list of finite numbers, got \\['a'\\]"),
    ({"mean": [0.5, 0.5], "std": [1.0, 1.0]}, "for 2 channel\\(s\\) but the images have 1"),
])
def test_bad_statistics_are_named(stats, message):
    with pytest.raises(DatasetError, match=message):
        apply_normalization(np.zeros((1, 1, 2, 2), np.float32), stats)


# ---------------------------------------------------------------- fitting the project


def test_fit_problems_and_matching_the_project():
    project = Project(input_shape=(1, 28, 28), num_classes=10,
                      blocks=[{"kind": "flatten"}, {"kind": "dense", "units": 10, "activation": "softmax"}])
    assert fit_problems(project, (1, 28, 28), 10) == []
    problems = fit_problems(project, (3, 32, 32), 4)
    assert problems == ["the project takes 1x28x28 (channels x height x width) inputs but the dataset's images "
                        "are 3x32x32 (channels x height x width)",
                        "the project has 10 outputs but the dataset has 4 classes"]
    matched = match_project(project, (3, 32, 32), 4)
    assert matched.input_shape == (3, 32, 32) and matched.num_classes == 4
    assert matched.blocks[-1]["units"] == 4 and project.blocks[-1]["units"] == 10  # a copy
    assert fit_problems(matched, (3, 32, 32), 4) == []
