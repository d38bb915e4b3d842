"""Filters: the kernels of the first convolution as tiles, refreshed as they learn.

A single-channel (or many-channel, averaged) kernel is drawn with a diverging colour map centred
at 0: blue negative, white zero, red positive, one symmetric scale for the whole layer so filters
compare. Three input channels are drawn as a colour picture instead (each kernel stretched to
its own min..max), which is how edge and colour-blob detectors show up on RGB data.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import QFrame, QLabel, QScrollArea, QVBoxLayout, QWidget

from netbuilder.core.run_events import Filters
from netbuilder.gui import theme
from netbuilder.gui.views.tiles import DIVERGING, TileGrid, scale_centred


def filter_payload(filters: Filters | None) -> tuple[str, np.ndarray] | None:
    """(name, weights (F, C, kh, kw)) of a ``filtersReady`` event; None when there is no conv."""
    if filters is None or filters.weight is None:
        return None
    name, weights = filters.name, np.asarray(filters.weight, np.float32)
    if weights.ndim != 4:
        raise ValueError(f"filter weights must be (F, C, kh, kw), got shape {weights.shape}")
    return str(name), weights


class FilterView(QWidget):
    """The first conv block's kernels, one tile per filter; hover shows its range."""

    def __init__(self, controller, parent: QWidget | None = None):
        super().__init__(parent)
        self.controller = controller
        self._weights: np.ndarray | None = None
        self._name = ""
        self._pending = None
        self._has_pending = False

        self.header = QLabel()
        self.header.setWordWrap(True)
        self.grid = TileGrid(tile_size=64)
        self.grid.setObjectName("filter_tiles")
        self.grid.hover_text = self.tile_text
        self.grid.hovered.connect(lambda i: self.hover_label.setText(self.tile_text(i) if i >= 0 else " "))
        self.legend = QLabel()
        theme.style(self.legend, "color: {MUTED};")
        self.legend.setWordWrap(True)
        self.hover_label = QLabel(" ")
        theme.style(self.hover_label, "color: {MUTED};")

        inner = QWidget()
        ibox = QVBoxLayout(inner)
        ibox.setContentsMargins(0, 0, 0, 0)
        ibox.addWidget(self.grid)
        ibox.addWidget(self.legend)
        ibox.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(inner)

        box = QVBoxLayout(self)
        box.setContentsMargins(6, 6, 6, 6)
        box.addWidget(self.header)
        box.addWidget(scroll, 1)
        box.addWidget(self.hover_label)
        self._show_empty()
        controller.filtersReady.connect(self._filters_ready)

    # --- for tests and callers ------------------------------------------------------------------
    @property
    def tile_count(self) -> int:
        return self.grid.count

    def tile_text(self, index: int) -> str:
        if self._weights is None or not 0 <= index < len(self._weights):
            return ""
        w = self._weights[index]
        f, c, kh, kw = self._weights.shape
        return (f"{self._name} · filter {index} of {f} · {c}×{kh}×{kw} · "
                f"weights {float(w.min()):.3g} … {float(w.max()):.3g}")

    # --- updates ------------------------------------------------------------------------------
    def _filters_ready(self, payload) -> None:
        self._pending, self._has_pending = payload, True
        if self.isVisible():
            self._draw_pending()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self._draw_pending()

    def _draw_pending(self) -> None:
        if not self._has_pending:
            return
        payload, self._pending, self._has_pending = self._pending, None, False
        found = filter_payload(payload)
        if found is None:
            self._show_empty()
            return
        self._name, self._weights = found
        w = self._weights
        f, c, kh, kw = w.shape
        if c == 3:
            lo = w.min(axis=(1, 2, 3), keepdims=True)
            span = w.max(axis=(1, 2, 3), keepdims=True) - lo
            rgb = np.divide(w - lo, span, out=np.full_like(w, 0.5), where=span > 0)
            self.grid.set_tiles(rgb.transpose(0, 2, 3, 1))
            self.legend.setText("Each filter's three input channels shown as red, green and blue, stretched to its "
                                "own range.")
            how = "RGB"
        else:
            kernels = w.mean(axis=1)
            limit = float(np.abs(kernels).max())
            self.grid.set_tiles(scale_centred(kernels, limit), DIVERGING)
            self.legend.setText(
                f"<span style='color:{_hex(DIVERGING[0])}'>■</span> negative · white 0 · "
                f"<span style='color:{_hex(DIVERGING[-1])}'>■</span> positive; one scale for all filters, "
                f"±{limit:.3g}"
                + (f"; the {c} input channels are averaged" if c > 1 else ""))
            how = "averaged over channels" if c > 1 else ""
        theme.set_text(
            self.header, f"<b>{self._name}</b> <span style='color:{{MUTED}}'>· {f} filter{'s' if f != 1 else ''} "
            f"{kh}×{kw}" + (f" · {how}" if how else "") + "</span>")

    def _show_empty(self) -> None:
        self._weights = None
        self.grid.clear()
        theme.set_text(self.header, "<span style='color:{MUTED}'>The first convolution's filters appear here "
                                    "once the network has one and training has begun.</span>")
        self.legend.setText("")


def _hex(rgb) -> str:
    return "#" + "".join(f"{int(v):02x}" for v in rgb)
