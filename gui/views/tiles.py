"""Tile grids: many small images (feature maps, filters, dataset samples) drawn fast and right way round.

Tiles are kept as packed RGB pixels (numpy, row-major: row 0 is the top of each image). To draw,
the grid composes them with numpy into ONE mosaic image at the on-screen size (nearest-neighbour
scaling, gaps transparent) and paints it with a single ``drawImage``; the mosaic is rebuilt only
when the pixels or the layout change. Tiles reflow to the widget's width; hovering a tile reports
its index. A 32-channel layer costs one numpy pass and one paint call, not 32 widgets or items.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPoint, QRect, QSize, Signal
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget

from netbuilder.gui import theme


def _lut(name: str) -> np.ndarray:
    return np.ascontiguousarray(pg.colormap.get(name).getLookupTable(nPts=256, alpha=False).astype(np.uint8))


# (256, 3) uint8 colour tables indexed by a value scaled to 0..255.
GREY = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
SEQUENTIAL = _lut("viridis")  # activations: dark = low, yellow = high, readable for colour-blind eyes
DIVERGING = _lut("CET-D1")  # weights: blue negative, white zero, red positive


def scale_each(stack: np.ndarray) -> np.ndarray:
    """(N, H, W) values -> [0, 1], each tile to its own min..max (a constant tile becomes 0)."""
    stack = np.asarray(stack, dtype=np.float32)
    lo = stack.min(axis=(1, 2), keepdims=True)
    span = stack.max(axis=(1, 2), keepdims=True) - lo
    return np.divide(stack - lo, span, out=np.zeros_like(stack), where=span > 0)


def scale_together(stack: np.ndarray) -> np.ndarray:
    """(N, ...) values -> [0, 1] with one min..max for all tiles, so their strengths compare."""
    stack = np.asarray(stack, dtype=np.float32)
    lo, hi = float(stack.min()), float(stack.max())
    if not hi > lo:
        return np.zeros_like(stack)
    return (stack - lo) / (hi - lo)


def scale_centred(stack: np.ndarray, limit: float | None = None) -> np.ndarray:
    """Values -> [0, 1] with 0 at 0.5 and +-``limit`` (default: the largest magnitude) at 1 and 0."""
    stack = np.asarray(stack, dtype=np.float32)
    limit = float(np.abs(stack).max()) if limit is None else float(limit)
    if not limit > 0:
        return np.full_like(stack, 0.5)
    return np.clip(stack / (2 * limit) + 0.5, 0.0, 1.0)


def _packed(lut: np.ndarray) -> np.ndarray:
    """(256, 3) uint8 colours -> (256,) uint32 0xffRRGGBB: opaque pixels as QImage stores them."""
    lut = lut.astype(np.uint32)
    return (0xFF000000 | (lut[:, 0] << 16) | (lut[:, 1] << 8) | lut[:, 2]).astype(np.uint32)


def _levels(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> 0..255 (NaN, from a diverged network, becomes 0)."""
    scaled = np.asarray(values, np.float32) * 255 + 0.5
    np.clip(scaled, 0, 255, out=scaled)
    if np.isnan(scaled).any():
        scaled[np.isnan(scaled)] = 0
    return scaled.astype(np.uint8)


