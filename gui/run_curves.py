"""One run's curves in the curves view (``gui.curves``): its points, kept in arrays, and its plot items.

Batches and epochs are appended to arrays; ``redraw`` hands them to plot items made once (bare
PlotCurveItems for the batch curves, PlotDataItems with markers for the epochs), never an item
per point. Once a batch curve has more than two points per pixel column of the plot, it gets two
(each column's lowest and highest, ``gui.decimate``), so a run of 100,000 batches paints as fast
as one of 800 and a spike still shows; they are chosen again when the plot's width or epoch range
changes.
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QGraphicsItem

from netbuilder.gui import theme
from netbuilder.gui.decimate import ColumnDecimator

SMOOTHING = 0.9  # weight of the past in the moving average (about the last 10 batches)
FADED = 0.35  # how much of an earlier run's colour is kept (blended over the plot's background)
COLUMN_STEP = 16  # the batch curves' columns: the plot's width in pixels rounded down to a multiple of this


class _Columns:
    """Rows of floats appended in chunks; ``column(j)`` is a view of the filled part."""

    def __init__(self, width: int) -> None:
        self._data = np.empty((512, width), np.float64)
        self.n = 0

    def extend(self, rows) -> None:
        rows = np.asarray(rows, np.float64).reshape(-1, self._data.shape[1])
        need = self.n + len(rows)
        if need > len(self._data):
            grown = np.empty((max(need, 2 * len(self._data)), self._data.shape[1]), np.float64)
            grown[:self.n] = self._data[:self.n]
            self._data = grown  # views handed out earlier keep the old array, which never changes
        self._data[self.n:need] = rows
        self.n = need

    def column(self, j: int) -> np.ndarray:
        return self._data[:self.n, j]


class RunCurves:
    """One run's points and its plot items (created once, updated with ``setData``)."""

    def __init__(self, number: int, label: str, color: str, loss_plot: pg.PlotItem, acc_plot: pg.PlotItem,
                 end_epoch: float = 1.0):
        self.number, self.label, self.color = number, label, color
        self.end_epoch = end_epoch  # where the run is planned to end, on the epoch axis
        self.max_loss = 0.0
        self.batches = _Columns(5)  # x, loss, accuracy, smoothed loss, smoothed accuracy
        self.epochs = _Columns(5)  # x, train loss, validation loss, train accuracy, validation accuracy
        self._ema = np.zeros(2)
        self._ema_steps = 0
        # The batch curves are handed at most two points per pixel column (raw loss, smoothed
        # loss, smoothed accuracy: each its own extremes), however long the run.
        self._columns = (ColumnDecimator(), ColumnDecimator(), ColumnDecimator())
        self._view = loss_plot.getViewBox()
        self.visible = True
        self.current = True
        self.dirty = False  # batches were added since the last redraw
        self.log_loss = False  # the loss axis is logarithmic: the bare curves get log10 values
        self.epochs_dirty = False
        c = QColor(color)
        # The curves redrawn with every batch are bare PlotCurveItems: PlotDataItem's extra
        # machinery costs the GUI thread more than their drawing does.
        self.raw_loss = _curve(loss_plot, _pen(c, alpha=70))
        self.smooth_loss = _curve(loss_plot, _pen(c, width=2))
        self.epoch_loss = loss_plot.plot(pen=_pen(c, width=1, style=Qt.PenStyle.DotLine), symbol="o", symbolSize=6,
                                         symbolPen=_pen(c), symbolBrush=c)
        self.val_loss = loss_plot.plot(pen=_pen(c, width=2, style=Qt.PenStyle.DashLine), symbol="s", symbolSize=7,
                                       symbolPen=_pen(c), symbolBrush=pg.mkBrush(theme.SURFACE))
        self.smooth_acc = _curve(acc_plot, _pen(c, width=2))
        self.epoch_acc = acc_plot.plot(pen=_pen(c, width=1, style=Qt.PenStyle.DotLine), symbol="o", symbolSize=6,
                                       symbolPen=_pen(c), symbolBrush=c)
        self.val_acc = acc_plot.plot(pen=_pen(c, width=2, style=Qt.PenStyle.DashLine), symbol="s", symbolSize=7,
                                     symbolPen=_pen(c), symbolBrush=pg.mkBrush(theme.SURFACE))
        # The epoch curves and markers change once an epoch but sit under the batch curves that
        # change at every redraw: painted from a pixmap cache, they cost a copy.
        for item in (self.epoch_loss, self.val_loss, self.epoch_acc, self.val_acc):
            for part in (item.curve, item.scatter):
                part.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
            _remember_bounds(item.scatter)
        self.items = (self.raw_loss, self.smooth_loss, self.epoch_loss, self.val_loss,
                      self.smooth_acc, self.epoch_acc, self.val_acc)
        self.plots = (loss_plot,) * 4 + (acc_plot,) * 3
        # A wider plot or another epoch range has other columns: the batch curves are chosen again.
        self._view.sigResized.connect(self._rescaled)
        self._view.sigXRangeChanged.connect(self._rescaled)

    # --- data ----------------------------------------------------------------------------------
    def add_batches(self, points) -> None:
        """``points``: [(x in epochs, loss, accuracy), ...]; accuracy in 0..1."""
        rows = []
        loss_ema, acc_ema = float(self._ema[0]), float(self._ema[1])
        for x, loss, acc in points:  # plain floats: a numpy array per point costs more than the sums
            self._ema_steps += 1
            loss_ema = SMOOTHING * loss_ema + (1 - SMOOTHING) * loss
            acc_ema = SMOOTHING * acc_ema + (1 - SMOOTHING) * 100.0 * acc
            debias = 1 - SMOOTHING ** self._ema_steps
            rows.append((x, loss, 100.0 * acc, loss_ema / debias, acc_ema / debias))
            if loss > self.max_loss and math.isfinite(loss):
                self.max_loss = loss
        self._ema[:] = loss_ema, acc_ema
        if rows:
            self.batches.extend(rows)
            self.dirty = True

    def add_epochs(self, events) -> None:
        rows = [(e.epoch, e.train_loss, _nan(e.val_loss), 100.0 * e.train_accuracy,
                 100.0 * _nan(e.val_accuracy)) for e in events]
        if rows:
            self.epochs.extend(rows)
            self.epochs_dirty = True

    def add_history(self, epochs, batch_losses) -> None:
        """Epochs a checkpoint brought: their batch losses (accuracy unknown) and epoch figures."""
        points = []
        for e, losses in enumerate(batch_losses):
            n = max(len(losses), 1)
            points += [(e + (b + 1) / n, loss, np.nan) for b, loss in enumerate(losses)]
        rows = []
        finite = [loss for _, loss, _ in points if math.isfinite(loss)]
        self.max_loss = max([self.max_loss, *finite])
        for x, loss, _ in points:
            self._ema_steps += 1
            self._ema[0] = SMOOTHING * self._ema[0] + (1 - SMOOTHING) * loss
            rows.append((x, loss, np.nan, self._ema[0] / (1 - SMOOTHING ** self._ema_steps), np.nan))
        if rows:
            self.batches.extend(rows)
        self.add_epochs(epochs)
        self.dirty = self.epochs_dirty = True

    # --- drawing -------------------------------------------------------------------------------
    def redraw(self) -> None:
        """Hand the arrays to the plot items whose data grew (epoch items change once an epoch)."""
        if self.dirty:
            self.dirty = False
            b = self.batches
            x, columns = b.column(0), self._pixel_columns()
            curves = ((self.raw_loss, 1, True), (self.smooth_loss, 3, True), (self.smooth_acc, 4, False))
            for (item, j, loss), decimator in zip(curves, self._columns):
                if item is self.raw_loss and not self.current:
                    continue
                y = b.column(j)
                if len(x) > 2 * columns:  # fewer points than that are all drawn, as they come
                    i = decimator.indices(x, y, self._span() / columns)
                    xs, y = x[i], y[i]
                else:
                    xs = x
                item.setData(xs, self._loss_values(y) if loss else y)
        if not self.epochs_dirty:
            return
        self.epochs_dirty = False
        e = self.epochs
        ex = e.column(0)
        self.epoch_loss.setData(ex, e.column(1))
        self.val_loss.setData(ex, e.column(2))
        self.epoch_acc.setData(ex, e.column(3))
        self.val_acc.setData(ex, e.column(4))

    def _pixel_columns(self) -> int:
        """The plot's width in pixels, rounded down to ``COLUMN_STEP`` (a few pixels more or less
        choose no other points)."""
        pixels = int(self._view.width())
        return max(COLUMN_STEP, pixels - pixels % COLUMN_STEP)

    def _span(self) -> float:
        lo, hi = self._view.viewRange()[0]
        return hi - lo

    def _rescaled(self, *_args) -> None:
        width = self._columns[1].width  # None while every point is drawn
        if width is not None and width != self._span() / self._pixel_columns():
            self.dirty = True
            self.redraw()

    def set_log_loss(self, on: bool) -> None:
        """Follow the loss axis into or out of log mode. PlotDataItems (the epoch points) do that
        themselves; the bare PlotCurveItems draw what they are given, so they get log10 values."""
        if on != self.log_loss:
            self.log_loss = on
            self.dirty = True

    def _loss_values(self, y: np.ndarray) -> np.ndarray:
        if not self.log_loss:
            return y
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(y > 0, np.log10(y), np.nan)  # a loss of 0 has no place on a log axis

    def fade(self) -> None:
        """Become an earlier run: lighter colours, no per-batch losses."""
        self.current = False
        c = theme.tint(self.color, FADED, theme.SURFACE)
        self.raw_loss.setData([], [])
        self.raw_loss.setVisible(False)
        for item in (self.smooth_loss, self.smooth_acc):
            item.setPen(_pen(c, width=1.5))
            item.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)  # it no longer changes
        for item in (self.epoch_loss, self.epoch_acc):
            item.setPen(_pen(c, width=1, style=Qt.PenStyle.DotLine))
            item.setSymbolPen(_pen(c))
            item.setSymbolBrush(c)
            item.setSymbolSize(4)
        for item in (self.val_loss, self.val_acc):
            item.setPen(_pen(c, width=1.5, style=Qt.PenStyle.DashLine))
            item.setSymbolPen(_pen(c))
            item.setSymbolSize(5)

    def set_visible(self, visible: bool) -> None:
        self.visible = visible
        for item in self.items:
            item.setVisible(visible and (item is not self.raw_loss or self.current))

    def remove(self) -> None:
        self._view.sigResized.disconnect(self._rescaled)
        self._view.sigXRangeChanged.disconnect(self._rescaled)
        for plot, item in zip(self.plots, self.items):
            plot.removeItem(item)

    @property
    def batch_count(self) -> int:
        return self.batches.n

    @property
    def epoch_count(self) -> int:
        return self.epochs.n


