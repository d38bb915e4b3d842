"""Feature maps: one validation sample going through the network, layer by layer, while it trains.

Shows the input image, every conv and pool block's output as a grid of tiles (one per channel),
and the predicted class probabilities. Blocks inside groups have their own sections, named by
their path ("res1 › conv1", indented one step per level) and listed just before the group's own
output, in the order the data goes through them. It draws what the controller's ``probeReady`` carries
(computed by the worker, a few times per second) and asks for another sample with
``controller.set_probe_sample(i)``. Each tile is scaled to its own min..max by default, so weak
channels still show their pattern; "same scale per layer" compares channel strengths instead.
A hidden view keeps only the latest probe and draws it when shown; while it is hidden the
controller is told that no probes are wanted (the worker then makes none but the run's first and
last), and when it is shown during a run it asks for one of its sample at once.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFontMetrics, QPainter, QPaintEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from netbuilder.core.blocks import KINDS
from netbuilder.core.run_events import DataReady, Probe
from netbuilder.gui import theme
from netbuilder.gui.views.tiles import GREY, SEQUENTIAL, TileGrid, scale_each, scale_together


def _shows_maps(kind: str) -> bool:
    spec = KINDS.get(kind)
    return spec is not None and spec.shows_maps


def class_name(names: list[str] | None, k: int | None) -> str:
    """The name of class ``k`` ("?" when unknown, the number when there are no names)."""
    if k is None or k < 0:
        return "?"
    return names[k] if names and k < len(names) else str(k)


def _dims(shape) -> str:
    return "×".join(str(int(v)) for v in shape)


def section_title(name: str) -> str:
    """How a section names a block: its path with "›" between the levels ("inc1 › path2 › conv1")."""
    return " › ".join(name.split("."))


INDENT = 16  # pixels per level of nesting: a section inside a group sits under the group's name


class ProbabilityBars(QWidget):
    """Horizontal bars of class probabilities, names on the left; predicted and true class marked."""

    ROW = 20

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._p = np.zeros(0, np.float32)
        self._names: list[str] = []
        self._true: int | None = None
        self._predicted: int | None = None
        self.setMinimumWidth(180)

    def set_probabilities(self, p: np.ndarray, names: list[str], true: int | None, predicted: int | None) -> None:
        p = np.asarray(p, np.float32).ravel()
        resized = len(p) != len(self._p)
        self._p, self._true, self._predicted = p, true, predicted
        self._names = [class_name(names, k) for k in range(len(p))]
        if resized:
            self.updateGeometry()
        self.update()

    def values(self) -> np.ndarray:
        return self._p.copy()

    def sizeHint(self) -> QSize:
        return QSize(220, max(1, len(self._p)) * self.ROW + 4)

    def minimumSizeHint(self) -> QSize:
        return QSize(180, max(1, len(self._p)) * self.ROW + 4)

    def paintEvent(self, event: QPaintEvent) -> None:
        if not len(self._p):
            return
        painter = QPainter(self)
        metrics = QFontMetrics(self.font())
        plain, bold = self.font(), theme.font(bold=True)
        label_w = min(max(metrics.horizontalAdvance(n) for n in self._names) + 22, self.width() // 2)
        value_w = metrics.horizontalAdvance("100%") + 8
        bar_w = max(10, self.width() - label_w - value_w)
        for k, p in enumerate(self._p):
            y = k * self.ROW + 2
            mark = "✓ " if k == self._true else "  "
            painter.setFont(bold if k == self._predicted else plain)
            painter.setPen(QColor(theme.TEXT if k == self._true or k == self._predicted else theme.MUTED))
            text = metrics.elidedText(mark + self._names[k], Qt.TextElideMode.ElideRight, label_w - 6)
            painter.drawText(QRectF(0, y, label_w - 6, self.ROW - 4),
                             Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, text)
            painter.fillRect(QRectF(label_w, y + 2, bar_w, self.ROW - 8), QColor(theme.BACKGROUND))
            if k == self._predicted:
                colour = theme.SELECTION if self._predicted == self._true or self._true is None else theme.ERROR
            else:
                colour = theme.FAINT
            value = float(p) if np.isfinite(p) else 0.0
            painter.fillRect(QRectF(label_w, y + 2, bar_w * min(max(value, 0.0), 1.0), self.ROW - 8), QColor(colour))
            painter.setPen(QColor(theme.MUTED))
            painter.drawText(QRectF(label_w + bar_w + 4, y, value_w, self.ROW - 4),
                             Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, f"{value:.0%}")
        painter.end()


class _LayerSection(QWidget):
    """One block's output: a header line and its tile grid."""

    def __init__(self, name: str, kind: str, shape: tuple[int, ...], parent: QWidget | None = None):
        super().__init__(parent)
        self.name, self.kind, self.shape = name, kind, shape
        self.title = section_title(name)
        self.depth = name.count(".")
        c, h, w = shape
        *outer, own = name.split(".")
        # A block inside a group: the path to it, muted, then its own name; a group: its output.
        where = "".join(f"{part} › " for part in outer)
        spec = KINDS.get(kind)
        what = f"{kind} output" if spec is not None and spec.structure else kind
        # Set once: changing a label's text re-runs the layout, too slow to do a few times a second.
        self.header = QLabel()
        theme.set_text(self.header, (f"<span style='color:{{MUTED}}'>{where}</span>" if where else "")
                       + f"<b>{own}</b> <span style='color:{{MUTED}}'>· {what} · {c} map"
                         f"{'s' if c != 1 else ''} {h}×{w}</span>")
        self.grid = TileGrid(tile_size=56)
        self.grid.setObjectName(f"tiles_{name}")
        self.lows = np.zeros(shape[0])
        self.highs = np.zeros(shape[0])
        box = QVBoxLayout(self)
        box.setContentsMargins(INDENT * self.depth, 0, 0, 6)
        box.setSpacing(3)
        box.addWidget(self.header)
        box.addWidget(self.grid)

    def show_maps(self, maps: np.ndarray, same_scale: bool) -> None:
        self.lows, self.highs = maps.min(axis=(1, 2)), maps.max(axis=(1, 2))
        tiles = scale_together(maps) if same_scale else scale_each(maps)
        self.grid.set_tiles(tiles, SEQUENTIAL)

    def tile_text(self, channel: int) -> str:
        c, h, w = self.shape
        return (f"{self.title} · channel {channel} of {c} · {h}×{w} · "
                f"values {float(self.lows[channel]):.3g} … {float(self.highs[channel]):.3g}")


