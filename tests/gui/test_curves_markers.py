"""The epoch markers' remembered bounding rectangles are pyqtgraph's own, whatever changed since."""
from __future__ import annotations

import pyqtgraph as pg
import pytest

from tests.gui.test_curves import epoch_end, shown_view, start


@pytest.fixture
def shown(qtbot):
    return shown_view(qtbot)


def same_as_computed(run) -> bool:
    rects = [(item.scatter.boundingRect(), pg.ScatterPlotItem.boundingRect(item.scatter))
             for item in (run.epoch_loss, run.val_loss, run.epoch_acc, run.val_acc)]
    return all(mine == theirs for mine, theirs in rects) and not rects[0][0].isEmpty()


def test_the_markers_bounds_follow_points_symbols_scale_and_size(shown, qtbot):
    controller, view = shown
    start(controller)
    run = view.current
    run.add_epochs([epoch_end(1, loss=1.5, val=1.2)])
    view.redraw()
    assert same_as_computed(run)
    before = run.val_loss.scatter.boundingRect()
    run.add_epochs([epoch_end(2, loss=0.5, val=2.5)])  # new points
    view.redraw()
    assert same_as_computed(run) and run.val_loss.scatter.boundingRect() != before
    view.loss_plot.setXRange(0, 8, padding=0)  # another scale: the symbols span other data units
    assert same_as_computed(run)
    view.resize(900, 600)
    qtbot.waitUntil(lambda: view.graphics.width() > 800)
    assert same_as_computed(run)
    run.fade()  # smaller symbols
    assert same_as_computed(run)
