"""The confusion view: K x K counts with class names, row-normalised colours, per-class accuracy."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtGui import QColor

from netbuilder.core.trainer import EpochEnd, RunStarted
from netbuilder.gui.views.confusion import ConfusionView
from tests.gui.events import data_ready, epochs_done, run_began
from tests.gui.test_feature_maps import FakeController

NAMES = ["cat", "dog", "bird"]


def epoch(n: int) -> EpochEnd:
    return EpochEnd(n, 0.5, 0.8, 0.6, 0.7, 1.0, 100.0)


@pytest.fixture
def fake(qtbot):
    return FakeController(NAMES)


@pytest.fixture
def view(qtbot, fake):
    w = ConfusionView(fake)
    qtbot.addWidget(w)
    w.resize(600, 500)
    w.show()
    qtbot.waitExposed(w)
    return w


def test_shows_the_epoch_counts_names_and_accuracy(view, fake, qtbot):
    counts = np.array([[8, 2, 0], [1, 5, 4], [0, 0, 10]])
    with qtbot.waitSignal(fake.epochEnded):
        fake.epochEnded.emit(epochs_done(epoch(3), confusion=counts))
    m = view.matrix_widget
    assert view.matrix().shape == (3, 3) and (view.matrix() == counts).all()
    assert view.epoch == 3
    assert "epoch 3" in view.header.text() and "accuracy 76.7% of 30 samples" in view.header.text()
    assert m.class_accuracy() == pytest.approx([0.8, 0.5, 1.0])
    assert m.shares()[1] == pytest.approx([0.1, 0.5, 0.4])
    assert m.cell_text(1, 2) == "true dog → predicted bird: 4 (40% of 10)"


def test_cells_are_coloured_by_share_of_their_row(view, fake, qtbot):
    counts = np.array([[90, 10, 0], [1, 1, 0], [0, 0, 5]])  # row 1 is tiny but half right
    fake.epochEnded.emit(epochs_done(epoch(1), confusion=counts))
    m = view.matrix_widget
    qtbot.waitUntil(lambda: m.width() > 200)
    image = m.grab().toImage()
    left, top, cell, _ = m._geometry()

    def colour(i, j):
        return QColor(image.pixel(int(left + (j + 0.15) * cell), int(top + (i + 0.15) * cell)))

    assert colour(0, 0).lightness() < colour(1, 1).lightness() < 250  # 90% row share darker than 50%
    assert colour(0, 2).getRgb()[:3] == (255, 255, 255)  # nothing there: blank
    assert colour(0, 1).red() > colour(0, 1).blue()  # a mistake is red-tinted
    assert colour(2, 2).blue() > colour(2, 2).red()  # a hit is blue


def test_a_new_run_clears_and_no_validation_split_is_explained(view, fake):
    fake.epochEnded.emit(epochs_done(epoch(1), confusion=np.eye(3, dtype=int)))
    fake.runStarted.emit(run_began(RunStarted(2, 10, 100, 10), label="run 2"))
    assert view.matrix().shape == (0, 0) and view.epoch is None
    assert "first epoch" in view.header.text()
    fake.epochEnded.emit(epochs_done(epoch(1), confusion=None))
    assert "No validation split" in view.header.text()


def test_class_names_come_from_the_dataset(view, fake):
    fake.datasetReady.emit(data_ready(["a", "b"]))
    fake.epochEnded.emit(epochs_done(epoch(1), confusion=np.array([[1, 0], [0, 1]])))
    assert view.matrix_widget.cell_text(0, 1) == "true a → predicted b: 0 (0% of 1)"


def test_a_continued_run_keeps_the_last_matrix_until_its_next_epoch(view, fake):
    fake.epochEnded.emit(epochs_done(epoch(2), confusion=np.eye(3, dtype=int)))
    fake.runStarted.emit(run_began(RunStarted(1, 10, 100, 10, 2), label="run 1 · continued", continued=True))
    assert view.epoch == 2 and view.matrix().sum() == 3


def test_tiny_cells_drop_the_names_instead_of_piling_them_up(qtbot):
    from netbuilder.gui.views.confusion import ConfusionMatrix

    names = [f"class number {i}" for i in range(40)]
    m = ConfusionMatrix()
    qtbot.addWidget(m)
    m.set_matrix(np.eye(40, dtype=np.int64) * 3, names)
    m.resize(300, 260)  # 40 classes in 300 pixels: a few pixels a cell
    m.show()
    qtbot.waitExposed(m)
    left, top, cell, _ = m._geometry()
    assert not m.names_shown and cell * 40 > 150  # the names' room went to the matrix
    assert m.cell_text(3, 3).startswith("true class number 3 → predicted class number 3")  # the hover names it
    m.resize(900, 900)
    m._geometry()
    assert m.names_shown


@pytest.mark.parametrize("width,height", [(290, 230), (240, 200), (600, 260)])
def test_the_caption_never_lies_over_the_matrix_in_a_short_pane(qtbot, width, height):
    from netbuilder.gui.main_window import _scrolled

    fake = FakeController([f"class {i}" for i in range(10)])
    view = ConfusionView(fake)
    area = _scrolled(view)  # as the window holds it
    qtbot.addWidget(area)
    area.resize(width, height)
    area.show()
    qtbot.waitExposed(area)
    fake.epochEnded.emit(epochs_done(epoch(1), confusion=np.eye(10, dtype=int) * 50 + 1))
    qtbot.wait(10)
    header, matrix, note = view.header.geometry(), view.matrix_widget.geometry(), view.note.geometry()
    assert header.bottom() < matrix.top() and matrix.bottom() < note.top()
    assert note.height() >= view.note.heightForWidth(note.width())  # the whole caption, unclipped
