"""The layers' own threads: work split along an axis, run at once (numpy releases the GIL).

Matmuls are split too, over independent column blocks, with BLAS itself kept single-threaded
while the engine runs (``blas_single_threaded``): one set of threads owns the cores, so nothing
spins against anything (OpenBLAS's idle helpers busy-wait for ~0.1 s after every call). Jobs too
small to pay for a thread hand-off (tens of microseconds) run inline. Importing this changes
nothing outside it: the BLAS setting is the caller's again when the engine is done.
"""
from __future__ import annotations

import functools
import itertools
import os
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# A job is shared only if each thread gets at least this many array elements to touch.
MIN_ELEMENTS = 1 << 19

_threads = 1
_helpers: list[threading.Thread] = []
_jobs: queue.SimpleQueue = queue.SimpleQueue()
_lock = threading.Lock()


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class _Help:
    """An offer of help with one job: claimed by a helper thread, or taken back by the caller."""

    __slots__ = ("work", "unclaimed", "done", "error")

    def __init__(self, work: Callable[[], None]):
        self.work = work
        self.unclaimed = [True]  # list.pop() is atomic: exactly one side gets the True
        self.done = threading.Lock()
        self.done.acquire()
        self.error: BaseException | None = None


def _helper_loop() -> None:
    while True:
        offer = _jobs.get()
        if offer is None:
            return
        try:
            offer.unclaimed.pop()
        except IndexError:  # the caller finished the job alone
            continue
        try:
            offer.work()
        except BaseException as e:  # handed to the caller, which re-raises it
            offer.error = e
        finally:
            offer.done.release()


def set_threads(n: int) -> None:
    """Run the layers on ``n`` threads (1 = the calling thread only)."""
    global _threads
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"thread count must be a positive integer, got {n!r}")
    with _lock:
        if len(_helpers) > n - 1:  # any helper may take any stop sign: stop all, start afresh
            for _ in _helpers:
                _jobs.put(None)
            for t in _helpers:
                t.join()
            _helpers.clear()
        while len(_helpers) < n - 1:
            t = threading.Thread(target=_helper_loop, name="netbuilder-layers", daemon=True)
            t.start()
            _helpers.append(t)
        _threads = n


_blas_lock = threading.Lock()
_blas_users = 0  # blocks inside blas_single_threaded, in every thread
_blas_limiter = None  # threadpoolctl's limiter while there are users: it restores the original
_blas_controller = None  # threadpoolctl's view of the BLAS libraries loaded, found once


@contextmanager
def blas_single_threaded() -> Iterator[None]:
    """BLAS (OpenBLAS, MKL, BLIS alike) on one thread inside the block, as the layers want it;
    whatever the process had comes back when the last such block, in any thread, ends. The
    setting is process-wide, so overlapping blocks (a training run and a probe from another
    thread) share one limit rather than each restoring what it saw. Costs about 20 microseconds."""
    global _blas_users, _blas_limiter, _blas_controller
    with _blas_lock:
        if _blas_users == 0:
            if _blas_controller is None:
                from threadpoolctl import ThreadpoolController

                _blas_controller = ThreadpoolController()
            _blas_limiter = _blas_controller.limit(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                _blas_limiter.restore_original_limits()
                _blas_limiter = None


def holds_blas_single_threaded(method: Callable) -> Callable:
    """Decorator: ``method`` runs inside ``blas_single_threaded`` (the engine's public calls)."""
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with blas_single_threaded():
            return method(*args, **kwargs)
    return wrapper


def threads() -> int:
    return _threads


def split(fn: Callable[[int, int], None], n: int, elements: int) -> None:
    """Call ``fn(lo, hi)`` on consecutive chunks covering range(n), in parallel when worth it.

    ``fn`` must only write to parts of arrays indexed by its own [lo, hi) range; ``elements`` is
    roughly how many array elements the whole job touches. Chunks go to whichever thread is
    free, the caller included, and the caller takes back help not yet started: a helper slow to
    wake (a busy machine) never makes a job slower than running it alone.
    """
    parts = min(_threads, n, max(1, elements // MIN_ELEMENTS))
    if parts <= 1:
        fn(0, n)
        return
    bounds = [n * k // parts for k in range(parts + 1)]
    tickets = itertools.count()  # next() on it is atomic under the GIL

    def work() -> None:
        while (k := next(tickets)) < parts:
            fn(bounds[k], bounds[k + 1])

    offers = [_Help(work) for _ in range(parts - 1)]
    for offer in offers:
        _jobs.put(offer)
    try:
        work()
    finally:
        for offer in offers:
            try:
                offer.unclaimed.pop()
            except IndexError:  # a helper has it: wait for it
                offer.done.acquire()
    for offer in offers:
        if offer.error is not None:
            raise offer.error


set_threads(min(available_cores(), 4))