class LayerSections(QWidget):
    """The feature maps of a network's conv and pooling blocks, one section each, top to bottom: made
    again only when the blocks or their shapes change, refilled on every ``show``. The Training
    view's feature maps and the Try view both show their probes through one of these."""

    hovered = Signal(str)  # the hovered tile's description, "" when the pointer leaves the tiles

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.sections: dict[str, _LayerSection] = {}
        self._column = QVBoxLayout(self)
        self._column.setContentsMargins(4, 0, 4, 0)
        self._column.addStretch(1)

    def show_layers(self, layers, same_scale: bool) -> bool:
        """Show the maps of ``layers`` [(name, kind, output)] that have them (a conv or pooling
        block's 3-D output); False when none has."""
        maps = [(name, kind, np.asarray(a)) for name, kind, a in layers if _shows_maps(kind) and np.ndim(a) == 3]
        layout = [(name, kind, a.shape) for name, kind, a in maps]
        if layout != [(s.name, s.kind, s.shape) for s in self.sections.values()]:
            self._rebuild(layout)
        for name, _, a in maps:
            self.sections[name].show_maps(a, same_scale)
        return bool(maps)

    def _rebuild(self, layout: list[tuple[str, str, tuple[int, ...]]]) -> None:
        for section in self.sections.values():
            self._column.removeWidget(section)
            section.deleteLater()
        self.sections = {}
        for i, (name, kind, shape) in enumerate(layout):
            section = _LayerSection(name, kind, shape)
            section.grid.hover_text = section.tile_text
            section.grid.hovered.connect(lambda ch, s=section: self.hovered.emit(s.tile_text(ch) if ch >= 0 else ""))
            self._column.insertWidget(i, section)
            self.sections[name] = section


