"""What the engine benchmark reads from /proc (Linux): the CPU time other processes took while a
round ran, so a round on a busy machine can be told apart and repeated, and this process' resident
memory with its high-water mark reset before training, so a peak is the training's own."""
from __future__ import annotations

import os
import resource
import time

_TICK = os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds every process on the machine has used since boot: user, nice, system, irq,
    softirq and steal (time the hypervisor gave to someone else counts as someone else's load)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()  # "cpu  user nice system idle iowait irq softirq steal ..."
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / _TICK


def own_seconds() -> float:
    """CPU seconds this process (all its threads) has used."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class LoadCheck:
    """Cores' worth of CPU that other processes used from construction to ``others()``: the
    machine's busy time less this process' own, over the wall time between."""

    def __init__(self) -> None:
        self.wall, self.busy, self.own = time.perf_counter(), machine_busy_seconds(), own_seconds()

    def others(self) -> float:
        wall = time.perf_counter() - self.wall
        busy, own = machine_busy_seconds() - self.busy, own_seconds() - self.own
        # /proc/stat counts in clock ticks and rusage finer: a quiet machine reads a few hundredths either side
        return max(0.0, busy - own) / max(wall, 1e-9)


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024  # "VmHWM:   123456 kB"
    raise RuntimeError(f"/proc/self/status has no {key}")


def rss_mb() -> float:
    """This process' resident memory now."""
    return _status_mb("VmRSS")


def peak_mb() -> float:
    """This process' resident high-water mark (since it started, or since ``reset_peak``)."""
    return _status_mb("VmHWM")


def reset_peak() -> bool:
    """Set the high-water mark to the current RSS (``echo 5 > /proc/self/clear_refs``); False where
    the kernel does not allow it (the peak then may predate the reset: an import's)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
