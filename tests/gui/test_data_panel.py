"""The data panel: choosing a dataset sets the project's spec (undoable), the preview shows counts,
a mismatching dataset offers the fix, downloads report progress without blocking."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from PySide6.QtWidgets import QApplication

from netbuilder.core.datasets import download
from netbuilder.core.datasets.download import Source
from netbuilder.gui.views.data_panel import SOURCES, DataPanel
from tests.core.test_download import FILES, Server, generated_files, md5
from tests.gui.events import data_ready
from tests.gui.test_feature_maps import FakeController


@pytest.fixture
def fake(qtbot):
    return FakeController()


@pytest.fixture
def saved_doc(doc, tmp_path):
    doc.save(tmp_path / "project.json")
    return doc


def make_panel(qtbot, doc, fake) -> DataPanel:
    panel = DataPanel(doc, fake)
    qtbot.addWidget(panel)
    panel.resize(800, 700)
    panel.show()
    qtbot.waitExposed(panel)
    return panel


def loaded(panel: DataPanel, name: str | None = None):
    return lambda: panel.preview is not None and (name is None or panel.preview.name == name)


def choose(panel: DataPanel, kind: str) -> None:
    i = [k for _, k in SOURCES].index(kind)
    panel.source_combo.setCurrentIndex(i)
    panel.source_combo.activated.emit(i)


def write_npz(path, n_per_class=(12, 12, 4), shape=(28, 28, 3)):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(len(n_per_class)), n_per_class)
    x = rng.integers(0, 256, (len(y), *shape)).astype(np.uint8)  # NHWC colour images
    np.savez(path, x=x, y=y)
    return x, y


def test_the_builtin_shapes_preview_counts_every_class(qtbot, doc, fake):
    panel = make_panel(qtbot, doc, fake)
    assert panel.busy_bar.isVisible()  # read in the background
    qtbot.waitUntil(loaded(panel), timeout=20000)
    assert not panel.busy_bar.isVisible()
    assert panel.source_combo.currentData() == "shapes"
    rows = panel.class_rows()
    assert len(rows) == 10
    assert rows[0] == "circle · 1,200 images · 200 test"
    assert all(panel.sample_count(k) == 8 for k in range(10))
    assert "10 classes · 12,000 training images · 2,000 test images" in panel.summary_label.text()
    assert panel.fit_problems == [] and not panel.fit_box.isVisible()


def test_choosing_an_npz_sets_a_relative_spec_undoably_and_shows_the_mismatch(qtbot, saved_doc, fake, tmp_path):
    doc = saved_doc
    write_npz(tmp_path / "data.npz")
    panel = make_panel(qtbot, doc, fake)
    qtbot.waitUntil(loaded(panel), timeout=20000)
    panel.choose_file = lambda title, filters: str(tmp_path / "data.npz")
    choose(panel, "npz")
    assert doc.project.dataset == {"kind": "npz", "path": "data.npz"}  # relative to the project file
    assert doc.undo_stack.undoText() == "Choose dataset data.npz"
    qtbot.waitUntil(loaded(panel, "data"), timeout=10000)
    assert panel.class_rows() == ["0 · 12 images", "1 · 12 images", "2 · 4 images"]
    assert "imbalanced classes" in panel.notes_label.text() and panel.notes_label.isVisible()
    assert panel.fit_box.isVisible()
    assert panel.fit_problems == [
        "the project takes 1x28x28 (channels x height x width) inputs but the dataset's images are "
        "3x28x28 (channels x height x width)",
        "the project has 10 outputs but the dataset has 3 classes"]
    assert panel.fit_button.text() == "Set the input to 3×28×28 and the classes to 3"

    doc.undo_stack.undo()
    assert doc.project.dataset == {"kind": "shapes"}
    assert panel.source_combo.currentData() == "shapes"
    qtbot.waitUntil(loaded(panel, "shapes"), timeout=20000)
    assert not panel.fit_box.isVisible()
    doc.undo_stack.redo()
    assert panel.source_combo.currentData() == "npz"
    qtbot.waitUntil(loaded(panel, "data"), timeout=10000)


def test_the_fix_button_fits_the_network_in_one_undo_step(qtbot, saved_doc, fake, tmp_path):
    doc = saved_doc
    write_npz(tmp_path / "data.npz")
    doc.set_value("dataset", {"kind": "npz", "path": "data.npz"})
    panel = make_panel(qtbot, doc, fake)
    qtbot.waitUntil(loaded(panel, "data"), timeout=10000)
    depth = doc.undo_stack.count()
    panel.fit_button.click()
    p = doc.project
    assert (tuple(p.input_shape), p.num_classes, p.blocks[-1]["units"]) == ((3, 28, 28), 3, 3)
    assert doc.inference.ok
    assert not panel.fit_box.isVisible() and panel.fit_problems == []
    assert doc.undo_stack.count() == depth + 1
    assert doc.undo_stack.undoText() == "Fit the network to the dataset"
    doc.undo_stack.undo()
    p = doc.project
    assert (tuple(p.input_shape), p.num_classes, p.blocks[-1]["units"]) == ((1, 28, 28), 10, 10)
    assert panel.fit_box.isVisible()


def test_an_image_folder_previews_and_its_resize_is_a_warning(qtbot, saved_doc, fake, tmp_path):
    from PIL import Image

    rng = np.random.default_rng(1)
    for cls, n in (("cats", 3), ("dogs", 5)):
        (tmp_path / "pets" / cls).mkdir(parents=True)
        for i in range(n):
            pixels = rng.integers(0, 256, (20, 16, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "pets" / cls / f"{i}.png")
    panel = make_panel(qtbot, saved_doc, fake)
    panel.choose_folder = lambda title: str(tmp_path / "pets")
    choose(panel, "folder")
    assert saved_doc.project.dataset == {"kind": "folder", "path": "pets", "class_order": "sorted"}
    qtbot.waitUntil(loaded(panel, "pets"), timeout=10000)
    assert panel.class_rows() == ["cats · 3 images", "dogs · 5 images"]
    assert [panel.sample_count(k) for k in (0, 1)] == [3, 5]
    assert panel.fit_box.isVisible()
    text = panel.fit_label.text()
    assert text.startswith("This dataset does not fit the network:")  # 2 classes, 10 outputs
    assert "the images (3×20×16) will be resized to the network's input (1×28×28)" in text  # not a blocker
    saved_doc.set_value("num_classes", 2)
    assert panel.fit_label.text().startswith("Note:") and "resized" in panel.fit_label.text()


def test_a_cancelled_dialog_changes_nothing_and_a_bad_file_is_named(qtbot, saved_doc, fake, tmp_path):
    panel = make_panel(qtbot, saved_doc, fake)
    panel.choose_file = lambda title, filters: None
    choose(panel, "npz")
    assert saved_doc.project.dataset == {"kind": "shapes"} and panel.source_combo.currentData() == "shapes"
    assert saved_doc.undo_stack.count() == 0

    (tmp_path / "broken.npz").write_bytes(b"not a zip at all")
    panel.choose_file = lambda title, filters: str(tmp_path / "broken.npz")
    choose(panel, "npz")
    qtbot.waitUntil(panel.error_label.isVisible, timeout=10000)
    assert "Cannot read this dataset:" in panel.error_label.text() and "broken.npz" in panel.error_label.text()
    assert panel.class_rows() == []


def test_choosing_is_disabled_while_training_locks_the_document(qtbot, doc, fake):
    panel = make_panel(qtbot, doc, fake)
    doc.set_locked("Training")
    assert not panel.source_combo.isEnabled() and "Training" in panel.source_combo.toolTip()
    doc.set_locked("")
    assert panel.source_combo.isEnabled()


def test_run_sizes_from_the_controller(qtbot, doc, fake):
    panel = make_panel(qtbot, doc, fake)
    fake.datasetReady.emit(data_ready(train_size=10800, val_size=1200))
    assert panel.run_label.text() == "This run trains on 10,800 images and validates on 1,200."


@pytest.fixture
def mnist_server(monkeypatch, tmp_path):
    files = generated_files()
    with Server(files) as server:
        monkeypatch.setitem(download.SOURCES, "mnist", Source("MNIST", {n: md5(files[n]) for n in FILES},
                                                              (server.url,)))
        monkeypatch.setenv("NETBUILDER_DATA_DIR", str(tmp_path / "cache"))
        yield server


def test_mnist_downloads_from_a_local_server_with_progress(qtbot, doc, fake, mnist_server, tmp_path):
    panel = make_panel(qtbot, doc, fake)
    choose(panel, "mnist")
    assert doc.project.dataset == {"kind": "mnist"}
    assert panel.download_box.isVisible() and "MNIST is not on this computer" in panel.download_label.text()
    seen = []
    shown = panel.download_box.show_progress  # what the progress bar is given, on the GUI thread

    def spy(done, total, what):
        seen.append((what, done, total))
        shown(done, total, what)

    panel.download_box.show_progress = spy
    panel.download_button.click()
    assert panel.downloading
    qtbot.waitUntil(loaded(panel, "MNIST"), timeout=20000)  # the event loop ran all along
    assert not panel.downloading and not panel.download_box.isVisible()
    assert {what for what, _, _ in seen} == set(FILES)
    assert all(done <= total for _, done, total in seen) and seen[-1][1] == seen[-1][2]
    assert download.locate("mnist") == tmp_path / "cache" / "mnist"
    assert len(panel.class_rows()) == 10 and panel.class_rows()[0] == "0 · 3 images · 1 test"


def test_a_download_can_be_cancelled(qtbot, doc, fake, monkeypatch, tmp_path):
    monkeypatch.setenv("NETBUILDER_DATA_DIR", str(tmp_path / "empty"))
    started = threading.Event()

    def slow_fetch(name, progress):
        total = 1_000_000
        for done in range(0, total, 1000):
            progress(done, total, "train-images-idx3-ubyte.gz")  # raises once Cancel is pressed
            started.set()
            threading.Event().wait(0.002)
        raise AssertionError("not cancelled")

    panel = make_panel(qtbot, doc, fake)
    panel.fetch_function = slow_fetch
    choose(panel, "mnist")
    panel.download_button.click()
    qtbot.waitUntil(lambda: panel.download_bar.value() > 0, timeout=10000)
    assert "train-images-idx3-ubyte.gz (1 of 4)" in panel.download_bar.format()
    panel.cancel_button.click()
    qtbot.waitUntil(lambda: not panel.downloading, timeout=10000)
    assert panel.download_label.text() == "Download cancelled."
    assert panel.download_button.isEnabled() and panel.download_button.text() == "Try again"


def test_a_csv_file_and_an_idx_folder_are_chosen_through_their_dialogs(qtbot, saved_doc, fake, tmp_path):
    from tests.core.test_idx import idx_bytes

    rows = ["label," + ",".join(f"p{i}" for i in range(16))]
    rows += [f"{k % 2}," + ",".join(str((k * 7 + i) % 256) for i in range(16)) for k in range(10)]
    (tmp_path / "digits.csv").write_text("\n".join(rows) + "\n")
    panel = make_panel(qtbot, saved_doc, fake)
    asked = []
    panel.choose_file = lambda title, filters: asked.append(filters) or str(tmp_path / "digits.csv")
    choose(panel, "csv")
    assert "*.csv" in asked[0]
    assert saved_doc.project.dataset == {"kind": "csv", "path": "digits.csv"}
    qtbot.waitUntil(loaded(panel, "digits"), timeout=10000)
    assert panel.class_rows() == ["0 · 5 images", "1 · 5 images"]
    assert panel.preview.input_shape == (1, 4, 4)

    (tmp_path / "idx").mkdir()
    rng = np.random.default_rng(3)
    (tmp_path / "idx" / "train-images-idx3-ubyte").write_bytes(
        idx_bytes(rng.integers(0, 256, (12, 5, 5)).astype(np.uint8)))
    (tmp_path / "idx" / "train-labels-idx1-ubyte").write_bytes(idx_bytes((np.arange(12) % 3).astype(np.uint8)))
    panel.choose_folder = lambda title: str(tmp_path / "idx")
    choose(panel, "idx")
    assert saved_doc.project.dataset == {"kind": "idx", "path": "idx"}
    qtbot.waitUntil(loaded(panel, "idx"), timeout=10000)
    assert panel.class_rows() == ["0 · 4 images", "1 · 4 images", "2 · 4 images"]
    assert panel.choose_button.isVisible()
    saved_doc.undo_stack.undo()
    assert saved_doc.project.dataset == {"kind": "csv", "path": "digits.csv"}


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_result_arriving_after_the_panel_is_gone_is_harmless(qtbot, doc, fake, monkeypatch):
    from shiboken6 import isValid

    from netbuilder.gui.views import data_panel

    release = threading.Event()
    real = data_panel.preview_dataset
    monkeypatch.setattr(data_panel, "preview_dataset", lambda *a: release.wait(10) and real(*a))
    panel = DataPanel(doc, fake)
    panel.show()
    readers = [t for t in threading.enumerate() if t.name.startswith("netbuilder-data-")]
    assert readers and panel.busy_bar.isVisible()
    panel.deleteLater()
    qtbot.waitUntil(lambda: not isValid(panel))
    release.set()
    for thread in readers:
        thread.join(10)
    assert not any(t.is_alive() for t in readers)
    QApplication.sendPostedEvents()  # the (now unwanted) queued result: nothing receives it, nothing breaks
    QApplication.processEvents()


def test_a_narrow_column_after_training_needs_no_sideways_scrolling(qtbot, doc, fake):
    panel = make_panel(qtbot, doc, fake)
    qtbot.waitUntil(loaded(panel), timeout=20000)
    fake.datasetReady.emit(data_ready(train_size=10800, val_size=1200))
    assert panel.minimumSizeHint().width() <= 280  # the Training view's left column at 1024x640
