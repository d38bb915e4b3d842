"""Images kept as uint8 on disk and read as float32 on demand: the array a set larger than memory trains from.

``MappedImages`` stands where a ``Dataset``'s ``x_*`` float32 array would (shape (N, C, H, W),
dtype float32, ``len``, indexing), over a uint8 memory map (``core.datasets.cache``). Indexing with
an int, a slice or an index array reads just those rows and returns a new float32 array of
``k / 255``, the very values the in-memory loaders compute, so the two paths train bit for bit
alike. A whole-array conversion (``np.asarray``) is possible but is what a large set must avoid:
callers go by rows (``gather``) or by chunks (``chunks``).
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

_SCALE = np.float32(255)
CHUNK_BYTES = 32 << 20  # uint8 rows converted per step of a whole-array pass


def to_float(u8: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``u8 / 255`` in float32 (into ``out`` if given, which may be float64): exactly what the loaders compute."""
    if out is None or out.dtype == np.float32:
        return np.divide(u8, _SCALE, out=out, dtype=np.float32)
    out[...] = np.divide(u8, _SCALE, dtype=np.float32)  # rounded to float32 first, as the in-memory path is
    return out


class MappedImages:
    """A read-only (N, C, H, W) float32 view of uint8 images ``base`` (usually a memory map).

    ``rows`` picks the base's rows this view holds: None for all, a ``(start, stop)`` range, or
    an int64 index array (what is left after skipped images, or a join). Indexing returns float32
    arrays; ``subset`` and ``join`` return further views without reading any image.
    """

    ndim = 4
    dtype = np.dtype(np.float32)

    def __init__(self, base: np.ndarray, rows: tuple[int, int] | np.ndarray | None = None, where: str = ""):
        if base.ndim != 4 or base.dtype != np.uint8:
            raise ValueError(f"MappedImages needs (N, C, H, W) uint8 images, got {base.dtype} {base.shape}")
        self.base = base
        self.where = where  # the cache folder (or file) the images are read from, for messages
        if rows is None:
            rows = (0, len(base))
        if isinstance(rows, tuple):
            start, stop = int(rows[0]), int(rows[1])
            if not 0 <= start <= stop <= len(base):
                raise ValueError(f"rows {start}:{stop} outside the {len(base)} images")
            self._range: tuple[int, int] | None = (start, stop)
            self._index: np.ndarray | None = None
        else:
            index = np.asarray(rows, np.int64)
            if index.ndim != 1 or (len(index) and (index.min() < 0 or index.max() >= len(base))):
                raise ValueError(f"row index must be 1-D within the {len(base)} images")
            self._range, self._index = None, index

    # --- what an array answers ------------------------------------------------------------------
    def __len__(self) -> int:
        if self._range is not None:
            return self._range[1] - self._range[0]
        return len(self._index)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self), *self.base.shape[1:])

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        """Bytes the view would take as float32 (what it avoids holding)."""
        return self.size * 4

    @property
    def stored_nbytes(self) -> int:
        """Bytes of its images as stored (uint8)."""
        return self.size

    def __repr__(self) -> str:
        where = f" in {self.where}" if self.where else ""
        return f"MappedImages(shape={self.shape}, uint8 read as float32{where})"

    def __getitem__(self, key):
        if isinstance(key, tuple):
            if not key:
                return np.asarray(self)
            first, rest = key[0], key[1:]
            if first is Ellipsis:
                return np.asarray(self)[key]
            out = self[first]
            return out[rest] if np.ndim(first) == 0 and not isinstance(first, slice) else out[(slice(None), *rest)]
        if isinstance(key, (int, np.integer)):
            return to_float(self.base[self._base_row(int(key))])
        return to_float(self.uint8(key))

    def __array__(self, dtype=None, copy=None):
        if copy is False:
            raise ValueError("MappedImages cannot be viewed as an array without a copy")
        out = np.empty(self.shape, np.float32 if dtype is None else dtype)
        for lo, hi in self.chunks():
            to_float(self.uint8(slice(lo, hi)), out=out[lo:hi])
        return out

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self)):
            yield self[i]

    def astype(self, dtype, copy: bool = True) -> np.ndarray:
        return np.asarray(self, dtype)

    def copy(self) -> np.ndarray:
        return np.asarray(self)

    # --- reading rows ---------------------------------------------------------------------------
    def chunks(self, max_bytes: int = CHUNK_BYTES) -> Iterator[tuple[int, int]]:
        """(lo, hi) ranges of rows covering the view, each of at most ``max_bytes`` stored bytes."""
        per = max(1, max_bytes // max(1, int(np.prod(self.base.shape[1:]))))
        for lo in range(0, len(self), per):
            yield lo, min(lo + per, len(self))

    def uint8(self, key) -> np.ndarray:
        """The stored bytes of the rows ``key`` (a slice, an index array or a boolean mask) picks."""
        rows = self._base_rows(key)
        if isinstance(rows, slice):
            return np.array(self.base[rows])  # a copy, as a plain array
        return np.take(self.base, rows, axis=0).view(np.ndarray)  # taken rows are a copy already

    def gather(self, idx: np.ndarray, out: np.ndarray, scratch: np.ndarray | None = None) -> None:
        """Fill ``out`` (len(idx) rows, float32 or float64) with the images at ``idx``, through
        ``scratch`` (a uint8 buffer of at least len(idx) rows, reused between batches) if given."""
        rows = self._base_rows(np.asarray(idx))
        k = len(rows)
        if scratch is None or len(scratch) < k:
            scratch = np.empty((k, *self.base.shape[1:]), np.uint8)
        np.take(self.base, rows, axis=0, out=scratch[:k])
        to_float(scratch[:k], out=out)

    def subset(self, idx) -> MappedImages:
        """A view of the rows ``idx`` picks (nothing is read)."""
        rows = self._base_rows(idx)
        if isinstance(rows, slice) and rows.step == 1:
            return MappedImages(self.base, (rows.start, rows.stop), self.where)
        if isinstance(rows, slice):
            rows = np.arange(rows.start, rows.stop, rows.step)
        return MappedImages(self.base, rows, self.where)

    def join(self, other: MappedImages) -> MappedImages:
        """This view's rows then ``other``'s, as one view (a range when they meet in one base)."""
        if other.base is not self.base or other.base.shape[1:] != self.base.shape[1:]:
            if other.base.shape[1:] != self.base.shape[1:]:
                raise ValueError(f"cannot join images of {self.shape[1:]} and {other.shape[1:]}")
            raise ValueError("cannot join views of two different stores")
        if self._range is not None and other._range is not None and self._range[1] == other._range[0]:
            return MappedImages(self.base, (self._range[0], other._range[1]), self.where)
        return MappedImages(self.base, np.concatenate([self._all_rows(), other._all_rows()]), self.where)

    # --- index arithmetic -----------------------------------------------------------------------
    def _all_rows(self) -> np.ndarray:
        if self._range is not None:
            return np.arange(*self._range, dtype=np.int64)
        return self._index

    def _base_row(self, i: int) -> int:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"index {i} is out of bounds for {n} images")
        i %= n
        return self._range[0] + i if self._range is not None else int(self._index[i])

    def _base_rows(self, key) -> slice | np.ndarray:
        """The base's rows for ``key``: a slice where they are a range of it, else an index array."""
        n = len(self)
        if isinstance(key, slice):
            r = range(n)[key]
            if self._range is not None and r.step > 0:
                start = self._range[0]
                return slice(start + r.start, start + max(r.start, r.stop), r.step)
            return self._all_rows()[key]
        idx = np.asarray(key)
        if idx.dtype == bool:
            if idx.shape != (n,):
                raise IndexError(f"a boolean index must have one entry per image ({n}), got shape {idx.shape}")
            idx = np.flatnonzero(idx)
        elif idx.dtype.kind not in "iu" or idx.ndim != 1:
            raise IndexError(f"images are indexed by ints, slices or 1-D int/bool arrays, got {idx.dtype} "
                             f"of shape {idx.shape}")
        idx = idx.astype(np.int64, copy=False)
        if len(idx) and (idx.min() < -n or idx.max() >= n):
            bad = int(idx.min()) if idx.min() < -n else int(idx.max())
            raise IndexError(f"index {bad} is out of bounds for {n} images")
        idx = np.where(idx < 0, idx + n, idx)
        return idx + self._range[0] if self._range is not None else self._index[idx]


def is_mapped(x) -> bool:
    """Whether ``x`` is a ``MappedImages`` (images to read by rows or chunks, never whole)."""
    return isinstance(x, MappedImages)
