"""Per-thread work arrays that die within a call, reused across calls: a big fresh array costs
page faults every time, and layers that take tens of microseconds a pass would feel even a slow
lookup (this one is a dict access and a reshape)."""
from __future__ import annotations

import math
import threading

import numpy as np

_local = threading.local()


def work(shape: tuple[int, ...], dtype, name: str) -> np.ndarray:
    """This thread's array ``name`` of ``shape`` and ``dtype`` (garbage contents), grown as needed.

    Two arrays in use at once need two names; a caller must not keep one past its call.
    """
    buffers = _local.__dict__.setdefault("buffers", {})
    size, key = math.prod(shape), (name, np.dtype(dtype))
    buf = buffers.get(key)
    if buf is None or buf.size < size:
        buf = buffers[key] = np.empty(size, key[1])
    return buf[:size].reshape(shape)
