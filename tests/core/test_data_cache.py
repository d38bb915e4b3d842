"""Sets larger than memory: image folders and IDX sets converted once to a memory-mapped uint8 cache,
read a batch at a time; the cache rebuilt when its source changes or a file of it is damaged, and
trained on bit for bit as the same set in memory is."""
import gzip
import json
import logging
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from netbuilder.core.datasets import cache as data_cache
from netbuilder.core.datasets import load_dataset
from netbuilder.core.datasets.base import Dataset, DatasetError
from netbuilder.core.datasets.mapped import MappedImages
from netbuilder.core.metrics import evaluate_network, evaluation_split
from netbuilder.core.project import Project, TrainingSettings
from netbuilder.core.trainer import Trainer
from netbuilder.core.training_data import TrainingData

ROOT = Path(__file__).resolve().parents[2]


# --- making sources ------------------------------------------------------------------------------
def write_idx(path: Path, array: np.ndarray, gz: bool = True) -> None:
    head = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with (gzip.open(path, "wb", compresslevel=1) if gz else open(path, "wb")) as f:
        f.write(head + array.astype(np.uint8).tobytes())


def pattern_images(n: int, side: int, classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, side, side) uint8 images where each class lights its own band, plus noise; labels."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % classes).astype(np.uint8)
    x = rng.integers(0, 90, (n, side, side), dtype=np.uint8)
    band = max(1, side // classes)
    for k in range(classes):
        x[y == k, :, k * band:(k + 1) * band] += 150
    return x, y


def make_idx(folder: Path, n: int = 240, side: int = 8, test: int = 60, gz: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    x, y = pattern_images(n + test, side)
    ext = ".gz" if gz else ""
    write_idx(folder / f"train-images-idx3-ubyte{ext}", x[:n], gz)
    write_idx(folder / f"train-labels-idx1-ubyte{ext}", y[:n], gz)
    if test:
        write_idx(folder / f"t10k-images-idx3-ubyte{ext}", x[n:], gz)
        write_idx(folder / f"t10k-labels-idx1-ubyte{ext}", y[n:], gz)
    return age(folder)


def write_pgm(path: Path, image: np.ndarray) -> None:
    h, w = image.shape
    path.write_bytes(f"P5\n{w} {h}\n255\n".encode() + image.astype(np.uint8).tobytes())


def make_folder(root: Path, per_class: int = 20, side: int = 10, splits=("train", "val", "test")) -> Path:
    """``root/<split>/<class>/<i>.pgm`` (or ``root/<class>`` with no splits), one bad file in train."""
    x, _ = pattern_images(per_class * 3 * len(splits or [""]), side)
    i = 0
    for split in splits or [""]:
        for k, name in enumerate(("ant", "bee", "cat")):
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for j in range(per_class):
                write_pgm(d / f"{j}.pgm", x[i] if k == i % 3 else np.roll(x[i], 3 * k, axis=1))
                i += 1
    (root / (splits[0] if splits else "") / "ant" / "broken.png").write_bytes(b"not a png")
    return age(root)


def age(root: Path, seconds: float = 100) -> Path:
    """Date every file back: a source written just now is (rightly) not trusted in the cache."""
    then = time.time() - seconds
    for p in [root, *root.rglob("*")]:
        os.utime(p, (then, then))
    return root


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """A cache folder of the test's own, and every folder or IDX set mapped from it."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("NETBUILDER_CACHE_DIR", str(folder))
    monkeypatch.setenv(data_cache.MAP_VARIABLE, "0")
    return folder


def in_memory(monkeypatch, spec):
    monkeypatch.setenv(data_cache.MAP_VARIABLE, str(1 << 50))
    try:
        return load_dataset(spec)
    finally:
        monkeypatch.setenv(data_cache.MAP_VARIABLE, "0")


def entries(cache_dir: Path) -> list[Path]:
    return sorted(p for p in cache_dir.iterdir() if p.is_dir())


def conv_project(side: int, classes: int = 3, **training) -> Project:
    blocks = [{"kind": "conv", "filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"},
              {"kind": "pool", "mode": "max", "size": 2},
              {"kind": "dense", "units": classes, "activation": "softmax"}]
    settings = dict(optimizer="adam", learning_rate=0.01, batch_size=16, epochs=2, validation_fraction=0.2, seed=5)
    settings.update(training)
    return Project(name="conv", input_shape=(1, side, side), num_classes=classes, blocks=blocks,
                   training=TrainingSettings(**settings))


def assert_same_run(a: Trainer, b: Trainer) -> None:
    assert a.history.train_loss == b.history.train_loss and a.history.val_loss == b.history.val_loss
    for name, value in a.network.state_dict().items():
        np.testing.assert_array_equal(value, b.network.state_dict()[name], err_msg=name)
    assert a.project.dataset["normalization"] == b.project.dataset["normalization"]


# --- the array that stands in for float32 images ----------------------------------------------------
def test_mapped_images_index_as_the_float32_array_they_stand_for():
    u8 = np.random.default_rng(1).integers(0, 256, (12, 2, 3, 4), dtype=np.uint8)
    ref = u8 / np.float32(255)
    x = MappedImages(u8)
    assert (x.shape, x.dtype, len(x), x.ndim) == (ref.shape, np.float32, 12, 4)
    keys = [3, -1, np.int64(5), slice(None), slice(2, 9, 3), slice(None, None, -2), slice(8, 2),
            np.array([4, 0, 4, -2]), np.arange(12) % 3 == 0, (2, 1), (slice(1, 4), 0, slice(None), 2),
            (np.array([1, 3]), 1)]
    for key in keys:
        got = x[key]
        assert got.dtype == np.float32 and isinstance(got, np.ndarray) and not isinstance(got, np.memmap)
        np.testing.assert_array_equal(got, ref[key], err_msg=repr(key))
    np.testing.assert_array_equal(np.asarray(x), ref)
    assert np.asarray(x, np.float64).dtype == np.float64
    for bad in (12, -13, np.array([0, 12]), np.array([0.5]), np.zeros(3, bool)):
        with pytest.raises(IndexError):
            x[bad]


def test_views_pick_rows_without_reading_and_join_where_they_meet():
    u8 = np.arange(10 * 4, dtype=np.uint8).reshape(10, 1, 2, 2)
    x = MappedImages(u8)
    train, val = x.subset(slice(0, 6)), x.subset(slice(6, 10))
    joined = train.join(val)
    assert joined._range == (0, 10)  # one range of the store again: no index array
    np.testing.assert_array_equal(np.asarray(joined), np.asarray(x))
    picked = x.subset(np.array([0, 2, 3])).join(val)  # what skipped images leave: an index
    np.testing.assert_array_equal(np.asarray(picked), np.asarray(x)[[0, 2, 3, 6, 7, 8, 9]])
    np.testing.assert_array_equal(picked[[1, -1]], np.asarray(x)[[2, 9]])
    out64 = np.empty((3, 1, 2, 2), np.float64)
    picked.gather(np.array([4, 0, 1]), out64)
    np.testing.assert_array_equal(out64, (u8[[7, 0, 2]] / np.float32(255)).astype(np.float64))


def test_a_dataset_takes_mapped_images_and_still_checks_their_shape():
    x = MappedImages(np.zeros((4, 1, 3, 3), np.uint8))
    y = np.array([0, 1, 0, 1], np.int64)
    assert Dataset("m", x, y, ["a", "b"]).input_shape == (1, 3, 3)
    with pytest.raises(DatasetError, match="x_test images are"):
        Dataset("m", x, y, ["a", "b"], MappedImages(np.zeros((2, 1, 4, 4), np.uint8)), y[:2])


# --- the cache: built once, used after ------------------------------------------------------------
def test_small_sets_are_loaded_into_memory_as_before_and_never_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("NETBUILDER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(data_cache.MAP_VARIABLE, raising=False)
    ds = load_dataset({"kind": "idx", "path": str(make_idx(tmp_path / "idx"))})
    folder = load_dataset({"kind": "folder", "path": str(make_folder(tmp_path / "f")), "input_shape": [1, 8, 8]})
    assert all(type(a) is np.ndarray for a in (ds.x_train, ds.x_test, folder.x_train, folder.x_val, folder.x_test))
    assert not (tmp_path / "cache").exists()
    assert data_cache.plan_note(60000, (1, 28, 28)) is None  # MNIST fits in memory


def test_a_gzip_idx_set_is_cached_once_and_trains_bit_for_bit_as_in_memory(tmp_path, cache_dir, monkeypatch, caplog):
    spec = {"kind": "idx", "path": str(make_idx(tmp_path / "idx", side=8))}
    with caplog.at_level(logging.WARNING, "netbuilder.datasets"):
        mapped = load_dataset(spec)
    assert isinstance(mapped.x_train, MappedImages) and isinstance(mapped.x_test, MappedImages)
    assert any("caching train-images-idx3-ubyte.gz as uint8: 100%" in r.message for r in caplog.records)
    assert any(f"cached as uint8 in {cache_dir}" in r.getMessage() for r in caplog.records)
    assert len(entries(cache_dir)) == 2  # the training and the test images
    caplog.clear()
    with caplog.at_level(logging.WARNING, "netbuilder.datasets"):
        again = load_dataset(spec)
    assert not any("caching" in r.message for r in caplog.records)  # read from the cache, not rebuilt
    memory = in_memory(monkeypatch, spec)
    for split in ("train", "test"):
        np.testing.assert_array_equal(np.asarray(getattr(again, f"x_{split}")), getattr(memory, f"x_{split}"))
        np.testing.assert_array_equal(getattr(again, f"y_{split}"), getattr(memory, f"y_{split}"))
    whole = []  # a mapped set converted whole: what training and evaluation must never do

    def convert(self, dtype=None, copy=None):
        whole.append(len(self))
        return np.asarray(self[:], dtype)
    monkeypatch.setattr(MappedImages, "__array__", convert)
    a, b = Trainer(conv_project(8), memory), Trainer(conv_project(8), again)
    a.fit(), b.fit()
    assert_same_run(a, b)
    assert b.data.mapped and isinstance(b._x, MappedImages)
    np.testing.assert_array_equal(b._x[b.val_idx], a._x[a.val_idx])  # what other modules read stays right
    # Evaluation of a mapped split goes batch by batch and gives the in-memory figures.
    for split in ("test", "val"):
        xm, ym, _ = evaluation_split(b.project, again, split)
        xa, ya, _ = evaluation_split(a.project, memory, split)
        assert isinstance(xm, MappedImages)
        got, want = evaluate_network(b.network, xm, ym), evaluate_network(a.network, xa, ya)
        assert got.to_dict() == want.to_dict()
    assert whole == []


def test_a_raw_idx_set_is_mapped_where_it_is(tmp_path, cache_dir, monkeypatch):
    spec = {"kind": "idx", "path": str(make_idx(tmp_path / "raw", gz=False)), "transpose": True}
    mapped = load_dataset(spec)
    assert isinstance(mapped.x_train, MappedImages) and not cache_dir.exists()
    np.testing.assert_array_equal(np.asarray(mapped.x_train), in_memory(monkeypatch, spec).x_train)
    (tmp_path / "raw" / "t10k-images-idx3-ubyte").open("ab").write(b"\0")
    with pytest.raises(DatasetError, match="1 unexpected bytes at the end"):
        load_dataset(spec)


def test_an_image_folder_with_its_splits_and_a_bad_file_trains_as_in_memory(tmp_path, cache_dir, monkeypatch):
    spec = {"kind": "folder", "path": str(make_folder(tmp_path / "f")), "input_shape": [1, 8, 8]}
    mapped = load_dataset(spec)
    memory = in_memory(monkeypatch, spec)
    assert isinstance(mapped.x_val, MappedImages) and len(mapped.x_train) == 60
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(np.asarray(getattr(mapped, f"x_{split}")), getattr(memory, f"x_{split}"))
        np.testing.assert_array_equal(getattr(mapped, f"y_{split}"), getattr(memory, f"y_{split}"))
    a, b = Trainer(conv_project(8), memory), Trainer(conv_project(8), mapped)
    a.fit(), b.fit()
    assert_same_run(a, b)
    x, y = b.validation_data()  # the whole validation split: a view, read as indexed
    assert isinstance(x, MappedImages) and len(x) == len(y) == 60
    np.testing.assert_array_equal(x[:5], a.validation_data()[0][:5])
    # The report's notes are the same on a load from the cache, plus where it is cached.
    notes = []
    from netbuilder.core.datasets.folder import read_image_folder
    read_image_folder(tmp_path / "f", (1, 8, 8), notes=notes)
    assert notes[0].startswith("skipped 1 unreadable image file(s): broken.png")
    assert notes[-1].startswith(f"cached as uint8 in {cache_dir}")


def test_the_torch_engine_trains_on_a_mapped_set_as_on_the_same_set_in_memory(tmp_path, cache_dir, monkeypatch):
    from netbuilder.core.torch_engine import TorchTrainer

    spec = {"kind": "idx", "path": str(make_idx(tmp_path / "idx", side=8, test=0))}
    mapped, memory = load_dataset(spec), in_memory(monkeypatch, spec)
    a, b = (TorchTrainer(conv_project(8, epochs=1), ds, device="cpu") for ds in (memory, mapped))
    a.fit(), b.fit()
    assert b.data.mapped
    assert_same_run(a, b)


def test_gather_fills_float32_and_float64_batches_as_the_in_memory_set_does(tmp_path, cache_dir, monkeypatch):
    spec = {"kind": "folder", "path": str(make_folder(tmp_path / "f", splits=())), "input_shape": [1, 8, 8]}
    mapped, memory = load_dataset(spec), in_memory(monkeypatch, spec)
    idx = np.array([5, 0, 44, 17, 17])
    for dtype in (np.float32, np.float64):
        net = Trainer(conv_project(8), memory, dtype=dtype).network
        got, want = (TrainingData(conv_project(8), ds, net, 0.2, 1) for ds in (mapped, memory))
        xb, xw = np.empty((5, 1, 8, 8), dtype), np.empty((5, 1, 8, 8), dtype)
        yb, yw = np.empty(5, np.int64), np.empty(5, np.int64)
        got.gather(idx, xb, yb)
        want.gather(idx, xw, yw)
        np.testing.assert_array_equal(xb, xw)
        np.testing.assert_array_equal(yb, yw)
        assert got.rows(idx)[0].dtype == dtype
        np.testing.assert_array_equal(got.rows(idx)[0], want.rows(idx)[0])


# --- the cache is rebuilt, never trusted, when it may be wrong ---------------------------------------
def load_logged(spec, caplog) -> tuple[Dataset, list[str]]:
    caplog.clear()
    with caplog.at_level(logging.WARNING, "netbuilder.datasets"):
        ds = load_dataset(spec)
    return ds, [r.getMessage() for r in caplog.records]


def rebuilt(messages) -> list[str]:
    return [m.split("rebuilding the data cache: ")[1] for m in messages if "rebuilding the data cache" in m]


def test_a_changed_source_file_rebuilds_the_cache(tmp_path, cache_dir, caplog):
    root = make_folder(tmp_path / "f", splits=())
    spec = {"kind": "folder", "path": str(root), "input_shape": [1, 10, 10]}
    first, _ = load_logged(spec, caplog)
    _, messages = load_logged(spec, caplog)
    assert not rebuilt(messages) and not any("caching" in m for m in messages)
    target = root / "bee" / "3.pgm"
    i = int(np.flatnonzero(first.y_train == 1)[3])
    write_pgm(target, np.full((10, 10), 7, np.uint8))  # the same size, new pixels
    then = time.time() - 50  # and a date not just now (that would be rebuilt anyway), but not the old one
    os.utime(target, (then, then))
    changed, messages = load_logged(spec, caplog)
    assert rebuilt(messages) == ["the source or the loading options changed"]
    np.testing.assert_array_equal(changed.x_train[i], np.full((1, 10, 10), np.float32(7) / np.float32(255)))
    assert len(entries(cache_dir)) == 1  # rebuilt in place, nothing left behind
    _, messages = load_logged({**spec, "resize": "stretch"}, caplog)  # a loading option is part of the key too
    assert rebuilt(messages) == ["the source or the loading options changed"]


def test_a_changed_gzip_idx_file_rebuilds_its_cache(tmp_path, cache_dir, caplog):
    folder = make_idx(tmp_path / "idx", test=0)
    spec = {"kind": "idx", "path": str(folder)}
    load_dataset(spec)
    x, _ = pattern_images(240, 8, seed=9)
    write_idx(folder / "train-images-idx3-ubyte.gz", x)
    age(folder, 30)
    ds, messages = load_logged(spec, caplog)
    assert rebuilt(messages) == ["the source or the loading options changed"]
    np.testing.assert_array_equal(np.asarray(ds.x_train)[:, 0], x / np.float32(255))


def cached_files(cache_dir: Path, name: str) -> Path:
    (entry,) = entries(cache_dir)
    return entry / name


@pytest.mark.parametrize("damage, reason", [
    (lambda p: p.write_bytes(p.read_bytes()[:-100]), "images.npy is {} bytes where its header says {} (truncated"),
    (lambda p: p.unlink(), "images.npy is missing"),
    (lambda p: p.write_bytes(b"\x93NUMPY garbage"), "images.npy is not a readable .npy file"),
])
def test_a_truncated_or_damaged_cache_file_is_detected_and_rebuilt(tmp_path, cache_dir, caplog, damage, reason):
    spec = {"kind": "folder", "path": str(make_folder(tmp_path / "f", splits=())), "input_shape": [1, 8, 8]}
    want = np.asarray(load_dataset(spec).x_train)
    images = cached_files(cache_dir, "images.npy")
    size = images.stat().st_size
    damage(images)
    ds, messages = load_logged(spec, caplog)
    (why,) = rebuilt(messages)
    head, _, tail = reason.partition("{} bytes where its header says {}")
    assert why.startswith(head) and tail in why
    np.testing.assert_array_equal(np.asarray(ds.x_train), want)
    assert images.stat().st_size == size
    assert not rebuilt(load_logged(spec, caplog)[1])  # and trusted again once rebuilt


@pytest.mark.parametrize("edit, reason", [
    (lambda m: "{ not json", "its manifest is not valid JSON"),
    (lambda m: json.dumps({**json.loads(m), "format": 99}), "its manifest is of another format"),
    (lambda m: json.dumps({**json.loads(m), "arrays": {"images": {"file": "../x.npy"}}}),
     "its manifest's entry for 'images' is malformed"),
    (lambda m: m.replace('"rounded": 0', '"rounded": "lots"'), "its manifest's notes are malformed"),
])
def test_a_corrupt_manifest_is_rebuilt(tmp_path, cache_dir, caplog, edit, reason):
    spec = {"kind": "folder", "path": str(make_folder(tmp_path / "f", splits=())), "input_shape": [1, 8, 8]}
    want = np.asarray(load_dataset(spec).x_train)
    manifest = cached_files(cache_dir, "manifest.json")
    manifest.write_text(edit(manifest.read_text()))
    ds, messages = load_logged(spec, caplog)
    assert rebuilt(messages) == [reason]
    np.testing.assert_array_equal(np.asarray(ds.x_train), want)


def test_damaged_small_arrays_fail_their_checksum_and_are_rebuilt(tmp_path, cache_dir, caplog):
    spec = {"kind": "folder", "path": str(make_folder(tmp_path / "f", splits=())), "input_shape": [1, 8, 8]}
    load_dataset(spec)
    modes = cached_files(cache_dir, "modes.npy")
    data = bytearray(modes.read_bytes())
    data[-1] ^= 0xFF
    modes.write_bytes(bytes(data))
    _, messages = load_logged(spec, caplog)
    assert rebuilt(messages) == ["modes.npy's contents do not match its checksum"]


def test_a_source_modified_during_the_build_is_rebuilt_next_time(tmp_path, cache_dir, caplog):
    spec = {"kind": "idx", "path": str(make_idx(tmp_path / "idx", test=0))}
    os.utime(tmp_path / "idx" / "train-images-idx3-ubyte.gz")  # written just now
    load_dataset(spec)
    _, messages = load_logged(spec, caplog)
    assert rebuilt(messages) == ["a source file was being modified while it was built"]


def test_loads_at_once_build_the_cache_once(tmp_path, cache_dir, caplog):
    import threading

    spec = {"kind": "idx", "path": str(make_idx(tmp_path / "idx", n=3000, side=16, test=0))}
    results = []
    threads = [threading.Thread(target=lambda: results.append(load_dataset(spec))) for _ in range(4)]
    with caplog.at_level(logging.WARNING, "netbuilder.datasets"):
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    done = "caching train-images-idx3-ubyte.gz as uint8: 100%"
    builds = [r for r in caplog.records if r.getMessage().startswith(done)]
    assert len(results) == 4 and len(builds) == 1
    for ds in results[1:]:
        np.testing.assert_array_equal(np.asarray(ds.x_train), np.asarray(results[0].x_train))


def test_a_cache_that_cannot_be_written_says_where_and_how_to_move_it(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("NETBUILDER_CACHE_DIR", str(blocker / "cache"))
    monkeypatch.setenv(data_cache.MAP_VARIABLE, "0")
    with pytest.raises(DatasetError, match=r"cannot make the data cache .*set \$NETBUILDER_CACHE_DIR"):
        load_dataset({"kind": "idx", "path": str(make_idx(tmp_path / "idx", test=0))})
    monkeypatch.setenv(data_cache.MAP_VARIABLE, "lots")
    with pytest.raises(DatasetError, match=r"NETBUILDER_MAP_DATA_ABOVE must be a number of bytes, got 'lots'"):
        data_cache.map_threshold()


def test_watchers_hear_the_build_every_percent_and_the_cache_ready(tmp_path, cache_dir):
    events = []
    unwatch = data_cache.watch(events.append)
    try:
        load_dataset({"kind": "idx", "path": str(make_idx(tmp_path / "idx", n=300, test=0))})
    finally:
        unwatch()
    assert events[-1].note.startswith(f"cached as uint8 in {cache_dir}") and events[-1].note.endswith("KiB)")
    progress = [e for e in events if e.note is None]
    assert progress[-1].done == progress[-1].total == 300 and len(progress) <= 101
    assert data_cache.plan_note(10**7, (3, 64, 64)).startswith("10,000,000 images take 458 GiB as float32")


# --- larger than the memory limit ------------------------------------------------------------------
LIMITED = r"""
import json, os, resource, sys
from netbuilder.core.datasets import load_dataset
from netbuilder.core.project import Project, TrainingSettings
from netbuilder.core.trainer import Trainer

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024

spec, side, budget = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
base_rss, base_file = status("VmRSS"), status("RssFile")
if budget:  # private memory (the heap, anonymous maps) beyond what the imports took; file maps are not counted
    limit = status("VmData") + budget
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
try:
    ds = load_dataset(spec)
    blocks = [{"kind": "pool", "mode": "max", "size": 4},
              {"kind": "conv", "filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"},
              {"kind": "pool", "mode": "max", "size": 4}, {"kind": "dense", "units": 3, "activation": "softmax"}]
    project = Project(name="big", input_shape=(1, side, side), num_classes=3, blocks=blocks,
                      training=TrainingSettings(optimizer="adam", learning_rate=0.01, batch_size=32, epochs=1,
                                                validation_fraction=0.1))
    trainer = Trainer(project, ds)
    trainer.fit()
    result = {"status": trainer.history.status, "val_accuracy": (trainer.history.val_accuracy or [None])[-1],
              "error": repr(trainer.error),
              "images": type(ds.x_train).__name__}
except MemoryError:
    result = {"status": "MemoryError"}
result.update(peak_rss=status("VmHWM"), base_rss=base_rss, file_rss=status("RssFile") - base_file)
print(json.dumps(result))
"""
BUDGET = 150 << 20


def train_limited(spec, side, budget, env) -> dict:
    out = subprocess.run([sys.executable, "-c", LIMITED, json.dumps(spec), str(side), str(budget)], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def limited_runs(spec, side, float_bytes, tmp_path) -> None:
    """Train on ``spec`` under the memory limit (mapped), and show that the limit is real: the same
    set loaded into memory cannot live within it; print the peak memory of both."""
    env = {**os.environ, "NETBUILDER_CACHE_DIR": str(tmp_path / "cache"), data_cache.MAP_VARIABLE: str(64 << 20)}
    assert BUDGET < float_bytes / 2
    mapped = train_limited(spec, side, BUDGET, env)
    assert mapped["status"] == "finished" and mapped["images"] == "MappedImages", mapped
    assert mapped["val_accuracy"] > 0.9
    growth = mapped["peak_rss"] - mapped["base_rss"]  # the cache's file pages read count here too
    assert growth < 0.75 * float_bytes, mapped
    refused = train_limited(spec, side, BUDGET, {**env, data_cache.MAP_VARIABLE: str(1 << 50)})
    assert refused["status"] == "MemoryError"
    memory = train_limited(spec, side, 0, {**env, data_cache.MAP_VARIABLE: str(1 << 50)})
    print(f"\nfloat32 size {float_bytes / 2**20:.0f} MiB, limit {BUDGET >> 20} MiB of private memory above the "
          f"imports; peak RSS above the imports: mapped {growth / 2**20:.0f} MiB (of it, at the end, "
          f"{mapped['file_rss'] / 2**20:.0f} MiB of file pages: the cache as read), in memory "
          f"without the limit {(memory['peak_rss'] - memory['base_rss']) / 2**20:.0f} MiB")


@pytest.mark.slow
def test_an_idx_set_larger_than_the_memory_limit_trains(tmp_path):
    n, side = 20000, 64
    x, y = pattern_images(n, side)
    (tmp_path / "idx").mkdir()
    write_idx(tmp_path / "idx" / "train-images-idx3-ubyte.gz", x)
    write_idx(tmp_path / "idx" / "train-labels-idx1-ubyte.gz", y)
    age(tmp_path / "idx")
    limited_runs({"kind": "idx", "path": str(tmp_path / "idx")}, side, n * side * side * 4, tmp_path)


@pytest.mark.slow
def test_an_image_folder_larger_than_the_memory_limit_trains(tmp_path):
    per_class, side = 2000, 128
    x, y = pattern_images(3 * per_class, side)
    for k in range(3):
        (tmp_path / "f" / f"c{k}").mkdir(parents=True)
    for i, (image, label) in enumerate(zip(x, y)):
        write_pgm(tmp_path / "f" / f"c{label}" / f"{i}.pgm", image)
    age(tmp_path / "f")
    spec = {"kind": "folder", "path": str(tmp_path / "f"), "input_shape": [1, side, side]}
    limited_runs(spec, side, len(x) * side * side * 4, tmp_path)
