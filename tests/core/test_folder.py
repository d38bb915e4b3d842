"""Image folders: class discovery, resizing modes, colour conversion, skips, previews, and training end to end."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from netbuilder.core.datasets import DatasetError, load_dataset
from netbuilder.core.datasets.folder import load_image, read_image_folder, scan_folder
from netbuilder.core.datasets.preview import preview_dataset
from netbuilder.core.datasets.registry import load_project_dataset, make_spec
from netbuilder.core.project import Project, TrainingSettings
from netbuilder.core.trainer import Trainer


def save(path, arr, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(arr)).save(path, format=fmt)


def grey_set(root, classes=("a", "b"), n=3, size=(6, 5), seed=0):
    """n random grey PNGs of size (h, w) per class; returns {class: [arrays in file order]}."""
    rng = np.random.default_rng(seed)
    out = {}
    for c in classes:
        out[c] = []
        for i in range(n):
            arr = rng.integers(0, 256, size).astype(np.uint8)
            save(root / c / f"img{i}.png", arr)
            out[c].append(arr)
    return out


def test_a_spec_from_before_class_order_keeps_natural_order_and_pixels_are_exact(tmp_path):
    images = grey_set(tmp_path / "set", classes=("class10", "class2", "Class3"))
    (tmp_path / "set" / ".hidden").mkdir()
    (tmp_path / "set" / "class2" / ".DS_Store").write_bytes(b"\0\1")
    ds = load_dataset({"kind": "folder", "path": "set", "input_shape": [1, 6, 5]}, base_dir=tmp_path)
    assert ds.class_names == ["class2", "Class3", "class10"]
    assert ds.name == "set" and ds.x_test is None
    np.testing.assert_array_equal(ds.y_train, np.repeat([0, 1, 2], 3))
    expected = np.stack([images[c][i] for c in ds.class_names for i in range(3)])[:, None] / np.float32(255)
    np.testing.assert_array_equal(ds.x_train, expected)


def test_files_in_nested_folders_belong_to_their_class(tmp_path):
    grey_set(tmp_path, n=1)
    save(tmp_path / "a" / "deeper" / "more.png", np.zeros((6, 5), np.uint8))
    assert scan_folder(tmp_path).counts == [2, 1]


def test_train_and_test_sub_folders_become_the_splits(tmp_path):
    grey_set(tmp_path / "train", n=4)
    grey_set(tmp_path / "test", classes=("b",), n=2, seed=1)
    ds = load_dataset({"kind": "folder", "path": "."}, base_dir=tmp_path)
    assert ds.class_names == ["a", "b"] and len(ds.x_train) == 8
    np.testing.assert_array_equal(ds.y_test, [1, 1])


WHITE_WIDE = np.full((4, 8), 255, np.uint8)  # h=4, w=8


@pytest.mark.parametrize("mode, rows", [
    ("fit", [0, 1, 1, 0]),      # scaled to 4x2, centred: black bands above and below
    ("crop", [1, 1, 1, 1]),     # scaled to cover 4x4, sides cut
    ("stretch", [1, 1, 1, 1]),  # squashed to 4x4
])
def test_resize_modes(tmp_path, mode, rows):
    save(tmp_path / "w.png", WHITE_WIDE)
    out = load_image(tmp_path / "w.png", (1, 4, 4), mode)
    np.testing.assert_array_equal(out[0], np.repeat(np.array(rows, np.float32)[:, None], 4, axis=1))


def test_pad_mode_centres_without_scaling(tmp_path):
    save(tmp_path / "s.png", np.full((2, 2), 255, np.uint8))
    out = load_image(tmp_path / "s.png", (1, 4, 6), "pad")
    expected = np.zeros((4, 6), np.float32)
    expected[1:3, 2:4] = 1
    np.testing.assert_array_equal(out[0], expected)
    save(tmp_path / "big.png", np.arange(64, dtype=np.uint8).reshape(8, 8))
    np.testing.assert_array_equal(load_image(tmp_path / "big.png", (1, 4, 4), "pad")[0] * 255,
                                  np.arange(64).reshape(8, 8)[2:6, 2:6])


def test_colour_conversions(tmp_path):
    save(tmp_path / "red.png", np.tile(np.array([255, 0, 0], np.uint8), (2, 2, 1)))
    assert load_image(tmp_path / "red.png", (1, 2, 2))[0, 0, 0] == pytest.approx(76 / 255)  # ITU-R 601 luma
    save(tmp_path / "grey.png", np.full((2, 2), 51, np.uint8))
    np.testing.assert_array_equal(load_image(tmp_path / "grey.png", (3, 2, 2)), np.full((3, 2, 2), np.float32(0.2)))
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., :3] = 255
    rgba[0, 0, 3] = 255  # one opaque white pixel, the rest transparent white
    save(tmp_path / "alpha.png", rgba)
    out = load_image(tmp_path / "alpha.png", (3, 2, 2))
    np.testing.assert_array_equal(out[:, 0, 0], [1, 1, 1])
    np.testing.assert_array_equal(out[:, 1, 1], [0, 0, 0])
    save(tmp_path / "deep.png", np.array([[0, 65535], [32768, 13107]], np.uint16))
    np.testing.assert_allclose(load_image(tmp_path / "deep.png", (1, 2, 2))[0],
                               [[0, 1], [32768 / 65535, 0.2]], atol=1e-6)


def test_shape_is_inferred_from_the_most_common_size_and_colour(tmp_path):
    grey_set(tmp_path, n=3, size=(6, 5))
    save(tmp_path / "b" / "odd.png", np.zeros((9, 9), np.uint8))
    ds, report = read_image_folder(tmp_path)
    assert ds.input_shape == (1, 6, 5) and report.resized == 1
    assert any("resized 1 of 7 image(s) to 6x5 (fit)" in n for n in report.notes())
    save(tmp_path / "a" / "colour.png", np.zeros((6, 5, 3), np.uint8))
    ds, report = read_image_folder(tmp_path)
    assert ds.input_shape == (3, 6, 5)
    assert report.converted == {"L": 7}


def test_unreadable_files_are_skipped_and_named_or_refused(tmp_path):
    grey_set(tmp_path, n=2)
    (tmp_path / "a" / "broken.png").write_bytes(b"not a png")
    (tmp_path / "a" / "readme.txt").write_text("ignored")
    notes = []
    ds, report = read_image_folder(tmp_path, (1, 6, 5), notes=notes)
    assert len(ds.x_train) == 4 and [p.name for p, _ in report.skipped] == ["broken.png"]
    assert report.ignored == 1
    assert notes[0] == "skipped 1 unreadable image file(s): broken.png: not an image file Pillow can read"
    with pytest.raises(DatasetError, match=r"a[/\\]broken.png: cannot be read as an image"):
        read_image_folder(tmp_path, (1, 6, 5), on_bad_file="error")


def test_progress_is_reported_up_to_the_total(tmp_path):
    grey_set(tmp_path, n=40)
    calls = []
    read_image_folder(tmp_path, (1, 6, 5), progress=lambda d, t, what: calls.append((d, t, what)), workers=3)
    assert calls[0] == (0, 80, "loading images") and calls[-1] == (80, 80, "loading images")
    assert [d for d, _, _ in calls] == sorted(d for d, _, _ in calls)


def test_a_failing_progress_callback_stops_the_load(tmp_path):
    grey_set(tmp_path, n=40)

    class Cancelled(Exception):
        pass

    def cancel(done, total, what):
        if done:
            raise Cancelled

    with pytest.raises(Cancelled):
        read_image_folder(tmp_path, (1, 6, 5), progress=cancel)


@pytest.mark.parametrize("options, message", [
    ({"input_shape": [2, 6, 5]}, r"1 \(grey\) or 3 \(RGB\) channels.*got \[2, 6, 5\]"),
    ({"resize": "zoom"}, "resize must be one of fit, crop, pad, stretch, got 'zoom'"),
    ({"on_bad_file": "ignore"}, "on_bad_file must be 'skip' or 'error', got 'ignore'"),
])
def test_bad_options_are_named(tmp_path, options, message):
    grey_set(tmp_path, n=1)
    with pytest.raises(DatasetError, match=message):
        load_dataset({"kind": "folder", "path": str(tmp_path), **options})


def test_preview_lists_counts_and_points_out_imbalance(tmp_path):
    grey_set(tmp_path / "set", n=1)
    grey_set(tmp_path / "set", classes=("b",), n=6, seed=2)
    p = preview_dataset({"kind": "folder", "path": "set", "input_shape": [1, 6, 5]}, tmp_path, per_class=4)
    assert p.counts == [1, 6] and [len(s) for s in p.samples] == [1, 4]
    assert p.samples[1].shape == (4, 1, 6, 5)
    assert any("imbalanced" in n and "'a' (1)" in n and "'b' (6)" in n for n in p.notes)


def test_class_order_sorted_as_torchvision_does_or_natural(tmp_path):
    grey_set(tmp_path / "set", classes=("class10", "class2", "Class3"), n=1)
    spec = {"kind": "folder", "path": "set", "input_shape": [1, 6, 5]}
    plain = load_dataset({**spec, "class_order": "sorted"}, base_dir=tmp_path)
    assert plain.class_names == sorted(["class10", "class2", "Class3"]) == ["Class3", "class10", "class2"]
    natural = load_dataset({**spec, "class_order": "natural"}, base_dir=tmp_path)
    assert natural.class_names == ["class2", "Class3", "class10"]
    new = make_spec("folder", tmp_path / "set", base_dir=tmp_path)
    assert new["class_order"] == "sorted"  # what the app writes for a newly chosen folder
    with pytest.raises(DatasetError, match="class_order must be 'sorted' or 'natural', got 'random'"):
        load_dataset({**spec, "class_order": "random"}, base_dir=tmp_path)


def test_train_val_and_test_sub_folders_are_the_splits(tmp_path):
    for split, n in (("train", 4), ("Val", 2), ("test", 3)):
        grey_set(tmp_path / "set" / split, classes=("b", "a"), n=n)
    ds = load_dataset({"kind": "folder", "path": "set", "input_shape": [1, 6, 5], "class_order": "sorted"},
                      base_dir=tmp_path)
    assert ds.class_names == ["a", "b"]
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (8, 4, 6)
    np.testing.assert_array_equal(ds.y_val, [0, 0, 1, 1])
    only_val = tmp_path / "two"
    for split in ("train", "validation"):
        grey_set(only_val / split, classes=("a", "b"), n=2)
    ds = load_dataset({"kind": "folder", "path": "two", "input_shape": [1, 6, 5]}, base_dir=tmp_path)
    assert ds.x_test is None and len(ds.x_val) == 4


def test_a_validation_folder_is_the_validation_split_of_training(tmp_path):
    for split, n in (("train", 6), ("val", 3)):
        grey_set(tmp_path / "set" / split, classes=("a", "b"), n=n)
    ds = load_dataset({"kind": "folder", "path": "set", "input_shape": [1, 6, 5]}, base_dir=tmp_path)
    project = Project.from_dict({
        "format": 1, "name": "t", "input_shape": [1, 6, 5], "num_classes": 2,
        "blocks": [{"kind": "flatten"}, {"kind": "dense", "units": 2, "activation": "softmax"}],
        "training": {"validation_fraction": 0.5, "epochs": 1, "batch_size": 4}, "dataset": {"kind": "shapes"}})
    trainer = Trainer(project, ds)
    assert len(trainer.train_idx) == 12 and len(trainer.val_idx) == 6  # the folder's, not half of training
    x_val, y_val = trainer.validation_data()
    np.testing.assert_array_equal(x_val, ds.x_val)
    np.testing.assert_array_equal(y_val, ds.y_val)


def test_spec_paths_are_stored_relative_to_the_project(tmp_path):
    spec = make_spec("folder", tmp_path / "proj" / "data" / "imgs", base_dir=tmp_path / "proj", resize="crop")
    assert spec == {"kind": "folder", "path": "data/imgs", "resize": "crop", "class_order": "sorted"}
    far = make_spec("folder", "/usr/share/images", base_dir=tmp_path / "a" / "b" / "c")
    assert far["path"] == "/usr/share/images"


def stripes(rng, horizontal: bool) -> np.ndarray:
    """A 16x16 image of bright stripes four pixels wide, random phase, a little noise."""
    img = np.zeros((16, 16))
    phase = rng.integers(0, 8)
    lines = (np.arange(16) + phase) % 8 < 4
    if horizontal:
        img[lines, :] = 1
    else:
        img[:, lines] = 1
    img += rng.normal(0, 0.1, img.shape)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def test_a_generated_two_class_folder_trains_end_to_end(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(60):
        save(tmp_path / "stripes" / "horizontal" / f"{i}.png", stripes(rng, True))
        save(tmp_path / "stripes" / "vertical" / f"{i}.png", stripes(rng, False))
    project = Project(
        name="stripes", input_shape=(1, 8, 8), num_classes=2,
        blocks=[{"kind": "flatten"}, {"kind": "dense", "units": 16, "activation": "relu"},
                {"kind": "dense", "units": 2, "activation": "softmax"}],
        training=TrainingSettings(batch_size=16, epochs=10, learning_rate=0.01, validation_fraction=0.25),
        dataset={"kind": "folder", "path": "stripes"},
    )
    ds = load_project_dataset(project, base_dir=tmp_path)  # resized from 16x16 to the project's 8x8
    assert ds.input_shape == (1, 8, 8) and ds.class_names == ["horizontal", "vertical"]
    trainer = Trainer(project, ds)
    history = trainer.fit()
    assert history.status == "finished"
    assert history.val_accuracy[-1] >= 0.95
