"""Per-layer gradient norms and the share of dead ReLU units, one point per epoch.

Gradient norms come from the controller's ``epochEnded`` event (``grad_norms``: parameter name ->
L2 norm averaged over the epoch's batches); the view plots each block's weight gradient on a log
scale, coloured from the first layer (dark) to the last (light), so gradients that shrink on the
way back to the input (vanishing, as with sigmoid) show as lines fanning out downwards, while
ReLU keeps them close. The lower plot is each ReLU block's share of units that never fired on a
validation batch ("dead_relu"). Both clear when a new run starts (not when a run is continued).
Blocks inside groups are there too, named by their path ("res1.conv1", "inc1.path2.conv1"), placed
first to last by the event's ``layer_order`` (a group's inner blocks, then the group).

Drawing is incremental: each layer's curve is created once and handed only its own points when
they grow (no curve recreated per epoch), a hidden view only keeps the points and draws when it is
shown, and past ``SYMBOL_LIMIT`` epochs the dots are dropped (they would touch anyway).
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from netbuilder.core.run_events import EpochsDone, RunBegan
from netbuilder.gui import theme

_COLOURS = pg.colormap.get("plasma")
DEAD_TITLE = "Dead ReLU units (share)"
SYMBOL_LIMIT = 50  # epochs beyond which a layer's curve is a line without dots


def _colour(i: int, n: int):
    """Colour of layer ``i`` of ``n``: dark blue-violet for the first, orange for the last."""
    return _COLOURS.map(0.05 + 0.8 * (i / max(n - 1, 1)), mode="qcolor")


class _LogAxis(pg.AxisItem):
    """A log axis that labels only 1, 2 and 5 times a power of ten when 2..9 would overprint.

    Within one decade pyqtgraph puts all of 2, 3, ..., 9 on the top (always labelled) level,
    which a plot a hundred pixels high cannot hold.
    """

    def logTickValues(self, minVal, maxVal, size, stdTicks):
        out = []
        for spacing, values in super().logTickValues(minVal, maxVal, size, stdTicks):
            if spacing is None and len(values) > max(3, size / 24):
                values = [v for v in values if round(10 ** (v - math.floor(v + 1e-9))) in (1, 2, 5)]
            out.append((spacing, values))
        return out


def _plot(title: str, left: str) -> pg.PlotWidget:
    plot = pg.PlotWidget(background=theme.SURFACE, axisItems={"left": _LogAxis("left")})
    item = plot.getPlotItem()
    item.setTitle(title, color=theme.TEXT, size="10pt")
    item.setLabel("left", left, color=theme.MUTED)
    item.setLabel("bottom", "epoch", color=theme.MUTED)
    item.showGrid(x=True, y=True, alpha=0.15)
    for name in ("left", "bottom"):
        axis = item.getAxis(name)
        axis.setPen(pg.mkPen(theme.BORDER))
        axis.setTextPen(pg.mkPen(theme.MUTED))
    item.setMenuEnabled(False)
    item.getViewBox().setMouseEnabled(x=False, y=False)
    item.hideButtons()
    theme.style_plots(plot)
    return plot


def weight_norms(grad_norms: dict[str, float]) -> dict[str, float]:
    """Block name -> its weight gradient's norm ("conv1.weight" -> "conv1", "res1.conv1.weight" ->
    "res1.conv1": the path of a block inside a group); all names if none are weights."""
    weights = {name[: -len(".weight")]: v for name, v in grad_norms.items() if name.endswith(".weight")}
    return weights or dict(grad_norms)


class GradientView(QWidget):
    """Two small plots: weight-gradient norm per layer (log y) and dead-ReLU share, per epoch."""

    def __init__(self, controller, parent: QWidget | None = None):
        super().__init__(parent)
        self.controller = controller
        self._norms: dict[str, list[tuple[int, float]]] = {}
        self._dead: dict[str, list[tuple[int, float]]] = {}
        self._norm_items: dict[str, pg.PlotDataItem] = {}
        self._dead_items: dict[str, pg.PlotDataItem] = {}
        self._layers: list[str] = []  # every layer seen, in network order: fixes each one's colour
        self._colours: dict[str, object] = {}  # the colour each layer's curves were drawn with
        self._dirty: set[tuple[bool, str]] = set()  # (dead plot?, layer) whose points grew since drawn
        self._layers_changed = False
        self._last_epoch = 0
        self._tick_step = None

        self.legend = QLabel()
        self.legend.setWordWrap(True)
        self.norm_plot = _plot("Gradient norm per layer (log scale)", "‖gradient‖")
        self.norm_plot.setLogMode(x=False, y=True)
        self.norm_plot.getPlotItem().getAxis("bottom").showLabel(False)  # the plot below names the shared axis
        self.norm_plot.getPlotItem().getAxis("left").enableAutoSIPrefix(False)
        self.dead_plot = _plot(DEAD_TITLE, "share")
        self.dead_plot.setYRange(0, 1, padding=0.05)
        # Two levels: pyqtgraph labels the quarters only where there is room (they overlapped the
        # halves on a short plot).
        self.dead_plot.getPlotItem().getAxis("left").setTicks(
            [[(v, f"{v:.0%}") for v in (0, 0.5, 1.0)], [(v, f"{v:.0%}") for v in (0.25, 0.75)]])
        self.note = QLabel("First layers far below the last: vanishing gradients (sigmoid). ReLU keeps them close.")
        explanation = ("The norm of each layer's weight gradient, averaged over the epoch's batches (log scale).\n"
                       "Lines fanning out downwards towards the first layers mean the gradient shrinks on its way\n"
                       "back to the input (vanishing gradients, typical of sigmoid); with ReLU they stay close.\n"
                       "A dead ReLU unit output 0 for every sample of a validation batch: it no longer learns.")
        for w in (self.note, self.norm_plot, self.dead_plot):
            w.setToolTip(explanation)
        self.note.setWordWrap(True)
        theme.style(self.note, "color: {MUTED};")
        self.note.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)

        box = QVBoxLayout(self)
        box.setContentsMargins(6, 6, 6, 6)
        box.addWidget(self.legend)
        box.addWidget(self.norm_plot, 3)
        box.addWidget(self.dead_plot, 2)
        box.addWidget(self.note)
        self.clear()

        controller.runStarted.connect(self._run_started)
        controller.epochEnded.connect(self._epoch_ended)

    def heightForWidth(self, width: int) -> int:
        # Wrapped labels give the layout a height-for-width, which a scroll area takes as the
        # height to give (the preferred one: every part at full size, scrolled). Answering "no
        # preference" lets the view fill the space it is given instead, down to its minimum.
        return -1

    # --- for tests and callers ------------------------------------------------------------------
    def layer_names(self) -> list[str]:
        return list(self._norms)

    def series(self, name: str) -> tuple[list[int], list[float]]:
        """(epochs, gradient norms) of one layer."""
        points = self._norms.get(name, [])
        return [e for e, _ in points], [v for _, v in points]

    def dead_series(self, name: str) -> tuple[list[int], list[float]]:
        points = self._dead.get(name, [])
        return [e for e, _ in points], [v for _, v in points]

    def clear(self, *_args) -> None:
        for items, plot in ((self._norm_items, self.norm_plot), (self._dead_items, self.dead_plot)):
            for item in items.values():
                plot.removeItem(item)
            items.clear()
        self._norms.clear()
        self._dead.clear()
        self._layers.clear()
        self._colours.clear()
        self._dirty.clear()
        self._layers_changed = False
        self._last_epoch = 0
        theme.set_text(self.legend, "<span style='color:{MUTED}'>One point per layer at the end of each epoch.</span>")
        self._set_dead_title(None)

    # --- updates --------------------------------------------------------------------------------
    def _run_started(self, began: RunBegan) -> None:
        if not began.continued:  # more epochs of a run extend it
            self.clear()

    def _epoch_ended(self, done: EpochsDone) -> None:
        epoch = done.event.epoch
        norms = weight_norms(done.grad_norms)
        dead = done.dead_relu
        new = [n for n in dict.fromkeys([*norms, *dead]) if n not in self._layers]
        if new:
            self._layers.extend(new)
            # Weights come in parameter order and dead shares only for ReLU blocks (a group's sum
            # among them): the network's order puts each where it is, names it lacks last.
            rank = {name: i for i, name in enumerate(done.layer_order)}
            self._layers.sort(key=lambda name: rank.get(name, len(rank)))
            for name in norms:
                self._norms.setdefault(name, [])
            for name in dead:
                self._dead.setdefault(name, [])
            self._layers_changed = True
        self._add(self._norms, norms, epoch, False)
        self._add(self._dead, dead, epoch, True)
        self._last_epoch = epoch
        if self.isVisible():
            self._draw()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self._draw()

    def _add(self, store, values: dict[str, float], epoch: int, dead: bool) -> None:
        for name, value in values.items():
            value = float(value)
            if math.isfinite(value):
                store[name].append((epoch, value))
                self._dirty.add((dead, name))

    def _draw(self) -> None:
        """Bring the plots up to the points kept: new layers get their curves (and every curve its
        colour, which depends on the number of layers), grown layers their points."""
        if self._layers_changed:
            self._layers_changed = False
            self._recolour()
        for dead, name in self._dirty:
            store, items = (self._dead, self._dead_items) if dead else (self._norms, self._norm_items)
            points = store[name]
            xs = np.fromiter((e for e, _ in points), float, len(points))
            ys = np.fromiter((v for _, v in points), float, len(points))
            if not dead:  # log axis: a zero gradient cannot be drawn
                keep = ys > 0
                xs, ys = xs[keep], ys[keep]
            item = items[name]
            if len(points) > SYMBOL_LIMIT and item.opts["symbol"] is not None:
                item.setSymbol(None)
            item.setData(xs, ys)
        self._dirty.clear()
        self._set_dead_title(bool(self._dead) if self._layers else None)
        step = max(1, math.ceil(max(self._last_epoch, 1) / 10))  # whole epochs, at most about ten labels
        if step != self._tick_step:  # each change lays the axis out again
            self._tick_step = step
            for plot in (self.norm_plot, self.dead_plot):
                plot.getPlotItem().getAxis("bottom").setTickSpacing(step, step)

    def _recolour(self) -> None:
        """Curves for the layers new since the last draw, and each layer coloured by its depth, the
        same in both plots (existing curves only change pens when their colour moves)."""
        n = len(self._layers)
        colours = {name: _colour(i, n) for i, name in enumerate(self._layers)}
        for store, items, plot in ((self._norms, self._norm_items, self.norm_plot),
                                   (self._dead, self._dead_items, self.dead_plot)):
            for name in store:
                c = colours[name]
                item = items.get(name)
                if item is None:
                    items[name] = plot.plot([], [], pen=pg.mkPen(c, width=2), symbol="o", symbolSize=6,
                                            symbolBrush=c, symbolPen=None)
                elif self._colours.get(name) != c:
                    item.setPen(pg.mkPen(c, width=2))
                    item.setSymbolBrush(c)
        self._colours = colours
        self.legend.setText("Layers, first to last: " + " ".join(
            f"<span style='color:{colours[name].name()}'>■</span>&nbsp;{name}&nbsp;" for name in self._layers))

    def _set_dead_title(self, has_relu: bool | None) -> None:
        title = DEAD_TITLE + (": no ReLU layers" if has_relu is False else "")
        self.dead_plot.getPlotItem().setTitle(title, color=theme.TEXT, size="10pt")
