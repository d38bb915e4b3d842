"""Stop, pause and learning-rate requests for one training run: the one place they live.

Whoever drives a run (the CLI's Ctrl+C, the window's buttons) asks through its ``RunControl``,
from any thread and before the trainer even exists (the data may still be loading); the trainer
honours the requests between batches: a stop ends the run after the batch in progress, a pause
holds it before the next one, a new rate is used from the next step.
"""
from __future__ import annotations

import contextlib
import threading
import time

from netbuilder.core.optimizers import _check


class StopRequested(Exception):
    """Raised where the run holds, once a stop was asked for: the run ends as "stopped"."""


class RunControl:
    """Thread-safe requests to a run; ``hold`` is the run's side of them."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._running = threading.Event()  # cleared while a pause is asked for
        self._running.set()
        self._parked = threading.Event()  # set while the run is actually held by a pause
        self._lock = threading.Lock()
        self._learning_rate: float | None = None  # asked for, not yet used
        self._step = False  # one batch asked for (then a pause), not yet let through
        self._traced = False  # the batch just let through is that one: the trainer records it

    # --- the asking side (any thread) ----------------------------------------------------------
    def stop(self) -> None:
        """End the run after the batch in progress (also when paused, or before it starts)."""
        self._stop.set()
        self._running.set()  # wake a paused run so it sees the stop

    def pause(self) -> None:
        """Hold the run before its next batch until ``resume`` or ``stop``."""
        if not self._stop.is_set():
            self._running.clear()

    def resume(self) -> None:
        with self._lock:
            self._step = False
        self._running.set()

    def step(self) -> None:
        """Let exactly one batch through (waking a paused run, or the first batch of a run not yet
        started), then pause before the next one; the trainer records that batch (``take_step``)."""
        if self._stop.is_set():
            return
        with self._lock:
            self._step = True
        self._running.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def wait_until_paused(self, timeout: float | None = None) -> bool:
        """Block until the run is actually held by a pause; False on timeout."""
        return self._parked.wait(timeout)

    def set_learning_rate(self, lr: float) -> None:
        """Use ``lr`` from the run's next step (ValueError for a rate that is not a positive number)."""
        lr = _check(lr, "learning rate", minimum=0.0, strict=True)
        with self._lock:
            self._learning_rate = lr

    # --- the run's side ------------------------------------------------------------------------
    def take_learning_rate(self) -> float | None:
        """The rate asked for since the last call, or None."""
        with self._lock:
            lr, self._learning_rate = self._learning_rate, None
        return lr

    def hold(self) -> float:
        """Honour pause and stop before a batch: raises StopRequested, or returns the seconds held.

        A ``step`` asked for lets this batch through and pauses the run before the next one."""
        if self._stop.is_set():
            raise StopRequested
        held = 0.0
        if not self._running.is_set():
            t0 = time.perf_counter()
            self._parked.set()
            try:
                self._running.wait()
            finally:
                self._parked.clear()
            if self._stop.is_set():
                raise StopRequested
            held = time.perf_counter() - t0
        with self._lock:
            step, self._step = self._step, False
            self._traced = step
            if step:
                self._running.clear()  # the batch after this one waits
        return held

    def take_step(self) -> bool:
        """Whether the batch ``hold`` just let through is a ``step``'s (True once)."""
        with self._lock:
            traced, self._traced = self._traced, False
        return traced

    def clear(self) -> None:
        """Forget the requests: the run they were for has ended."""
        self._stop.clear()
        self._running.set()
        self._parked.clear()
        with self._lock:
            self._learning_rate = None
            self._step = self._traced = False


class NetworkLock:
    """The lock on a trainer's network: the training loop holds it for each step; another thread
    (a probe, a copy of the weights, a checkpoint) takes it between two steps, ahead of the loop's
    next one, so a probe waits for at most one batch however fast the batches come."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._gate = threading.Condition()  # lets waiting threads in before the loop's next step
        self._waiting = 0

    @contextlib.contextmanager
    def exclusive(self):
        """The lock for another thread than the training loop's, granted before the loop's next step."""
        with self._gate:
            self._waiting += 1
        try:
            with self._lock:
                yield
        finally:
            with self._gate:
                self._waiting -= 1
                self._gate.notify_all()

    def acquire(self) -> None:
        """The training loop's side: let the waiting threads go first, then take the lock."""
        with self._gate:
            while self._waiting:
                self._gate.wait()
        self._lock.acquire()

    def release(self) -> None:
        self._lock.release()