class FeatureMapView(QWidget):
    """A validation sample's input, conv/pool feature maps and predicted probabilities, live."""

    def __init__(self, controller, parent: QWidget | None = None):
        super().__init__(parent)
        self.controller = controller
        self._class_names: list[str] = list(getattr(controller, "class_names", None) or [])
        self._val_x: np.ndarray | None = None
        self._val_y: np.ndarray | None = None
        self._pending: dict | None = None  # the latest probe, drawn when the view is (next) visible
        self._last: dict | None = None

        # --- sample picker and options
        self.prev_button = QToolButton(text="◀")
        self.prev_button.setToolTip("Previous validation sample")
        self.next_button = QToolButton(text="▶")
        self.next_button.setToolTip("Next validation sample")
        self.sample_spin = QSpinBox()  # counts from 1 for people; the controller's index is one less
        self.sample_spin.setRange(1, 1)
        self.sample_spin.setToolTip("Which validation sample goes through the network")
        self.sample_spin.setAccelerated(True)
        self.truth_label = QLabel()
        self.same_scale = QCheckBox("Same scale per layer")
        self.same_scale.setToolTip("Unchecked: each map is scaled to its own min..max, so weak channels still show "
                                   "their pattern.\nChecked: one scale per layer, so channel strengths compare "
                                   "(dead channels stay dark).")
        self.prev_button.clicked.connect(lambda: self.sample_spin.stepBy(-1))
        self.next_button.clicked.connect(lambda: self.sample_spin.stepBy(1))
        self.sample_spin.valueChanged.connect(self._sample_chosen)
        self.same_scale.toggled.connect(self._rescale)
        self.sample_caption = QLabel("Validation sample")
        bar = QHBoxLayout()
        bar.addWidget(self.sample_caption)
        bar.addWidget(self.prev_button)
        bar.addWidget(self.sample_spin)
        bar.addWidget(self.next_button)
        bar.addWidget(self.truth_label, 1)
        # The true class may be long: it gives way (clipped) rather than widen the whole view.
        self.truth_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

        # --- left: input and prediction
        self.input_grid = TileGrid(tile_size=140)
        self.input_grid.setObjectName("input_tiles")
        self.input_grid.hover_text = self._input_text
        self.input_caption = QLabel("Input")
        self.bars = ProbabilityBars()
        self.prediction_label = QLabel()
        self.prediction_label.setWordWrap(True)
        left = QWidget()
        lbox = QVBoxLayout(left)
        lbox.setContentsMargins(0, 0, 6, 0)
        lbox.addWidget(self.input_caption)
        lbox.addWidget(self.input_grid)
        lbox.addSpacing(8)
        lbox.addWidget(self.prediction_label)
        lbox.addWidget(self.bars)
        lbox.addStretch(1)

        # --- right: one section per conv/pool block
        self.layers = LayerSections()
        self.layers.hovered.connect(self._hovered)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setWidget(self.layers)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        right = QWidget()
        rbox = QVBoxLayout(right)
        rbox.setContentsMargins(0, 0, 0, 0)
        rbox.addWidget(self.same_scale)  # above the maps it changes, not widening the sample bar
        rbox.addWidget(self.scroll, 1)

        # Many classes (or a short window) make the bars taller than the pane: they scroll.
        self.left_scroll = QScrollArea()
        self.left_scroll.setWidgetResizable(True)
        self.left_scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.left_scroll.setWidget(left)
        self.left_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.left_scroll.setMinimumWidth(left.minimumSizeHint().width()
                                         + self.left_scroll.verticalScrollBar().sizeHint().width())

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.left_scroll)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([1, 1000])  # the input and bars at their minimum width, the maps the rest

        self.message = QLabel("Train the network to see what each layer makes of a sample.")
        theme.style(self.message, "color: {MUTED};")
        self.message.setWordWrap(True)
        self.hover_label = QLabel(" ")
        theme.style(self.hover_label, "color: {MUTED};")

        box = QVBoxLayout(self)
        box.setContentsMargins(6, 6, 6, 6)
        box.addLayout(bar)
        box.addWidget(self.message)
        box.addWidget(self.splitter, 1)
        box.addWidget(self.hover_label)

        controller.datasetReady.connect(self._dataset_ready)
        controller.probeReady.connect(self._probe_ready)

    # --- for tests and callers ------------------------------------------------------------------
    def layers_shown(self) -> list[str]:
        """Names of the blocks whose maps are shown, top to bottom (paths inside groups: "res1.conv1")."""
        return list(self.layers.sections)

    def tile_count(self, layer_name: str) -> int:
        return self.layers.sections[layer_name].grid.count

    def section(self, layer_name: str) -> _LayerSection:
        return self.layers.sections[layer_name]

    def tile_text(self, layer_name: str, channel: int) -> str:
        """The hover text of one tile: layer, channel and its value range."""
        return self.layers.sections[layer_name].tile_text(channel)

    # --- controller signals -------------------------------------------------------------------
    def _dataset_ready(self, info: DataReady) -> None:
        self._class_names = list(info.class_names or self._class_names)
        self._val_x, self._val_y = info.val_x, info.val_y
        # Without a validation split the controller lends training samples: say so.
        self.sample_caption.setText("Training sample (no validation split)" if info.val_is_train
                                    else "Validation sample")
        n = len(self._val_x) if self._val_x is not None else int(info.val_size or 0)
        self.sample_spin.blockSignals(True)
        self.sample_spin.setRange(1, max(1, n))
        self.sample_spin.blockSignals(False)
        self.sample_spin.setSuffix(f" of {n}" if n else "")
        if n:
            self._show_sample(self.sample_index)
            self.controller.set_probe_sample(self.sample_index)

    @property
    def sample_index(self) -> int:
        """The chosen sample's index in the validation split (0-based)."""
        return self.sample_spin.value() - 1

    def _sample_chosen(self, value: int) -> None:
        self._show_sample(value - 1)
        self.controller.set_probe_sample(value - 1)

    def _show_sample(self, index: int) -> None:
        """The sample's image and true label straight from the validation data (before any probe)."""
        if self._val_x is None or not 0 <= index < len(self._val_x):
            return
        self._set_input(self._val_x[index])
        label = int(self._val_y[index]) if self._val_y is not None else None
        self.truth_label.setText(f"true class: <b>{class_name(self._class_names, label)}</b>")

    def _probe_ready(self, probe: Probe) -> None:
        self._pending = probe
        if self.isVisible():
            self._draw_pending()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.controller.set_probes_wanted(True)
        if self.controller.is_running and self._val_x is not None:
            self.controller.set_probe_sample(self.sample_index)  # the network as it is now, at the next batch
        self._draw_pending()

    def hideEvent(self, event) -> None:
        super().hideEvent(event)
        self.controller.set_probes_wanted(False)

    def _rescale(self) -> None:
        if self._last is not None:
            self._pending = self._last
            self._draw_pending()

    # --- drawing ------------------------------------------------------------------------------
    def _draw_pending(self) -> None:
        probe, self._pending = self._pending, None
        if probe is None:
            return
        self._last = probe
        maps = self.layers.show_layers(probe.layers, self.same_scale.isChecked())
        self.message.setText("" if maps else "This network has no convolution or pooling blocks, so there are no "
                                             "feature maps to show: only its input and prediction.")
        self.message.setVisible(not maps)

        self._set_input(probe.input)
        true = probe.label
        true = None if true is None or int(true) < 0 else int(true)
        predicted = probe.predicted
        predicted = None if predicted is None or int(predicted) < 0 else int(predicted)  # -1: outputs not finite
        names = self._class_names
        self.bars.set_probabilities(probe.probabilities, names, true, predicted)
        verdict = "" if true is None else (" ✓" if predicted == true else " ✗")
        theme.set_text(
            self.prediction_label, f"Predicted <b>{class_name(names, predicted)}</b>{verdict}"
            + ("" if true is None else f"<br><span style='color:{{MUTED}}'>true class: "
                                       f"{class_name(names, true)}</span>"))
        self.truth_label.setText(f"true class: <b>{class_name(names, true)}</b>")
        index = probe.sample_index
        if index is not None and int(index) != self.sample_index and int(index) < self.sample_spin.maximum():
            self.sample_spin.blockSignals(True)
            self.sample_spin.setValue(int(index) + 1)
            self.sample_spin.blockSignals(False)

    def _set_input(self, x: np.ndarray) -> None:
        x = np.asarray(x, np.float32)
        self._input = x
        inside = x.size and float(x.min()) >= 0.0 and float(x.max()) <= 1.0
        values = x if inside else scale_together(x)
        if values.shape[0] == 3:
            self.input_grid.set_tiles(values.transpose(1, 2, 0)[None])  # one RGB tile
        else:
            self.input_grid.set_tiles(values, GREY)  # one tile per channel (usually just one)
        c, h, w = x.shape
        theme.set_text(self.input_caption, f"<b>Input</b> <span style='color:{{MUTED}}'>· {c}×{h}×{w}</span>")

    def _input_text(self, index: int) -> str:
        x = self._input
        part = x if x.shape[0] == 3 else x[index:index + 1]
        return f"input · {_dims(x.shape)} · values {float(part.min()):.3g} … {float(part.max()):.3g}"

    def _hovered(self, text: str) -> None:
        self.hover_label.setText(text or " ")