def _remember_bounds(scatter: pg.ScatterPlotItem) -> None:
    """Give ``scatter`` a bounding rectangle worked out once per change of its points, symbols or
    scale. Qt asks every item for it a few times a paint, and pyqtgraph's works out the symbols'
    size in data units each time (Python, about 30 us): with the markers of every run on the plots,
    that was a fifth of each repaint. The scatter resets ``bounds`` (a new list) whenever its points
    or symbols change; the scale is the device transform without its translation."""
    compute = scatter.boundingRect
    memo: list = [None, None, None]  # the bounds list it was for, (symbol width, scale), the rectangle

    def bounding_rect():
        dt = scatter.deviceTransform_()
        key = (scatter._maxSpotPxWidth, None if dt is None else (dt.m11(), dt.m12(), dt.m21(), dt.m22()))
        if memo[0] is not scatter.bounds or memo[1] != key:
            memo[:] = scatter.bounds, key, compute()
        return QRectF(memo[2])

    scatter.boundingRect = bounding_rect  # Qt's calls find the instance's own


def _curve(plot: pg.PlotItem, pen) -> pg.PlotCurveItem:
    curve = pg.PlotCurveItem(pen=pen, connect="finite")  # checkpoint history has no accuracies (NaN)
    plot.addItem(curve)
    return curve


def _pen(color, width: float = 1, alpha: int | None = None, style=Qt.PenStyle.SolidLine):
    c = QColor(color)
    if alpha is not None:
        c.setAlpha(alpha)
    return pg.mkPen(c, width=width, style=style)


def _nan(value) -> float:
    return float("nan") if value is None else float(value)
