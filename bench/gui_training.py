"""Training speed in the window against the headless trainer, and how responsive the window stays.

Trains LeNet-5 on the built-in shapes dataset for a few epochs twice per round, in one process:
headless (``Trainer.run`` consumed in a loop) and in the main window (offscreen, 1280x800, the
training view showing: curves, feature maps, filters and the confusion matrix all live). A 10 ms
timer on the GUI thread measures the event loop's stall (how late each tick fires) while the
window trains, and the GUI thread's own CPU time is read at the run's start and end (what the
window costs the training, whatever the machine's load). Prints images/s of both (whole run,
validation and the views' work included), their ratio, the GUI thread's CPU seconds per second,
and the stall's p50 / p99 / max; the last line reads
``gui ratio=<x> p99_ms=<y> max_ms=<z> gui_cpu=<w>`` (the median of the rounds' ratios, the stall
over all rounds, the GUI thread's CPU share of the window's runs). Targets: ratio >= 0.95,
p99 <= 20 ms, max <= 60 ms.

Each round runs the two back to back, so a busy machine slows both, and the CPU time other
processes used during a round is read from /proc (``loadcheck``): a round where they used more
than ``--max-load`` cores is repeated (up to ``--tries`` times, the quietest kept), and the
repeats are counted. ``--profile`` prints where the GUI thread spent its time (cProfile sees only
the thread it runs in: the training thread is not in it).

    python bench/gui_training.py [--epochs 2] [--rounds 4] [--train-size 12000] [--profile]
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
from PySide6.QtCore import QEventLoop, QSettings, Qt, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from netbuilder.core.cli import prepare_process  # noqa: E402
from netbuilder.core.datasets import load_project_dataset  # noqa: E402
from netbuilder.core.trainer import RunEnded, Trainer  # noqa: E402
from netbuilder.gui.document import ProjectDocument  # noqa: E402
from netbuilder.gui.main_window import TRAIN, MainWindow  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadcheck import LoadCheck  # noqa: E402

TICK_MS = 10


def headless(doc: ProjectDocument, dataset) -> float:
    """Images per second of a headless run of the document's project (wall time of the run)."""
    project = doc.project.copy()
    trainer = Trainer(project, dataset)
    start = time.perf_counter()
    for event in trainer.run():
        if isinstance(event, RunEnded) and event.status != "finished":
            raise SystemExit(f"headless run ended: {event.message}")
    return len(trainer.train_idx) * project.training.epochs / (time.perf_counter() - start)


class StallMeter:
    """A 10 ms timer on the GUI thread; records how late each tick fires while ``active``."""

    def __init__(self) -> None:
        self.lateness: list[float] = []
        self.active = False
        self._last = None
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    def start(self) -> None:
        """Measure from the next tick on (the loop did not run while the headless round trained)."""
        self._last = None
        self.active = True

    def _tick(self) -> None:
        now = time.perf_counter()
        if self.active and self._last is not None:
            self.lateness.append(max(0.0, (now - self._last) * 1000 - TICK_MS))
        self._last = now


