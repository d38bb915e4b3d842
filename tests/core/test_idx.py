"""MNIST-format IDX files: parsing, file discovery, the idx/mnist specs, partial reads for previews."""
from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from netbuilder.core.datasets import DatasetError, download, load_dataset
from netbuilder.core.datasets.idx import find_idx_files, load_idx, parse_idx, read_idx, read_idx_rows
from netbuilder.core.datasets.preview import preview_dataset

_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}


def idx_bytes(arr: np.ndarray) -> bytes:
    code = _CODES[arr.dtype.type]
    head = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return head + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def make_set(folder, n=12, h=5, w=4, classes=3, seed=0, gz=False, prefix="", test=True, names=None):
    """Write a small IDX set; returns the arrays written."""
    rng = np.random.default_rng(seed)
    out = {}
    splits = [("train", n), ("t10k", n // 2)] if test else [("train", n)]
    for split, count in splits:
        x = rng.integers(0, 256, (count, h, w)).astype(np.uint8)
        y = (np.arange(count) % classes).astype(np.uint8)
        rng.shuffle(y)
        for what, arr, nd in (("images", x, 3), ("labels", y, 1)):
            data = idx_bytes(arr)
            name = (names or {}).get((split, what), f"{prefix}{split}-{what}-idx{nd}-ubyte")
            if gz:
                data, name = gzip.compress(data, mtime=0), name + ".gz"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        out[split] = (x, y)
    return out


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
def test_folder_with_standard_names_loads_both_splits(tmp_path, gz):
    arrays = make_set(tmp_path / "digits", gz=gz)
    ds = load_dataset({"kind": "idx", "path": "digits"}, base_dir=tmp_path)
    x, y = arrays["train"]
    assert ds.x_train.shape == (12, 1, 5, 4) and ds.x_train.dtype == np.float32
    np.testing.assert_array_equal(ds.x_train[:, 0], x.astype(np.float32) / 255)
    np.testing.assert_array_equal(ds.y_train, y.astype(np.int64))
    np.testing.assert_array_equal(ds.y_test, arrays["t10k"][1].astype(np.int64))
    assert ds.class_names == ["0", "1", "2"]
    assert ds.name == "digits"


def test_explicit_files_relative_to_the_project_folder(tmp_path):
    names = {("train", "images"): "imgs.bin", ("train", "labels"): "labs.bin"}
    arrays = make_set(tmp_path / "data", test=False, names=names)
    spec = {"kind": "idx", "train_images": "data/imgs.bin", "train_labels": "data/labs.bin",
            "class_names": ["cat", "dog", "emu"], "name": "pets"}
    ds = load_dataset(spec, base_dir=tmp_path)
    assert ds.name == "pets" and ds.class_names == ["cat", "dog", "emu"] and ds.x_test is None
    np.testing.assert_array_equal(ds.y_train, arrays["train"][1])


def test_label_outside_the_given_class_names_names_file_and_index(tmp_path):
    make_set(tmp_path, classes=3, test=False)
    with pytest.raises(DatasetError, match=r"train-labels-idx1-ubyte: label 2 at index \d+ is out of range.*\[0, 2\)"):
        load_dataset({"kind": "idx", "path": ".", "class_names": ["a", "b"]}, base_dir=tmp_path)


def test_name_variants_prefixes_and_raw_preferred_over_gzip(tmp_path):
    make_set(tmp_path / "a", prefix="emnist-letters-", gz=True)
    assert find_idx_files(tmp_path / "a")["train_images"].name == "emnist-letters-train-images-idx3-ubyte.gz"

    dotted = {("train", "images"): "train-images.idx3-ubyte", ("train", "labels"): "train-labels.idx1-ubyte",
              ("t10k", "images"): "t10k-images.idx3-ubyte", ("t10k", "labels"): "t10k-labels.idx1-ubyte"}
    make_set(tmp_path / "b", names=dotted)
    assert set(find_idx_files(tmp_path / "b")) == {"train_images", "train_labels", "test_images", "test_labels"}

    make_set(tmp_path / "c", seed=1)
    make_set(tmp_path / "c", seed=2, gz=True)
    files = find_idx_files(tmp_path / "c")
    assert files["train_images"].name == "train-images-idx3-ubyte"


def test_two_datasets_in_one_folder_is_ambiguous(tmp_path):
    make_set(tmp_path, prefix="emnist-digits-")
    make_set(tmp_path, prefix="emnist-letters-")
    with pytest.raises(DatasetError, match="several datasets.*emnist-digits-.*emnist-letters-"):
        find_idx_files(tmp_path)


def test_transpose_swaps_rows_and_columns(tmp_path):
    arrays = make_set(tmp_path, h=3, w=6, test=False)
    ds = load_dataset({"kind": "idx", "path": ".", "transpose": True}, base_dir=tmp_path)
    assert ds.input_shape == (1, 6, 3)
    np.testing.assert_array_equal(ds.x_train[:, 0], arrays["train"][0].transpose(0, 2, 1) / np.float32(255))


def test_sixteen_bit_labels_are_read_big_endian(tmp_path):
    y = np.array([0, 300, 1, 299], np.int16)
    (tmp_path / "l").write_bytes(idx_bytes(y))
    np.testing.assert_array_equal(read_idx(tmp_path / "l"), y)


def test_header_is_checked_before_the_data(tmp_path):
    data = idx_bytes(np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(DatasetError, match="magic number 0x08000000"):
        parse_idx(b"\x08\x00\x00\x00" + data[4:], "f")
    with pytest.raises(DatasetError, match="declares 3 dimensions but the file ends at byte 9"):
        parse_idx(data[:9], "f")
    assert parse_idx(data, "f").shape == (2, 3, 3)


def test_partial_rows_match_the_full_file(tmp_path):
    make_set(tmp_path / "raw", n=40, seed=3)
    make_set(tmp_path / "gz", n=40, seed=3, gz=True)
    full = read_idx(tmp_path / "raw" / "train-images-idx3-ubyte")
    for path in (tmp_path / "raw" / "train-images-idx3-ubyte", tmp_path / "gz" / "train-images-idx3-ubyte.gz"):
        rows, dims = read_idx_rows(path, [7, 0, 39, 7])
        assert dims == (40, 5, 4)
        np.testing.assert_array_equal(rows, full[[7, 0, 39, 7]])
        with pytest.raises(DatasetError, match="index 40 is out of range for 40 entries"):
            read_idx_rows(path, [40])


def test_preview_reads_samples_and_counts_per_class(tmp_path):
    arrays = make_set(tmp_path, n=30, classes=3)
    p = preview_dataset({"kind": "idx", "path": "."}, base_dir=tmp_path, per_class=4)
    x, y = arrays["train"]
    assert p.counts == [10, 10, 10] and p.test_counts == [5, 5, 5]
    assert p.input_shape == (1, 5, 4) and p.class_names == ["0", "1", "2"]
    for k in range(3):
        first = np.flatnonzero(y == k)[:4]
        np.testing.assert_array_equal(p.samples[k][:, 0], x[first] / np.float32(255))
    assert p.notes == []


def test_mnist_kind_is_found_in_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NETBUILDER_DATA_DIR", str(tmp_path))
    with pytest.raises(DatasetError, match=r'MNIST not found in .*mnist; set "download": true'):
        load_dataset({"kind": "mnist"})
    make_set(tmp_path / "mnist", classes=10, n=20, gz=True)
    assert download.locate("mnist") == tmp_path / "mnist"
    ds = load_dataset({"kind": "mnist"})
    assert ds.name == "MNIST" and ds.class_names == [str(d) for d in range(10)]


def test_test_split_of_another_image_size_is_refused(tmp_path):
    make_set(tmp_path / "a", h=5, w=4)
    make_set(tmp_path / "b", h=6, w=4)
    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte: test images are 6x4 but the training images"):
        load_idx(tmp_path / "a" / "train-images-idx3-ubyte", tmp_path / "a" / "train-labels-idx1-ubyte",
                 tmp_path / "b" / "t10k-images-idx3-ubyte", tmp_path / "b" / "t10k-labels-idx1-ubyte")


@pytest.mark.parametrize("spec, message", [
    ({"kind": "idx"}, 'give "path"'),
    ({"kind": "idx", "path": "x", "train_images": "y"}, "either"),
    ({"kind": "idx", "path": "x", "test_images": "t"}, "together"),
    ({"kind": "idx", "path": 3}, "path must be a non-empty string, got 3"),
    ({"kind": "idx", "path": "x", "transpose": "yes"}, "transpose must be true or false, got 'yes'"),
    ({"kind": "idx", "path": "x", "classnames": []}, "unknown key 'classnames'"),
    ({"kind": "mnist", "download": 1}, "download must be true or false, got 1"),
])
def test_bad_specs_are_named(spec, message):
    with pytest.raises(DatasetError, match=message):
        load_dataset(spec)
