"""The Step inspector: one mini-batch, block by block, in the notation of the classic derivation.

After a Step (F10) the controller's ``stepTraced`` brings a ``core.step_trace.StepTrace``; this
view lists every block (those inside groups too, indented and named by their path) with one row
per value: the input a^[l−1], the pre-activation Z^[l] = W^[l] a^[l−1] + b^[l], the activation
a^[l] = g(Z^[l]), the error term δ^[l] = ∂L/∂Z^[l], and per parameter ∂L/∂W^[l] and the update ΔW
the optimiser applied with its size relative to W (‖ΔW‖/‖W‖). Each row gives the shape, min / mean
/ max, the share of zeros and a small histogram; feature-map values of the chosen sample are
drawn as tiles (a, Z and a^[l−1] in viridis, δ in a blue–white–red scale centred on zero).
"""
from __future__ import annotations

import math
import re

import numpy as np
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from netbuilder.core.run_events import RunBegan, StepTraced
from netbuilder.core.step_trace import StepTrace, TensorStats
from netbuilder.gui import theme
from netbuilder.gui.views.tiles import DIVERGING, SEQUENTIAL, TileGrid, scale_centred, scale_each

SYMBOLS = {"a_prev": "a<sup>[l−1]</sup>", "z": "Z<sup>[l]</sup>", "a": "a<sup>[l]</sup>",
           "delta": "δ<sup>[l]</sup>"}
DELTA_OF = {"z": "∂L/∂Z<sup>[l]</sup>", "a": "∂L/∂a<sup>[l]</sup>"}
NOTATION = ("Forward: Z<sup>[l]</sup> = W<sup>[l]</sup> a<sup>[l−1]</sup> + b<sup>[l]</sup>, "
            "a<sup>[l]</sup> = g(Z<sup>[l]</sup>). Backward: δ<sup>[l]</sup> = ∂L/∂Z<sup>[l]</sup> "
            "= (W<sup>[l+1]ᵀ</sup> δ<sup>[l+1]</sup>) ⊙ g′(Z<sup>[l]</sup>), "
            "∂L/∂W<sup>[l]</sup> = δ<sup>[l]</sup> a<sup>[l−1]ᵀ</sup>, ∂L/∂b<sup>[l]</sup> = Σ δ<sup>[l]</sup>; "
            "the optimiser turns ∂L/∂W into the update ΔW.")
EMPTY = "Press Step (F10) to train one batch and see every block's values and error terms here."
MAP_TILE = 28  # pixels per feature-map tile
MAX_MAPS = 16  # channels drawn per value


def superscripts(text: str) -> str:
    """"a^[l−1]" as rich text: the layer index raised."""
    return re.sub(r"\^(\[[^\]]*\])", r"<sup>\1</sup>", text)


def _num(v: float) -> str:
    if not math.isfinite(v):
        return str(v)
    return f"{v:.3g}" if v == 0 or 1e-3 <= abs(v) < 1e4 else f"{v:.2e}"


class Histogram(QWidget):
    """A QPainter sparkline of a histogram's counts (bars, the zero bin marked when it is in range)."""

    def __init__(self, stats: TensorStats, parent: QWidget | None = None):
        super().__init__(parent)
        self.counts = np.asarray(stats.counts, np.float64)
        self.edges = np.asarray(stats.edges, np.float64)
        self.setFixedSize(QSize(120, 28))
        self.setToolTip(f"{len(self.counts)} bins from {_num(self.edges[0])} to {_num(self.edges[-1])}")

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        painter = QPainter(self)
        w, h = self.width(), self.height()
        painter.fillRect(0, 0, w, h, QColor(theme.SURFACE))
        top = self.counts.max() if self.counts.size else 0
        if top > 0:
            n = len(self.counts)
            colour = QColor(theme.SELECTION)
            for i, c in enumerate(self.counts):
                bar = int(round((h - 2) * c / top))
                x0, x1 = int(i * w / n), int((i + 1) * w / n)
                painter.fillRect(x0, h - 1 - bar, max(x1 - x0 - 1, 1), bar, colour)
            lo, hi = self.edges[0], self.edges[-1]
            if lo < 0 < hi:
                x = int(w * (0 - lo) / (hi - lo))
                painter.setPen(QColor(theme.MUTED))
                painter.drawLine(x, 0, x, h)
        painter.end()


