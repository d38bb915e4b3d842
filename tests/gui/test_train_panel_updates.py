"""What the train panel's Run box costs while a run goes: a text is set only when it changes, the
progress at most every PROGRESS_MS, no busy animation while the data loads, and the speed line
lays nothing out again unless it takes another number of lines."""
from __future__ import annotations

import pytest
from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QVBoxLayout, QWidget

from netbuilder.core.run_events import BatchesDone, RunBegan
from netbuilder.core.trainer import BatchEnd, RunEnded, RunStarted
from netbuilder.gui import train_panel
from netbuilder.gui.live_label import LiveLabel
from netbuilder.gui.train_panel import TrainPanel
from netbuilder.gui.training import TrainingController
from netbuilder.gui.training.controller import IDLE, LOADING, RUNNING


@pytest.fixture
def panel(doc, qtbot):
    controller = TrainingController(doc)
    p = TrainPanel(doc, controller)
    qtbot.addWidget(p)
    p.resize(320, 700)
    p.show()
    qtbot.waitExposed(p)
    yield p
    controller.shutdown()


def count_calls(monkeypatch, obj, name: str) -> list:
    """The arguments of every call of ``obj.name`` from Python from now on."""
    calls, method = [], getattr(obj, name)
    monkeypatch.setattr(obj, name, lambda *args: (calls.append(args), method(*args))[1])
    return calls


def batch(epoch: int, number: int, speed: float = 1000.0) -> BatchesDone:
    return BatchesDone(BatchEnd(epoch, number, 100, 1.0, 0.5, speed, 64 * number), [(number / 100, 1.0, 0.5)])


def play_run(panel) -> None:
    """The controller's signals of a run being started, as the panel sees them (no training)."""
    controller = panel.controller
    controller._set_state(LOADING)
    controller._set_state(RUNNING)
    controller.runStarted.emit(RunBegan(RunStarted(2, 100, 6400, 600), label="run 1", run=1))


class LayoutRequests(QObject):
    def __init__(self, widget: QWidget):
        super().__init__(widget)
        self.count = 0
        widget.installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:
        self.count += event.type() == QEvent.Type.LayoutRequest
        return False


def test_while_the_data_loads_the_bar_is_still_not_an_animated_busy_bar(panel):
    panel.controller._set_state(LOADING)
    bar = panel.progress
    assert bar.maximum() > bar.minimum()  # (0, 0) is Fusion's busy bar: 60 repaints a second
    assert bar.format() == "loading the data…" and panel.status_label.text() == "Loading the data…"
    panel.controller.runEnded.emit(RunEnded("failed", "no data", 0))
    panel.controller._set_state(IDLE)
    assert bar.format() == "not started"


def test_the_progress_is_shown_at_most_every_progress_ms_and_the_last_batch_always(panel, qtbot, monkeypatch):
    play_run(panel)
    formats = count_calls(monkeypatch, panel.progress, "setFormat")
    for n in range(1, 21):  # a burst of sends, well within PROGRESS_MS
        panel.controller.batchEnded.emit(batch(1, n))
    assert [f for (f,) in formats] == ["epoch 1/2 · batch 1/100"]  # the first at once, then it waits
    qtbot.waitUntil(lambda: panel.progress.format() == "epoch 1/2 · batch 20/100",
                    timeout=20 * train_panel.PROGRESS_MS)
    assert len(formats) == 2 and panel.progress.value() == 20  # the latest, once the time is up


def test_the_run_box_sets_a_label_only_when_its_text_changes(panel, qtbot, monkeypatch):
    play_run(panel)
    monkeypatch.setattr(panel.progress_updates, "interval_ms", 0)  # every batch shown
    status = count_calls(monkeypatch, panel.status_label, "setText")
    speed = count_calls(monkeypatch, panel.speed_label, "setText")
    for n in range(1, 11):
        panel.controller.batchEnded.emit(batch(1, n, speed=1000.0 if n < 6 else 2000.0))
    assert status == [("Training: epoch 1 of 2",)]  # the same words at each batch: set once
    # ten batches, three texts: the time left is in whole seconds
    assert [t for (t,) in speed] == ["1,000 images/s · 13 s left", "1,000 images/s · 12 s left",
                                     "2,000 images/s · 6 s left"]
    panel.controller.batchEnded.emit(batch(2, 1))
    assert status[-1] == ("Training: epoch 2 of 2",) and len(status) == 2


def test_the_speed_line_lays_out_again_only_when_it_takes_other_lines(qtbot):
    parent = QWidget()
    qtbot.addWidget(parent)
    label = LiveLabel()
    layout = QVBoxLayout(parent)
    layout.addWidget(label)
    layout.addStretch(1)  # the label as tall as its lines
    parent.resize(200, 200)
    parent.show()
    qtbot.waitExposed(parent)
    label.setText("1,000 images/s · 12 s left")
    qtbot.wait(10)
    requests = LayoutRequests(parent)
    one_line = label.height()
    for seconds in range(11, 1, -1):
        label.setText(f"1,{seconds:03d} images/s · {seconds} s left")
    qtbot.wait(10)
    assert requests.count == 0 and label.text() == "1,002 images/s · 2 s left"
    label.setText("1,000 images/s · 2 s left · numpy engine on the CPU, 2 threads")  # wraps at 200 px
    qtbot.waitUntil(lambda: label.height() > one_line)
    assert requests.count >= 1 and label.height() == label.heightForWidth(label.width())