def in_window(window: MainWindow, meter: StallMeter, profile: cProfile.Profile | None = None) -> tuple[float, float]:
    """(images per second, GUI thread CPU seconds per second) of a run started in the window,
    from runStarted to runEnded."""
    controller = window.controller
    times: dict[str, float] = {}
    loop = QEventLoop()
    sizes = {}

    def started(payload):
        times["start"], times["cpu_start"] = time.perf_counter(), time.thread_time()
        sizes["train"] = payload.event.train_size * payload.event.epochs
        meter.start()

    def ended(event):
        times["end"], times["cpu_end"] = time.perf_counter(), time.thread_time()
        meter.active = False
        if event.status != "finished":
            print(f"window run ended: {event.message}", file=sys.stderr)
        loop.quit()

    controller.runStarted.connect(started)
    controller.runEnded.connect(ended)
    try:
        if not window.start_training():
            raise SystemExit("the window did not start training")
        if profile is not None:
            profile.enable()
        loop.exec()
    finally:
        if profile is not None:
            profile.disable()
        controller.runStarted.disconnect(started)
        controller.runEnded.disconnect(ended)
    wall = times["end"] - times["start"]
    # After a run the window evaluates the trained network in the background: let it finish, or
    # it would share the cores with the next round's headless run.
    while window.evaluation._jobs.busy:
        QApplication.processEvents()
        time.sleep(0.01)
    QApplication.processEvents()
    return sizes["train"] / wall, (times["cpu_end"] - times["cpu_start"]) / wall


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--train-size", type=int, default=12000, help="generated shapes (the built-in default)")
    parser.add_argument("--max-load", type=float, default=0.2,
                        help="cores other processes may use during a round before it is repeated")
    parser.add_argument("--tries", type=int, default=3, help="runs of a busy round at most (the quietest kept)")
    parser.add_argument("--profile", action="store_true", help="print where the GUI thread spent its time")
    args = parser.parse_args(argv)

    prepare_process()  # as netbuilder-gui sets the process up (BLAS on one thread, freed memory kept)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    doc = ProjectDocument()
    doc.new_project("lenet5")
    doc.set_value("dataset", {"kind": "shapes", "train_size": args.train_size, "test_size": 0})
    doc.set_value("training.epochs", args.epochs)
    dataset = load_project_dataset(doc.project)  # generated once; cached for the window's runs too
    profile = cProfile.Profile() if args.profile else None

    with tempfile.TemporaryDirectory() as folder:
        window = MainWindow(doc, QSettings(str(Path(folder) / "settings.ini"), QSettings.Format.IniFormat))
        window.files.ask_save_changes = lambda name: "discard"
        window.resize(1280, 800)
        window.show()
        window.set_mode(TRAIN)
        app.processEvents()
        meter = StallMeter()
        results = []  # (headless, window, GUI CPU share, others' load) of each round kept
        repeats = 0
        for r in range(args.rounds):
            tries = []
            for attempt in range(max(args.tries, 1)):
                ticks = len(meter.lateness)
                load = LoadCheck()
                alone = headless(doc, dataset)
                shown, gui_cpu = in_window(window, meter, profile)
                tries.append((alone, shown, gui_cpu, load.others(), meter.lateness[ticks:]))
                del meter.lateness[ticks:]  # only the kept attempt's ticks count
                if tries[-1][3] <= args.max_load:
                    break
                repeats += attempt + 1 < args.tries
            alone, shown, gui_cpu, others, ticks = min(tries, key=lambda t: t[3])
            meter.lateness += ticks
            results.append((alone, shown, gui_cpu, others))
            print(f"round {r + 1}: headless {alone:,.0f} images/s · window {shown:,.0f} images/s · "
                  f"ratio {shown / alone:.3f} · GUI thread {gui_cpu:.2f} CPU s/s · others' load {others:.2f} cores"
                  + (f" (quietest of {len(tries)})" if len(tries) > 1 else ""), flush=True)
        window.close()

    lateness = np.array(meter.lateness)
    p50, p99 = np.percentile(lateness, [50, 99]) if len(lateness) else (float("nan"),) * 2
    worst = float(lateness.max()) if len(lateness) else float("nan")
    alone = statistics.median(r[0] for r in results)
    shown = statistics.median(r[1] for r in results)
    ratios = [s / a for a, s, *_ in results]
    ratio = statistics.median(ratios)
    gui_cpu = statistics.median(r[2] for r in results)
    print(f"headless {alone:,.0f} images/s · window {shown:,.0f} images/s (medians over {args.rounds} rounds of "
          f"{args.epochs} epochs, {args.train_size} images); ratio per round {min(ratios):.3f} to {max(ratios):.3f}; "
          f"{repeats} round(s) repeated for load above {args.max_load} cores, "
          f"others' load {min(r[3] for r in results):.2f} to {max(r[3] for r in results):.2f} cores")
    print(f"GUI thread CPU while training: {gui_cpu:.3f} s per second (median; rounds "
          f"{min(r[2] for r in results):.3f} to {max(r[2] for r in results):.3f})")
    print(f"event loop stall over {len(lateness)} ticks of {TICK_MS} ms: p50 {p50:.1f} ms · p99 {p99:.1f} ms · "
          f"max {worst:.1f} ms")
    if profile is not None:
        print("GUI thread, by own time:")
        pstats.Stats(profile, stream=sys.stdout).sort_stats("tottime").print_stats(25)
        print("GUI thread, by cumulative time:")
        pstats.Stats(profile, stream=sys.stdout).sort_stats("cumulative").print_stats(30)
    print(f"gui ratio={ratio:.3f} p99_ms={p99:.1f} max_ms={worst:.1f} gui_cpu={gui_cpu:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
