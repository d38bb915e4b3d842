"""Probes, filter copies and dead-ReLU shares are coalesced: none is made while the GUI thread has
not handled the last one of its kind, so many requests meanwhile make one more, not many."""
from __future__ import annotations

import threading

import pytest

from netbuilder.core.run_events import BatchesDone, EpochsDone, Filters, Probe
from netbuilder.gui.training import worker
from netbuilder.gui.training.events import RunRequest
from netbuilder.gui.training.worker import TrainingSession
from tests.gui.test_training import RUN, tiny, train


def run_session(doc, on_event):
    """Train ``doc`` in a session on this thread; ``on_event(session, event, log)`` sees each report."""
    session = TrainingSession()
    log: list = []

    def report(event):
        log.append(event)
        on_event(session, event, log)

    session.run(RunRequest(doc.project.copy()), report)
    return log


@pytest.fixture
def every_batch(monkeypatch):
    """Each batch flushed on its own (a report per batch to act on); probes only when asked for."""
    monkeypatch.setattr(worker, "FLUSH_INTERVAL", 0.0)
    monkeypatch.setattr(worker, "PROBE_INTERVAL", 1e9)
    monkeypatch.setattr(worker, "FILTER_INTERVAL", 1e9)


def test_many_probe_requests_while_one_is_unhandled_make_one_more_probe(doc, every_batch):
    tiny(doc, epochs=3)  # 15 batches

    def gui(session, event, log):
        batches = sum(isinstance(e, BatchesDone) for e in log)
        if isinstance(event, BatchesDone) and 2 <= batches <= 9:
            session.request_probe(batches)  # a sample asked for at every batch: the run's first probe is unhandled
        if isinstance(event, BatchesDone) and batches == 10:
            session.seen(Probe)  # the GUI thread has drawn it now

    log = run_session(doc, gui)
    probes = [i for i, e in enumerate(log) if isinstance(e, Probe)]
    assert [log[i].sample_index for i in probes] == [0, 9, 9]  # the run's first, one for the requests, the last
    tenth = [i for i, e in enumerate(log) if isinstance(e, BatchesDone)][9]
    assert tenth < probes[1] < tenth + 3  # right after it was handled, at that batch


@pytest.mark.parametrize("handled", [False, True])
def test_filters_wait_for_the_last_copy_to_be_handled(doc, every_batch, monkeypatch, handled):
    monkeypatch.setattr(worker, "FILTER_INTERVAL", 0.0)  # due at every batch
    tiny(doc, epochs=2)  # 10 batches

    def gui(session, event, log):
        if handled and isinstance(event, Filters):
            session.seen(Filters)

    copies = sum(isinstance(e, Filters) for e in run_session(doc, gui))
    assert copies == (12 if handled else 2)  # one a batch, with the run's first and last; else those two


def test_dead_relu_shares_wait_for_the_last_epoch_to_be_handled(doc, every_batch):
    tiny(doc, epochs=4)
    log = run_session(doc, lambda session, event, log: None)  # the GUI never gets to them
    shares = [bool(e.dead_relu) for e in log if isinstance(e, EpochsDone)]
    assert shares == [True, False, False, True]  # the first, then only the run's last epoch
    log = run_session(doc, lambda session, event, log: isinstance(event, EpochsDone) and session.seen(EpochsDone))
    assert [bool(e.dead_relu) for e in log if isinstance(e, EpochsDone)] == [True] * 4


def test_choosing_samples_while_an_idle_probe_runs_makes_one_more_of_the_last(controller, doc, qtbot):
    tiny(doc, epochs=1)
    train(qtbot, controller)
    trainer = controller._session.trainer
    release, started, calls = threading.Event(), threading.Event(), []
    probe = trainer.probe

    def slow_probe(x):  # the sample is chosen; its forward pass takes a while
        calls.append(x)
        started.set()
        release.wait(RUN / 1000)
        return probe(x)

    trainer.probe = slow_probe
    probes = []
    controller.probeReady.connect(probes.append)
    controller.set_probe_sample(1)
    assert started.wait(RUN / 1000)
    for index in range(2, 20):  # someone holds the ▶ button while the first probe is computed
        controller.set_probe_sample(index)
    release.set()
    qtbot.waitUntil(lambda: len(probes) == 2 and not controller._probing, timeout=RUN)
    qtbot.wait(100)  # and no more arrive
    assert len(calls) == 2 and [p.sample_index for p in probes] == [1, 19]


def test_the_regular_probe_and_filters_go_with_a_send_of_batches(doc, monkeypatch):
    """Due at every batch, they are still made only when batches are sent: the window repaints the
    maps, filters, curves and progress in one pass, and the training thread probes no more often."""
    monkeypatch.setattr(worker, "FLUSH_INTERVAL", 1e9)  # batches sent only at the run's end
    monkeypatch.setattr(worker, "PROBE_INTERVAL", 0.0)
    monkeypatch.setattr(worker, "FILTER_INTERVAL", 0.0)
    tiny(doc, epochs=2)  # 10 batches

    def gui(session, event, log):  # the GUI handles each at once: nothing holds them back
        if isinstance(event, (Probe, Filters, EpochsDone)):
            session.seen(type(event))

    log = run_session(doc, gui)
    assert sum(isinstance(e, Probe) for e in log) == 2  # the run's first and last, none between
    assert sum(isinstance(e, Filters) for e in log) == 2
    monkeypatch.setattr(worker, "FLUSH_INTERVAL", 0.0)  # every batch sent: a probe after each
    log = run_session(doc, gui)
    kinds = [type(e) for e in log]
    probes = [i for i, k in enumerate(kinds) if k is Probe]
    assert len(probes) == 12 and all(kinds[i - 1] in (BatchesDone, EpochsDone) for i in probes[1:])


def test_no_regular_probe_while_no_view_wants_them(doc, monkeypatch):
    """The feature maps hidden (their tab, or another mode): no forward pass for nobody, but the
    run's first and last probes, so the view has the final state when it is shown."""
    monkeypatch.setattr(worker, "FLUSH_INTERVAL", 0.0)
    monkeypatch.setattr(worker, "PROBE_INTERVAL", 0.0)  # due at every batch
    tiny(doc, epochs=2)
    session = TrainingSession()
    session.probes_wanted = False
    log: list = []

    def report(event):
        log.append(event)
        session.seen(type(event))

    session.run(RunRequest(doc.project.copy()), report)
    assert sum(isinstance(e, Probe) for e in log) == 2
    assert [i for i, e in enumerate(log) if isinstance(e, Probe)][-1] > max(
        i for i, e in enumerate(log) if isinstance(e, BatchesDone))  # the last after the last batch