class BlockCard(QFrame):
    """One block of the trace: its formula and a grid of rows (value, shape, min, mean, max, zeros,
    histogram, maps)."""

    def __init__(self, block, parent: QWidget | None = None):
        super().__init__(parent)
        self.block = block
        self.setObjectName(f"step_{block.path}")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6 + 18 * block.depth, 4, 6, 4)
        title = QLabel(f"<b>{block.path.replace('.', ' › ')}</b> · {block.kind} · "
                       f"<span style='color:{theme.MUTED}'>{superscripts(block.formula)}</span>")
        title.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(title)
        grid = self.grid = QGridLayout()
        grid.setHorizontalSpacing(10)
        grid.setVerticalSpacing(2)
        for col, text in enumerate(("", "shape", "min", "mean", "max", "zeros", "histogram")):
            head = QLabel(text)
            theme.style(head, "color: {MUTED};")
            grid.addWidget(head, 0, col)
        self.rows: dict[str, int] = {}
        for key, stats in block.tensors.items():
            tip = f"δ = {DELTA_OF[block.delta_of]}" if key == "delta" else ""
            self._row(key, SYMBOLS[key], stats, block.maps.get(key), key == "delta", tip)
        for p in block.params:
            leaf = p.name.rsplit(".", 1)[-1]
            sym = "W" if leaf == "weight" else "b" if leaf == "bias" else leaf
            self._row(f"grad:{leaf}", f"∂L/∂{sym}<sup>[l]</sup>", p.grad, None, True, p.name)
            self._row(f"update:{leaf}", f"Δ{sym}", p.update, None, True,
                      f"the update the optimiser applied to {p.name}: {sym}_after − {sym}_before",
                      f"‖Δ{sym}‖/‖{sym}‖ = {_num(p.ratio)}")
        layout.addLayout(grid)

    def _row(self, key: str, symbol: str, stats: TensorStats, maps, centred: bool, tip: str = "",
             note: str = "") -> None:
        r = self.grid.rowCount()
        self.rows[key] = r
        label = QLabel(symbol)
        label.setTextFormat(Qt.TextFormat.RichText)
        label.setToolTip(tip)
        self.grid.addWidget(label, r, 0)
        if note:
            extra = QLabel(note)
            extra.setObjectName(f"note_{key}")
            theme.style(extra, "color: {MUTED};")
            self.grid.addWidget(extra, r + 1, 1, 1, 6)
        texts = ("×".join(map(str, stats.shape)), _num(stats.min), _num(stats.mean), _num(stats.max),
                 f"{100 * stats.zeros:.1f}%")
        for col, text in enumerate(texts, 1):
            self.grid.addWidget(QLabel(text), r, col)
        self.grid.addWidget(Histogram(stats), r, 6)
        if maps is not None and maps.ndim == 3:
            grid = TileGrid(tile_size=MAP_TILE)
            values = np.nan_to_num(maps[:MAX_MAPS].astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
            if centred:
                grid.set_tiles(scale_centred(values), DIVERGING)
            else:
                grid.set_tiles(scale_each(values), SEQUENTIAL)
            grid.setToolTip(f"the chosen sample's {min(len(maps), MAX_MAPS)} of {len(maps)} channels")
            grid.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
            self.grid.addWidget(grid, r + 1, 1, 1, 6)


class StepView(QWidget):
    """Every block of the last Step's batch (see the module)."""

    def __init__(self, controller, parent: QWidget | None = None):
        super().__init__(parent)
        self.controller = controller
        self.trace: StepTrace | None = None
        self.cards: dict[str, BlockCard] = {}
        self.header = QLabel(EMPTY)
        self.header.setWordWrap(True)
        self.header.setTextFormat(Qt.TextFormat.RichText)
        notation = QLabel(NOTATION)
        notation.setWordWrap(True)
        notation.setTextFormat(Qt.TextFormat.RichText)
        theme.style(notation, "color: {MUTED};")
        self.sample = QSpinBox()
        self.sample.setObjectName("step_sample")
        self.sample.setRange(0, 4095)
        self.sample.setToolTip("The sample of the batch (its row) whose feature maps the next Step shows")
        self.sample.valueChanged.connect(controller.set_step_sample)
        top = QHBoxLayout()
        top.addWidget(self.header, 1)
        top.addWidget(QLabel("sample"))
        top.addWidget(self.sample)
        self.body = QWidget()
        self.body_layout = QVBoxLayout(self.body)
        self.body_layout.setContentsMargins(0, 0, 0, 0)
        self.body_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.body)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(notation)
        layout.addWidget(scroll, 1)
        controller.stepTraced.connect(self.show_step)
        controller.runStarted.connect(self._run_started)

    def _run_started(self, event: RunBegan) -> None:
        if not event.continued and self.trace is not None:
            self.show_trace(None)

    def show_step(self, event: StepTraced) -> None:
        self.show_trace(event.trace)

    def show_trace(self, trace: StepTrace | None) -> None:
        """Show ``trace`` (None: the empty view)."""
        self.trace = trace
        for card in self.cards.values():
            card.setParent(None)
            card.deleteLater()
        self.cards = {}
        if trace is None:
            self.header.setText(EMPTY)
            return
        if trace.message:
            self.header.setText(f"Epoch {trace.epoch}, batch {trace.batch}: {trace.message}.")
            return
        label = f", label {trace.label}" if trace.label >= 0 else ""
        self.header.setText(
            f"<b>Epoch {trace.epoch}, batch {trace.batch} of {trace.batches_per_epoch}</b> · {trace.batch_size} "
            f"samples · loss L = {_num(trace.loss)} · {trace.optimizer}, step {trace.optimizer_steps}, "
            f"rate {trace.learning_rate:g} · maps of sample {trace.sample}{label}")
        for block in trace.blocks:
            card = BlockCard(block, self.body)
            self.body_layout.insertWidget(self.body_layout.count() - 1, card)
            self.cards[block.path] = card
