"""The curves view: points appended per batch and epoch, smoothing, earlier runs faded and hideable."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QObject, Qt, Signal

from netbuilder.core.run_events import BatchesDone, RunBegan
from netbuilder.core.trainer import BatchEnd, EpochEnd, RunEnded, RunStarted
from netbuilder.gui.curves import REDRAW_MS, SMOOTHING, CurvesView
from netbuilder.gui.training.events import x_in_epochs
from tests.gui.events import epochs_done


class Controller(QObject):
    runStarted = Signal(object)
    batchEnded = Signal(object)
    epochEnded = Signal(object)
    runEnded = Signal(object)


@pytest.fixture
def setup(qtbot):
    controller = Controller()
    view = CurvesView(controller)
    qtbot.addWidget(view)
    return controller, view


def shown_view(qtbot, width=520, height=420):
    """(controller, view) of a CurvesView on screen at ``width`` x ``height``: pixel columns are real."""
    controller = Controller()
    view = CurvesView(controller)
    qtbot.addWidget(view)
    view.resize(width, height)
    view.show()
    qtbot.waitExposed(view)
    return controller, view


def start(controller, run=1, label=None, continued=False, start_epoch=0, history=(), batch_losses=()):
    controller.runStarted.emit(RunBegan(RunStarted(2, 4, 16, 4, start_epoch), history=list(history),
                                        batch_losses=[list(b) for b in batch_losses],
                                        label=label or f"run {run} · sgd lr 0.1 · batch 4", run=run,
                                        continued=continued))


def batches(controller, epoch, losses, first=1, bpe=4):
    """Batches ``first``, ``first`` + 1, ... of ``epoch`` in one batchEnded signal."""
    points = [(x_in_epochs(epoch, first + b, bpe), loss, 0.5) for b, loss in enumerate(losses)]
    event = BatchEnd(epoch, first + len(losses) - 1, bpe, losses[-1], 0.5, 100.0, 4 * len(losses))
    controller.batchEnded.emit(BatchesDone(event, points))


def epoch_end(epoch, loss=1.0, val=0.9):
    return EpochEnd(epoch, loss, 0.6, val, 0.7, 1.0, 100.0)


def test_points_are_drawn_as_they_come_and_a_burst_once_on_the_timer(qtbot):
    controller, view = shown_view(qtbot)
    start(controller)
    qtbot.wait(2 * REDRAW_MS)
    batches(controller, 1, [2.0, 1.8])
    run = view.current
    assert len(run.raw_loss.getData()[0]) == 2 and not view.redraws.timer.isActive()  # drawn at once
    batches(controller, 1, [1.5, 1.4], first=3)  # within REDRAW_MS of that redraw: on the timer
    controller.epochEnded.emit(epochs_done(epoch_end(1)))
    assert view.redraws.timer.isActive() and len(run.raw_loss.getData()[0]) == 2
    assert (run.batch_count, run.epoch_count) == (4, 1)
    qtbot.waitUntil(lambda: run.raw_loss.getData()[0] is not None and len(run.raw_loss.getData()[0]) == 4)
    x, y = run.raw_loss.getData()
    assert np.allclose(x, [0.25, 0.5, 0.75, 1.0]) and np.allclose(y, [2.0, 1.8, 1.5, 1.4])
    assert np.allclose(run.val_loss.getData()[1], [0.9]) and np.allclose(run.val_acc.getData()[1], [70.0])
    controller.runEnded.emit(RunEnded("finished", "finished 1 epoch", 1))
    assert not view.redraws.timer.isActive()


def test_a_hidden_view_draws_nothing_until_it_is_shown_and_always_draws_the_run_end(qtbot):
    controller, view = shown_view(qtbot)
    start(controller)
    view.hide()
    batches(controller, 1, [2.0, 1.8])
    run = view.current
    qtbot.wait(3 * view.redraws.timer.interval())  # the redraw came due while hidden
    x, _ = run.raw_loss.getData()
    assert not view.redraws.timer.isActive() and (x is None or len(x) == 0)
    view.show()  # shown: drawn at once
    assert np.allclose(run.raw_loss.getData()[1], [2.0, 1.8])

    view.hide()
    batches(controller, 1, [1.5], first=3)
    controller.epochEnded.emit(epochs_done(epoch_end(1)))
    controller.runEnded.emit(RunEnded("stopped", "stopped after 1 complete epoch", 1))
    assert len(run.raw_loss.getData()[0]) == 3 and np.allclose(run.val_loss.getData()[1], [0.9])  # not stale


def test_the_smoothed_loss_is_a_debiased_moving_average(setup):
    controller, view = setup
    start(controller)
    losses = [2.0, 1.0, 4.0]
    batches(controller, 1, losses)
    view.redraw()
    ema, expected = 0.0, []
    for t, loss in enumerate(losses, 1):
        ema = SMOOTHING * ema + (1 - SMOOTHING) * loss
        expected.append(ema / (1 - SMOOTHING ** t))
    assert np.allclose(view.current.smooth_loss.getData()[1], expected)
    assert expected[0] == pytest.approx(2.0)  # debiased: the first value is the first loss


def test_a_new_run_fades_the_previous_one_and_the_list_names_both(setup):
    controller, view = setup
    start(controller, 1)
    batches(controller, 1, [2.0, 1.0])
    controller.runEnded.emit(RunEnded("stopped", "stopped after 0 complete epochs", 0))
    start(controller, 2, label="run 2 · adam lr 0.001 · batch 4")
    first, second = view.runs
    assert not first.current and second.current and view.current is second
    assert not first.raw_loss.isVisible() and first.smooth_loss.isVisible()
    assert [view.run_list.item(i).text() for i in range(2)] == ["run 1 · sgd lr 0.1 · batch 4",
                                                                  "run 2 · adam lr 0.001 · batch 4"]
    assert view.clear_button.isEnabled()

    view.run_list.item(0).setCheckState(Qt.CheckState.Unchecked)
    assert not first.smooth_loss.isVisible() and second.smooth_loss.isVisible()
    view.run_list.item(0).setCheckState(Qt.CheckState.Checked)
    assert first.smooth_loss.isVisible() and not first.raw_loss.isVisible()

    view.clear_earlier()
    assert view.runs == [second] and view.run_list.count() == 1
    assert first.smooth_loss.scene() is None  # its items left the plot


def test_a_continued_run_extends_the_same_curves(setup):
    controller, view = setup
    start(controller, 1)
    batches(controller, 1, [2.0, 1.0, 0.9, 0.8])
    start(controller, 1, label="run 1 · sgd lr 0.1 · batch 4 · continued", continued=True, start_epoch=1)
    batches(controller, 2, [0.7])
    assert len(view.runs) == 1 and view.current.batch_count == 5
    assert view.run_list.count() == 1 and view.run_list.item(0).text().endswith("continued")


def test_a_resumed_checkpoint_draws_the_epochs_it_brought(setup):
    controller, view = setup
    start(controller, 1, start_epoch=2, history=[epoch_end(1), epoch_end(2, 0.5, 0.4)],
          batch_losses=[[2.0, 1.0], [0.8, 0.6]])
    run = view.current
    assert (run.batch_count, run.epoch_count) == (4, 2)
    view.redraw()
    assert np.allclose(run.raw_loss.getData()[0], [0.5, 1.0, 1.5, 2.0])
    assert np.allclose(run.val_loss.getData()[1], [0.9, 0.4])


def test_no_plot_items_are_created_per_point(setup):
    controller, view = setup
    start(controller)
    count = len(view.loss_plot.listDataItems())
    for e in range(1, 4):
        batches(controller, e, [1.0, 0.9, 0.8, 0.7])
        controller.epochEnded.emit(epochs_done(epoch_end(e)))
        view.redraw()
    assert len(view.loss_plot.listDataItems()) == count


def test_log_loss_draws_every_curve_at_the_height_of_its_data_and_keeps_the_epoch_axis(setup, qtbot):
    controller, view = setup
    start(controller)
    batches(controller, 1, [4.6, 2.0])  # half of epoch 1: the x data ends at 0.5
    view.redraw()
    view.log_box.setChecked(True)  # toggled during epoch 1
    run = view.runs[0]
    _, raw = run.raw_loss.getData()
    np.testing.assert_allclose(raw, np.log10([4.6, 2.0]))  # the loss axis is in log10 units
    controller.epochEnded.emit(epochs_done(EpochEnd(1, 3.0, 0.5, 2.5, 0.5, 1.0, 100.0)))
    batches(controller, 2, [1.0])
    view.redraw()
    _, epoch_y = run.epoch_loss.curve.getData()
    np.testing.assert_allclose(epoch_y, np.log10([3.0]))  # the same scale as the batch curves
    _, val_y = run.val_loss.curve.getData()
    np.testing.assert_allclose(val_y, np.log10([2.5]))
    (x0, x1), _ = view.loss_plot.getViewBox().viewRange()
    assert x0 <= 0 and x1 >= 2  # the planned two epochs, not the data so far
    assert not view.loss_plot.getAxis("bottom").autoSIPrefix
    view.log_box.setChecked(False)
    _, raw = run.raw_loss.getData()
    np.testing.assert_allclose(raw, [4.6, 2.0, 1.0])


def test_the_legend_takes_two_rows_in_a_narrow_pane(setup, qtbot):
    _, view = setup
    view.resize(800, 500)
    view.show()
    qtbot.waitExposed(view)
    assert view.legend.columnCount == 4
    view.resize(290, 500)
    qtbot.waitUntil(lambda: view.legend.columnCount == 2)
    assert view.legend.boundingRect().width() <= view.graphics.width()  # every entry readable


def test_the_learning_rate_gets_a_plot_of_its_own_once_it_varies(setup):
    controller, view = setup
    start(controller)
    event = BatchEnd(1, 2, 4, 1.0, 0.5, 100.0, 8)
    controller.batchEnded.emit(BatchesDone(event, [(0.25, 1.0, 0.5), (0.5, 0.9, 0.5)], [0.01, 0.01]))
    view.redraw()
    assert not view.lr_plot.isVisible()  # a constant rate says nothing a plot would
    controller.batchEnded.emit(BatchesDone(event, [(0.75, 0.8, 0.5), (1.0, 0.7, 0.5)], [0.005, 0.0025]))
    view.redraw()
    assert view.lr_plot.isVisible()
    x, y = view.lr_curve.getData()
    assert list(x) == [0.25, 0.5, 0.75, 1.0] and list(y) == [0.01, 0.01, 0.005, 0.0025]
    start(controller, run=2)  # a new run starts its rates afresh
    assert not view.lr_plot.isVisible() and view._lr_y == []
