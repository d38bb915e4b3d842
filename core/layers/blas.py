"""Thread count of the OpenBLAS library numpy uses, set through ctypes (best effort).

The layers split their matmuls across their own threads (netbuilder.core.layers.parallel), so they want
BLAS single-threaded: OpenBLAS's own helper threads busy-wait for ~0.1 s after every call and
would take the second core away from the layers' threads. When numpy is not linked against an
OpenBLAS that can be found here, nothing is changed and ``available()`` is False.
"""
from __future__ import annotations

import ctypes
import glob
import os

import numpy as np

_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
            "openblas_set_num_threads64_", "openblas_set_num_threads")
_GETTERS = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
            "openblas_get_num_threads64_", "openblas_get_num_threads")


def _candidates() -> list[str]:
    """Paths of loaded (or bundled) OpenBLAS libraries."""
    paths = []
    try:
        with open("/proc/self/maps") as maps:
            paths = [line.split()[-1] for line in maps if "openblas" in line.lower() and "/" in line]
    except OSError:
        pass
    root = os.path.dirname(np.__file__)
    for pattern in ("../numpy.libs/*openblas*", ".dylibs/*openblas*", "../numpy.libs/*.dll", "*openblas*"):
        paths += glob.glob(os.path.join(root, pattern))
    return list(dict.fromkeys(paths))


def _find() -> tuple | None:
    mode = getattr(os, "RTLD_NOLOAD", 0) | ctypes.RTLD_GLOBAL
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path, mode=mode)
        except OSError:
            continue
        setter = next((getattr(lib, n) for n in _SETTERS if hasattr(lib, n)), None)
        getter = next((getattr(lib, n) for n in _GETTERS if hasattr(lib, n)), None)
        if setter is not None and getter is not None:
            setter.argtypes, setter.restype = [ctypes.c_int], None
            getter.argtypes, getter.restype = [], ctypes.c_int
            return setter, getter
    return None


_api = _find()


def available() -> bool:
    return _api is not None


def get_threads() -> int | None:
    """OpenBLAS's current thread count, or None when it cannot be controlled."""
    return _api[1]() if _api else None


def set_threads(n: int) -> None:
    """Make OpenBLAS use ``n`` threads (no-op when it cannot be controlled)."""
    if _api:
        _api[0](int(n))
