"""The batch curves hand the plot at most two points per pixel column, keeping each column's extremes."""
from __future__ import annotations

import numpy as np
import pytest

from netbuilder.gui import decimate
from netbuilder.gui.decimate import ColumnDecimator, column_extremes
from tests.gui.test_curves import shown_view, start

N = 100_000


@pytest.fixture
def shown(qtbot):
    return shown_view(qtbot)


def long_run(view, controller):
    """A run of ``N`` batches over 10 epochs: a falling loss with one spike up and one dip."""
    start(controller)
    run = view.current
    run.end_epoch = 10.0
    x = np.arange(1, N + 1) * (10.0 / N)
    loss = 2.0 * np.exp(-x / 3) + 0.05 * np.random.default_rng(0).random(N)
    loss[31_415], loss[77_777] = 9.0, 0.001
    run.add_batches(zip(x.tolist(), loss.tolist(), np.full(N, 0.5).tolist()))
    view.redraw()  # the x range becomes 0..10 epochs, which re-chooses the points for it
    return run, x, loss


def test_a_long_run_hands_the_plot_two_points_a_column_and_keeps_the_spikes(shown):
    controller, view = shown
    run, x, loss = long_run(view, controller)
    pixels = run._view.width()
    assert 300 < pixels < 520
    drawn_x, drawn_y = run.raw_loss.getData()
    assert 0.5 * pixels < len(drawn_x) <= 2 * pixels + 2
    assert drawn_y.max() == 9.0 and drawn_y.min() == pytest.approx(0.001)
    assert x[31_415] in drawn_x and x[77_777] in drawn_x  # where they happened, too
    assert np.all(np.diff(drawn_x) > 0)  # in order, each point once
    for curve in (run.smooth_loss, run.smooth_acc):
        assert len(curve.getData()[0]) <= 2 * pixels + 2
    assert run.smooth_loss.getData()[1].max() == pytest.approx(run.batches.column(3).max())


def test_the_points_follow_the_plot_width(shown, qtbot):
    controller, view = shown
    run, *_ = long_run(view, controller)
    narrow = len(run.raw_loss.getData()[0])
    view.resize(1000, 420)
    qtbot.waitUntil(lambda: run._view.width() > 700)
    wide = len(run.raw_loss.getData()[0])
    assert wide > 1.5 * narrow and wide <= 2 * run._view.width() + 2


def test_a_short_run_keeps_every_point(shown):
    controller, view = shown
    start(controller)
    run = view.current
    points = [((k + 1) / 16, 1.0 / (k + 1), 0.5) for k in range(64)]  # 4 epochs of 16: wider apart than pixels
    run.add_batches(points)
    view.redraw()
    assert np.allclose(run.raw_loss.getData()[1], [p[1] for p in points])


def test_column_extremes_keeps_lowest_and_highest_in_order_and_drops_gaps():
    x = np.array([0.1, 0.2, 0.3, 0.4, 1.1, 1.2, 1.5, 2.5, 2.6])
    y = np.array([5.0, 1.0, 7.0, 3.0, np.nan, 2.0, 2.0, np.nan, np.nan])
    keep, last = column_extremes(x, y, 1.0)
    assert keep.tolist() == [1, 2, 5]  # column 0: low then high; column 1: the first of equal values; 2: none
    assert last == 7


def test_the_loop_for_a_few_points_gives_what_numpy_gives(monkeypatch):
    rng = np.random.default_rng(3)
    for _ in range(200):
        n = int(rng.integers(1, decimate.SMALL + 1))
        x = np.sort(rng.random(n)) * 3
        y = rng.choice([0.5, 1.0, np.nan, 2.0], n) + (rng.random(n) < 0.5) * rng.random(n)
        width = float(rng.choice([0.01, 0.2, 1.0, 5.0]))
        looped = column_extremes(x, y, width)
        monkeypatch.setattr(decimate, "SMALL", 0)
        vectorised = column_extremes(x, y, width)
        monkeypatch.undo()
        assert looped[0].tolist() == vectorised[0].tolist() and looped[1] == vectorised[1]


def test_a_growing_curve_gets_the_points_it_would_get_at_once():
    rng = np.random.default_rng(4)
    x = np.cumsum(rng.random(5000)) / 500
    y = rng.standard_normal(5000)
    grown = ColumnDecimator()
    for end in (1, 7, 8, 300, 301, 2000, 4999, 5000):
        step = grown.indices(x[:end], y[:end], 0.05)
    assert step.tolist() == column_extremes(x, y, 0.05)[0].tolist()
    assert ColumnDecimator().indices(x, y, 0.05).tolist() == step.tolist()