def pack_tiles(tiles: np.ndarray, lut: np.ndarray | None = GREY) -> np.ndarray:
    """(N, H, W) uint32 opaque 0xAARRGGBB pixels from (N, H, W) values in [0, 1] mapped through
    ``lut``, or from (N, H, W, 3) RGB values in [0, 1] (``lut`` ignored)."""
    tiles = np.asarray(tiles)
    if tiles.ndim == 3:
        return _packed(GREY if lut is None else lut)[_levels(tiles)]
    if tiles.ndim == 4 and tiles.shape[-1] == 3:
        rgb = _levels(tiles).astype(np.uint32)
        return 0xFF000000 | (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    raise ValueError(f"tiles must be (N, H, W) or (N, H, W, 3), got shape {tiles.shape}")


def to_qimage(pixels: np.ndarray) -> QImage:
    """A QImage of (H, W) uint32 premultiplied ARGB pixels (a copy: QImage does not own numpy memory)."""
    pixels = np.ascontiguousarray(pixels, np.uint32)
    h, w = pixels.shape
    return QImage(pixels.data, w, h, 4 * w, QImage.Format.Format_ARGB32_Premultiplied).copy()


def mosaic(pixels: np.ndarray, columns: int, shown: int, th: int, tw: int, gap: int) -> np.ndarray:
    """(rows*(th+gap)-gap, columns*(tw+gap)-gap) uint32: the first ``shown`` of ``pixels`` (N, h, w),
    each scaled to th x tw by nearest neighbour, row by row, with transparent gaps."""
    n, h, w = pixels.shape
    rows_idx = (np.arange(th) * h) // th
    cols_idx = (np.arange(tw) * w) // tw
    scaled = pixels[:shown][:, rows_idx[:, None], cols_idx[None, :]]
    rows = -(-shown // columns)
    cells = np.zeros((rows * columns, th + gap, tw + gap), np.uint32)
    cells[:shown, :th, :tw] = scaled
    grid = cells.reshape(rows, columns, th + gap, tw + gap).transpose(0, 2, 1, 3)
    return grid.reshape(rows * (th + gap), columns * (tw + gap))[:-gap or None, :-gap or None]


class TileGrid(QWidget):
    """Tiles of equal size, laid out in rows that fit the width; ``hovered(index)`` (-1 off tiles).

    ``tile_size`` is the largest on-screen edge of a tile in pixels. Tiles shrink (down to
    ``min_fraction`` of it) to fit in fewer rows, so a 6-channel layer stays one row in a narrow
    column; beyond that they wrap. A scale that is a whole number keeps pixels crisp and is used
    where it costs little. ``max_rows`` caps the rows: tiles that do not fit are not drawn
    (``shown`` tells how many are). ``hover_text(index)`` gives the tooltip.
    """

    hovered = Signal(int)

    GAP = 4

    def __init__(self, tile_size: int = 56, parent: QWidget | None = None, min_fraction: float = 0.6,
                 max_rows: int | None = None):
        super().__init__(parent)
        self.tile_size = tile_size
        self.min_fraction = min_fraction
        self.max_rows = max_rows
        self.hover_text: Callable[[int], str] | None = None
        self._pixels = np.zeros((0, 0, 0), np.uint32)  # (N, h, w) packed tiles
        self._mosaic: tuple[tuple, QImage] | None = None  # (layout it was built for, image)
        self._count = 0
        self._tile_hw = (0, 0)
        self._hover = -1
        self._marked: dict[int, QColor] = {}
        self._layouts: dict[int, tuple[int, int, int, int]] = {}  # width -> (columns, shown, th, tw)
        self.setMouseTracking(True)
        policy = QSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        policy.setHeightForWidth(True)
        self.setSizePolicy(policy)

    # --- content ------------------------------------------------------------------------------
    def set_pixels(self, pixels: np.ndarray) -> None:
        """Show (N, h, w) packed pixels (see ``pack_tiles``)."""
        count, hw = len(pixels), tuple(pixels.shape[1:])
        relayout = hw != self._tile_hw or count != self._count
        self._pixels, self._count, self._tile_hw, self._mosaic = pixels, count, hw, None
        if relayout:
            self._layouts.clear()
            self._hover = -1 if self._hover >= count else self._hover
            self.updateGeometry()
        self.update()

    def set_tiles(self, tiles: np.ndarray, lut: np.ndarray | None = GREY) -> None:
        """Show (N, H, W) values in [0, 1] through ``lut``, or (N, H, W, 3) RGB in [0, 1]."""
        self.set_pixels(pack_tiles(tiles, lut))

    def clear(self) -> None:
        self.set_pixels(np.zeros((0, 0, 0), np.uint32))

    def mark(self, marks: dict[int, QColor | str]) -> None:
        """Draw a coloured frame round the given tiles (index -> colour), e.g. the chosen sample."""
        self._marked = {i: QColor(c) for i, c in marks.items()}
        self.update()

    @property
    def count(self) -> int:
        return self._count

    @property
    def shown(self) -> int:
        """How many tiles are drawn at the current width (fewer than ``count`` only with ``max_rows``)."""
        return self._layout()[1]

    @property
    def image(self) -> QImage:
        """The tiles side by side, unscaled (H, N*W): what the grid shows, for tests and export."""
        n, h, w = self._pixels.shape
        return to_qimage(self._pixels.transpose(1, 0, 2).reshape(h, n * w)) if n else QImage()

    # --- geometry -----------------------------------------------------------------------------
    def _layout(self, width: int | None = None) -> tuple[int, int, int, int]:
        """(columns, tiles shown, tile height, tile width) in pixels for a grid ``width`` wide."""
        width = self.width() if width is None else width
        found = self._layouts.get(width)
        if found is None:
            found = self._layouts[width] = self._compute_layout(width)
        return found

    def _compute_layout(self, width: int) -> tuple[int, int, int, int]:
        h, w = self._tile_hw
        n, gap = self._count, self.GAP
        if not n or not h or not w:
            return (1, 0, 0, 0)
        edge = max(h, w)
        largest, smallest = float(self.tile_size), self.tile_size * self.min_fraction
        if width <= 0:  # not laid out yet: the preferred size, up to 8 a row
            cols, size = min(n, 8), largest
        else:
            rows_cap = self.max_rows or n
            for rows in range(1, min(n, rows_cap) + 1):
                cols = math.ceil(n / rows)
                size = min(largest, (width - (cols - 1) * gap) / cols)
                if size >= smallest:
                    break
            else:  # too narrow even so: smallest tiles, as many a row as fit (at least one, shrunk to fit)
                size = min(smallest, width)
                cols = max(1, min(n, int((width + gap) // (size + gap))))
        whole = math.floor(size / edge) * edge  # a whole-number scale, if it does not shrink much
        if whole >= max(smallest, 0.85 * size):
            size = whole
        factor = size / edge
        shown = min(n, cols * self.max_rows) if self.max_rows else n
        return (cols, shown, max(1, round(h * factor)), max(1, round(w * factor)))

    def tile_pixels(self, width: int | None = None) -> tuple[int, int]:
        """(height, width) of one tile on screen when the grid is ``width`` pixels wide."""
        _, _, th, tw = self._layout(width)
        return (th, tw)

    def columns(self, width: int | None = None) -> int:
        return self._layout(width)[0]

    def tile_rect(self, index: int) -> QRect:
        """Where tile ``index`` is drawn, in widget coordinates."""
        cols, _, th, tw = self._layout()
        r, c = divmod(index, cols)
        return QRect(c * (tw + self.GAP), r * (th + self.GAP), tw, th)

    def tile_at(self, pos: QPoint) -> int:
        """The tile under ``pos`` (widget coordinates), or -1 for a gap or the empty area."""
        cols, shown, th, tw = self._layout()
        if not shown or not tw or pos.x() < 0 or pos.y() < 0:
            return -1
        c, dx = divmod(pos.x(), tw + self.GAP)
        r, dy = divmod(pos.y(), th + self.GAP)
        index = r * cols + c
        if c >= cols or dx >= tw or dy >= th or index >= shown:
            return -1
        return index

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        cols, shown, th, _ = self._layout(width)
        if not shown:
            return 0
        return math.ceil(shown / cols) * (th + self.GAP) - self.GAP

    def sizeHint(self) -> QSize:
        cols, shown, th, tw = self._layout(0)
        if not shown:
            return QSize(self.tile_size, 0)
        width = cols * (tw + self.GAP) - self.GAP
        return QSize(width, self.heightForWidth(width))

    def minimumSizeHint(self) -> QSize:
        return QSize(16, 16 if self._count else 0)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if len(self._layouts) > 64:  # widths seen while dragging a splitter
            self._layouts.clear()
        if self.heightForWidth(event.size().width()) != self.heightForWidth(event.oldSize().width()):
            self.updateGeometry()  # the number of rows or the tile size, hence the height, changed

    # --- painting and hover -------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:
        cols, shown, th, tw = self._layout()
        if not shown or not tw:
            return
        key = (cols, shown, th, tw)
        if self._mosaic is None or self._mosaic[0] != key:
            self._mosaic = (key, to_qimage(mosaic(self._pixels, cols, shown, th, tw, self.GAP)))
        painter = QPainter(self)
        painter.drawImage(0, 0, self._mosaic[1])
        gap = self.GAP
        painter.setPen(QPen(QColor(theme.BORDER)))
        painter.drawRects([QRect(c * (tw + gap), r * (th + gap), tw - 1, th - 1)
                           for r, c in (divmod(i, cols) for i in range(shown))])
        for i, colour in self._marked.items():
            if 0 <= i < shown:
                painter.setPen(QPen(colour, 3))
                painter.drawRect(self.tile_rect(i).adjusted(-1, -1, 0, 0))
        if 0 <= self._hover < shown:
            painter.setPen(QPen(QColor(theme.SELECTION), 2))
            painter.drawRect(self.tile_rect(self._hover).adjusted(0, 0, -1, -1))
        painter.end()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        self._set_hover(self.tile_at(event.position().toPoint()), event.globalPosition().toPoint())
        super().mouseMoveEvent(event)

    def leaveEvent(self, event) -> None:
        self._set_hover(-1, None)
        super().leaveEvent(event)

    def _set_hover(self, index: int, global_pos: QPoint | None) -> None:
        if index != self._hover:
            self._hover = index
            self.update()
            self.hovered.emit(index)
        if index >= 0 and self.hover_text is not None and global_pos is not None:
            QToolTip.showText(global_pos, self.hover_text(index), self, self.tile_rect(index))
        elif index < 0:
            QToolTip.hideText()
