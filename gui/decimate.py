"""Fewer points for a long curve, chosen so that it looks the same: per pixel column, its extremes.

A curve of 100,000 batch losses on a plot 400 pixels wide draws 250 points into every column;
painting them costs the GUI thread about 130 ms. ``column_extremes`` keeps, of each run of
consecutive points inside one column, the lowest and the highest (in their order), so a spike
stays as tall as it is and the line between columns is the line that was drawn before: at most
two points a column. ``ColumnDecimator`` does that for a curve that grows at its end, looking
again only at the points of its last column (the earlier columns cannot change).
"""
from __future__ import annotations

import math

import numpy as np

SMALL = 48  # up to this many points a loop is quicker than numpy's calls (the usual redraw's few new ones)


def column_extremes(x: np.ndarray, y: np.ndarray, width: float) -> tuple[np.ndarray, int]:
    """(indices of the points to keep, in order; index where the last column's points start).

    Columns are ``width`` wide in x, counted from 0; points whose y is not finite are dropped
    (they would be gaps, which a column's worth of pixels cannot show).
    """
    n = len(x)
    if n == 0:
        return np.empty(0, np.intp), 0
    if n <= SMALL:
        return _few_extremes(x.tolist(), y.tolist(), width)
    column = np.floor(np.asarray(x, np.float64) / width)
    starts = np.flatnonzero(np.r_[True, column[1:] != column[:-1]])
    counts = np.diff(np.r_[starts, n])
    run = np.repeat(np.arange(len(starts)), counts)  # which run of one column each point is in
    y = np.asarray(y, np.float64)
    finite = np.isfinite(y)
    kept = []
    for values, reduce in ((np.where(finite, y, np.inf), np.minimum), (np.where(finite, y, -np.inf), np.maximum)):
        extreme = reduce.reduceat(values, starts)
        hits = np.flatnonzero(values == extreme[run])
        first = np.r_[True, run[hits[1:]] != run[hits[:-1]]]  # the earliest of equal extremes
        kept.append(hits[first])
    keep = np.union1d(*kept)
    return keep[finite[keep]], int(starts[-1])


def _few_extremes(x: list[float], y: list[float], width: float) -> tuple[np.ndarray, int]:
    """``column_extremes`` of a few points, in a loop."""
    keep: list[int] = []
    start, column, low, high = 0, None, None, None
    for i, (xi, yi) in enumerate(zip(x, y)):
        c = math.floor(xi / width)
        if c != column:
            keep += sorted({k for k in (low, high) if k is not None})
            start, column, low, high = i, c, None, None
        if math.isfinite(yi):
            if low is None or yi < y[low]:
                low = i
            if high is None or yi > y[high]:
                high = i
    keep += sorted({k for k in (low, high) if k is not None})
    return np.array(keep, np.intp), start


class ColumnDecimator:
    """The points to draw of one growing curve; ``indices`` again after points were appended."""

    def __init__(self) -> None:
        self._width: float | None = None
        self._closed = np.empty(0, np.intp)  # kept points of the columns before the last
        self._open = 0  # first point of the last column (looked at again when the curve grows)

    @property
    def width(self) -> float | None:
        """The column width of the last ``indices`` (None before it)."""
        return self._width

    def indices(self, x: np.ndarray, y: np.ndarray, width: float) -> np.ndarray:
        """Indices into ``x``/``y`` of the points to hand the plot (sorted), for columns ``width`` wide."""
        if width != self._width or len(x) < self._open:  # another scale, or another curve
            self._width, self._closed, self._open = width, np.empty(0, np.intp), 0
        tail, last = column_extremes(x[self._open:], y[self._open:], width)
        tail += self._open
        last += self._open
        done = tail < last
        if done.any():
            self._closed = np.concatenate([self._closed, tail[done]])
        self._open = last
        return np.concatenate([self._closed, tail[~done]])
