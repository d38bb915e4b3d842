"""Live training curves: loss and accuracy against epochs, for this run and the earlier runs of the session.

The loss plot shows every batch's loss (faint), its smoothed trend (an exponential moving
average, debiased at the start) and each epoch's training (dots) and validation (squares, dashed)
loss; the accuracy plot the smoothed batch accuracy and each epoch's training and validation
accuracy, in the same styles (one legend above both). Earlier runs stay as faded curves; the
runs list under the plots names each run's settings (the legend of the colours) and shows or
hides it.

Data from the controller is only appended to arrays, which are handed to the existing plot items
with ``setData`` as they come (in the same repaint of the window as the train panel's progress),
or, within ``REDRAW_MS`` of the last redraw, by a timer then: a burst of batches costs one redraw
(about 2 a second, one per send of the worker's), and no item is ever
created per point (a run's arrays and items are ``gui.run_curves.RunCurves``, which hands the
batch curves at most two points per pixel column, however long the run). While the view is
hidden (another mode of the window) nothing is redrawn until it is shown; a run's end is always
drawn. Painting is what costs the GUI thread most, so: the axes' ranges are set by hand and change only in
steps (x spans the runs' planned epochs, the loss goes from 0 to a round number above the
largest loss, the accuracy from 0 to 100 %); axes, legend, epoch markers and earlier runs are
drawn from pixmap caches; there is no grid (grid lines belong to the axes, and would make every
curve update repaint them).
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QGraphicsItem,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from netbuilder.core.run_events import BatchesDone, EpochsDone, RunBegan
from netbuilder.gui import theme
from netbuilder.gui.run_curves import SMOOTHING, RunCurves, _pen  # noqa: F401 - SMOOTHING is read from here
from netbuilder.gui.throttle import Throttle

pg.setConfigOptions(imageAxisOrder="row-major", background=theme.SURFACE, foreground=theme.TEXT, antialias=False)

REDRAW_MS = 40  # 25 redraws a second at most, and only while something changed
RUN_COLORS = ("#1e6fd9", "#d9541e", "#2e9d5b", "#8e44ad", "#c29d0b", "#0f8b8d", "#c2185b", "#5d6d7e")


class CurvesView(QWidget):
    """Loss and accuracy plots fed by a ``TrainingController``, with the list of runs."""

    def __init__(self, controller, parent: QWidget | None = None):
        super().__init__(parent)
        self.controller = controller
        self.runs: list[RunCurves] = []
        self.recorded: dict[str, RunCurves] = {}  # recorded runs overlaid (the Runs tab), by run id

        self.graphics = pg.GraphicsLayoutWidget(self)
        self.graphics.setMinimumSize(220, 180)
        # One legend for both plots, in a row of its own: inside a plot it would hide the curves.
        self.legend = pg.LegendItem(colCount=4, labelTextSize="8pt", labelTextColor=theme.TEXT, frame=False)
        self.graphics.addItem(self.legend, row=0, col=0)
        self.loss_plot = self.graphics.addPlot(row=1, col=0)
        self.acc_plot = self.graphics.addPlot(row=2, col=0)
        # The learning rate of the current run, under the accuracy, shown once it varies (a schedule).
        self.lr_plot = self.graphics.addPlot(row=3, col=0)
        self.lr_plot.setLabel("left", "learning rate")
        self.lr_plot.setMenuEnabled(False)
        self.lr_plot.setMouseEnabled(x=False, y=False)
        self.lr_plot.hideButtons()
        self.lr_plot.setXLink(self.loss_plot)
        self.lr_plot.setMaximumHeight(110)
        self.lr_plot.disableAutoRange()
        for side in ("left", "bottom"):
            self.lr_plot.getAxis(side).enableAutoSIPrefix(False)
        self.lr_curve = self.lr_plot.plot(pen=_pen(theme.MUTED, width=2))
        self.lr_plot.hide()
        self._lr_x: list[float] = []
        self._lr_y: list[float] = []
        for plot, name in ((self.loss_plot, "loss"), (self.acc_plot, "accuracy (%)")):
            plot.setLabel("left", name)
            plot.setLabel("bottom", "epoch")
            plot.setMenuEnabled(False)
            plot.setMouseEnabled(x=False, y=False)
            plot.hideButtons()
            plot.disableAutoRange()
        self.acc_plot.setYRange(0, 100, padding=0.02)
        # Axes are repainted with the plot area around them; from a pixmap cache that is a copy
        # instead of laying out every tick label again (they change only with the ranges).
        for plot in (self.loss_plot, self.acc_plot):
            for side in ("left", "bottom"):
                plot.getAxis(side).setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self._fill_legend()
        self.legend.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self._x_end = self._loss_top = None
        self.acc_plot.setXLink(self.loss_plot)
        for plot in (self.loss_plot, self.acc_plot):  # "epoch (x0.001)" helps nobody reading epochs
            plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.acc_plot.getAxis("left").setWidth(self.loss_plot.getAxis("left").width())
        self.lr_plot.getAxis("left").setWidth(self.loss_plot.getAxis("left").width())
        self.placeholder = pg.TextItem("Press Train (F5): the loss and accuracy appear here", color=theme.MUTED,
                                       anchor=(0.5, 0.5))
        self.loss_plot.addItem(self.placeholder)
        self.placeholder.setPos(0.5, 0.5)
        self.loss_plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0.02)
        theme.style_plots(self.graphics)

        self.log_box = QCheckBox("log loss")
        self.log_box.setToolTip("Show the loss on a logarithmic scale")
        self.log_box.toggled.connect(self._log_toggled)
        self.clear_button = QPushButton("Clear earlier runs")
        self.clear_button.setToolTip("Remove the curves of every run but the latest")
        self.clear_button.clicked.connect(self.clear_earlier)
        self.clear_button.setEnabled(False)
        self.run_list = QListWidget()
        self.run_list.setToolTip("Each run of this session with its settings; untick one to hide its curves")
        self.run_list.setMaximumHeight(48)
        self.run_list.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Maximum)
        self.run_list.itemChanged.connect(self._run_toggled)

        head = QHBoxLayout()
        title = QLabel("Runs")
        title.setFont(theme.font(bold=True))
        head.addWidget(title)
        head.addStretch(1)
        head.addWidget(self.log_box)
        head.addWidget(self.clear_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.graphics, 1)
        layout.addLayout(head)
        layout.addWidget(self.run_list)

        self.redraws = Throttle(self, REDRAW_MS, self._redraw_due)
        self._stale = False  # data came while the view was hidden: redrawn when it is shown
        controller.runStarted.connect(self._run_started)
        controller.batchEnded.connect(self._batches)
        controller.epochEnded.connect(self._epochs)
        controller.runEnded.connect(self._run_ended)

    @property
    def current(self) -> RunCurves | None:
        return self.runs[-1] if self.runs and self.runs[-1].current else None

    # --- controller --------------------------------------------------------------------------
    def _hide_placeholder(self) -> None:
        if self.placeholder is not None:
            self.loss_plot.removeItem(self.placeholder)
            self.placeholder = None

    def _run_started(self, began: RunBegan) -> None:
        self._hide_placeholder()
        event = began.event
        if not began.continued:  # a new run's rates start afresh (more epochs of one extend it)
            self._lr_x, self._lr_y = [], []
            self.lr_curve.setData([], [])
            self.lr_plot.hide()
        end_epoch = event.start_epoch + event.epochs
        run = self.runs[-1] if self.runs else None
        if began.continued and run is not None and run.number == began.run:
            run.label = began.label
            run.end_epoch = end_epoch
            self.run_list.item(self.run_list.count() - 1).setText(run.label)
        else:
            for old in self.runs:
                if old.current:
                    old.fade()
            color = RUN_COLORS[(began.run - 1) % len(RUN_COLORS)]
            run = RunCurves(began.run, began.label, color, self.loss_plot, self.acc_plot, end_epoch)
            run.set_log_loss(self.log_box.isChecked())
            self.runs.append(run)
            if began.history:
                run.add_history(began.history, began.batch_losses)
            self._add_list_entry(run)
        self.clear_button.setEnabled(len(self.runs) > 1)
        self._schedule()

    def _batches(self, done: BatchesDone) -> None:
        if self.current is not None:
            self.current.add_batches(done.points)
            if len(done.rates) == len(done.points):
                self._lr_x += [x for x, *_ in done.points]
                self._lr_y += list(done.rates)
            self._schedule()

    def _epochs(self, done: EpochsDone) -> None:
        if self.current is not None:
            self.current.add_epochs(done.epochs)
            self._schedule()

    def _schedule(self) -> None:
        """Redraw now, or once REDRAW_MS have passed since the last redraw."""
        self.redraws.request()

    def _run_ended(self, _event) -> None:
        self.redraw()  # the run's final state, shown or not: nothing is left stale
        self.redraws.cancel()

    def _redraw_due(self) -> None:
        if self.isVisible():
            self.redraw()
        else:
            self._stale = True

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._stale:
            self.redraw()

    # --- drawing and the run list ------------------------------------------------------------
    def redraw(self) -> None:
        self._stale = False
        self.redraws.ran()
        for run in self.runs:
            run.redraw()
        self._draw_rates()
        self._fit_ranges()

    def _draw_rates(self) -> None:
        """The current run's learning rate, shown when it changes during the run."""
        varies = len(self._lr_y) > 1 and max(self._lr_y) > min(self._lr_y)
        if varies:
            self.lr_curve.setData(self._lr_x, self._lr_y)
            self.lr_plot.setYRange(0, max(self._lr_y), padding=0.05)
        self.lr_plot.setVisible(varies)

    def _fit_ranges(self) -> None:
        """Axes that change only when the runs outgrow them (each change repaints the tick labels)."""
        shown = [run for run in self.runs if run.visible] or self.runs
        if not shown:
            return
        x_end = max(run.end_epoch for run in shown)
        if x_end != self._x_end:
            self._x_end = x_end
            self.loss_plot.setXRange(0, x_end, padding=0.02)
        if self.log_box.isChecked():
            return
        top = _round_up(max(run.max_loss for run in shown))
        if top != self._loss_top:
            self._loss_top = top
            self.loss_plot.setYRange(0, top, padding=0.02)

    def _log_toggled(self, on: bool) -> None:
        self.loss_plot.setLogMode(y=on)
        for run in self.runs:
            run.set_log_loss(on)
            run.redraw()
        self.loss_plot.disableAutoRange()
        if on:  # only y follows the data; x stays the planned epochs (fixed in _fit_ranges)
            self.loss_plot.enableAutoRange(axis=pg.ViewBox.YAxis)
        self._x_end = self._loss_top = None
        self._fit_ranges()

    def clear_earlier(self) -> None:
        """Forget every run but the latest."""
        keep = self.runs[-1:]
        for run in self.runs[:-1]:
            run.remove()
        self.runs = keep
        while self.run_list.count() > len(keep):
            self.run_list.takeItem(0)
        self.clear_button.setEnabled(False)

    def _add_list_entry(self, run: RunCurves) -> None:
        pixmap = QPixmap(14, 14)
        pixmap.fill(QColor(run.color))
        item = QListWidgetItem(QIcon(pixmap), run.label)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
        item.setCheckState(Qt.CheckState.Checked)
        item.setData(Qt.ItemDataRole.UserRole, run.number)
        self.run_list.blockSignals(True)
        self.run_list.addItem(item)
        self.run_list.blockSignals(False)
        self.run_list.scrollToBottom()

    def _run_toggled(self, item: QListWidgetItem) -> None:
        number = item.data(Qt.ItemDataRole.UserRole)
        for run in self.runs:
            if run.number == number:
                run.set_visible(item.checkState() == Qt.CheckState.Checked)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        # Four entries in a row need about 380 px; a narrower pane gets two rows of two.
        columns = 4 if self.graphics.width() >= 380 else 2
        if self.legend.columnCount != columns:
            self.legend.setColumnCount(columns)

    def _fill_legend(self) -> None:
        """The line styles, the same in both plots and for every run (the run list names the colours)."""
        c = QColor(theme.MUTED)
        samples = (
            (pg.PlotDataItem(pen=_pen(c, alpha=110)), "batches"),
            (pg.PlotDataItem(pen=_pen(c, width=2)), "smoothed"),
            (pg.PlotDataItem(pen=_pen(c, style=Qt.PenStyle.DotLine), symbol="o", symbolSize=6, symbolPen=_pen(c),
                             symbolBrush=c), "train"),
            (pg.PlotDataItem(pen=_pen(c, width=2, style=Qt.PenStyle.DashLine), symbol="s", symbolSize=7,
                             symbolPen=_pen(c), symbolBrush=pg.mkBrush(theme.SURFACE)), "validation"),
        )
        self._legend_samples = samples  # the legend draws from them: keep them alive
        for item, name in samples:
            self.legend.addItem(item, name)

    def show_recorded(self, key: str, epochs=(), label: str = "", color: str = theme.MUTED) -> RunCurves | None:
        """Overlay a recorded run's per-epoch loss and accuracy (``EpochEnd``s) faded in ``color`` as
        ``key``, or take overlay ``key`` away (no epochs); the axes widen to hold it (the Runs panel)."""
        shown = self.recorded
        if key in shown:
            shown.pop(key).remove()
        if epochs:
            self._hide_placeholder()  # curves are there to see
            run = shown[key] = RunCurves(0, label, color, self.loss_plot, self.acc_plot, epochs[-1].epoch)
            run.add_epochs(epochs)
            run.max_loss = float(np.nanmax(np.r_[run.epochs.column(1), run.epochs.column(2), 0.0]))
            run.fade()
            run.redraw()
        every = [*self.runs, *shown.values()]
        if every:  # until a live run's own ranges take over
            self._x_end, self._loss_top = max(r.end_epoch for r in every), _round_up(max(r.max_loss for r in every))
            self.loss_plot.setXRange(0, self._x_end, padding=0.02)
            if not self.log_box.isChecked():
                self.loss_plot.setYRange(0, self._loss_top, padding=0.02)
        return shown.get(key)


def curve_icon() -> QIcon:
    """A falling loss curve on axes: the icon of the training view."""
    pixmap = QPixmap(32, 32)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(QPen(QColor(theme.MUTED), 2.5))
    painter.drawPolyline([QPointF(4, 3), QPointF(4, 28), QPointF(29, 28)])
    painter.setPen(QPen(QColor(RUN_COLORS[0]), 3))
    painter.drawPolyline([QPointF(7, 6), QPointF(11, 16), QPointF(16, 20), QPointF(22, 22.5), QPointF(28, 23.5)])
    painter.end()
    return QIcon(pixmap)


def _round_up(value: float) -> float:
    """The next of 1, 1.5, 2, 2.5, 3, 4, 5, 6, 8 x 10^k at or above ``value`` (1 for nothing to show)."""
    if not math.isfinite(value) or value <= 0:
        return 1.0
    scale = 10.0 ** math.floor(math.log10(value))
    return next(m * scale for m in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10) if m * scale >= value * (1 - 1e-9))
