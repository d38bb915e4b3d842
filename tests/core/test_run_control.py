"""RunControl: the one place a run's stop, pause and rate requests live, asked from any thread
(before the trainer exists, too) and honoured between batches."""
import threading
import time

import numpy as np
import pytest

from netbuilder.core.datasets.shapes import shapes_dataset
from netbuilder.core.project import load_project
from netbuilder.core.resources import example_path
from netbuilder.core.run_control import NetworkLock, RunControl, StopRequested
from netbuilder.core.trainer import BatchEnd, Trainer


def trainer() -> Trainer:
    project = load_project(example_path("lenet5"))
    project.training.batch_size = 16
    project.training.optimizer = "sgd"
    return Trainer(project, shapes_dataset(96, 0))


def test_requests_made_before_the_trainer_exists_hold_for_its_run():
    control = RunControl()
    control.set_learning_rate(0.123)
    control.stop()
    t = trainer()
    t.control = control
    events = list(t.run(epochs=1))
    assert events[-1].status == "stopped" and not any(isinstance(e, BatchEnd) for e in events)
    assert not control.stopping and not control.paused  # cleared when the run ended


def test_a_new_rate_is_used_from_the_next_batch():
    t = trainer()
    seen = []
    for event in t.run(epochs=1):
        if isinstance(event, BatchEnd):
            seen.append(t.learning_rate)
            if event.batch == 2:
                t.control.set_learning_rate(0.5)
    first = t.project.training.learning_rate
    assert seen[:2] == [first, first] and set(seen[2:]) == {0.5}


def test_pause_holds_until_resume_and_stop_wakes_a_paused_run():
    control = RunControl()
    assert control.hold() == 0.0
    control.pause()
    assert control.paused
    threading.Timer(0.05, control.resume).start()
    assert control.hold() > 0.0 and not control.paused
    control.pause()
    threading.Timer(0.05, control.stop).start()
    with pytest.raises(StopRequested):
        control.hold()
    control.pause()  # after a stop a pause cannot hold the run
    assert not control.paused


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), "fast", True])
def test_a_rate_that_is_not_a_positive_number_is_refused(bad):
    with pytest.raises(ValueError, match="learning rate"):
        RunControl().set_learning_rate(bad)


def test_the_trainer_methods_are_the_control():
    t = trainer()
    t.pause()
    assert t.paused and t.control.paused
    t.resume()
    t.stop()
    assert t.control.stopping
    t.control.clear()
    assert np.isfinite(t.learning_rate)


def test_the_network_lock_lets_a_waiting_thread_in_before_the_loops_next_step():
    """A probe asking while a step runs gets the network between that step and the next, never
    after a second one, however fast the loop comes back for it."""
    lock, order = NetworkLock(), []
    lock.acquire()  # the loop's step 1
    asked = threading.Event()

    def probe():
        asked.set()
        with lock.exclusive():
            order.append("probe")

    thread = threading.Thread(target=probe)
    thread.start()
    asked.wait(5)
    while not lock._waiting:  # the probe is queued behind step 1
        time.sleep(0.001)
    order.append("step 1")
    lock.release()
    lock.acquire()  # step 2: waits for the probe
    order.append("step 2")
    lock.release()
    thread.join(5)
    assert order == ["step 1", "probe", "step 2"]
