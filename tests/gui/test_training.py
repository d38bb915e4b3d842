"""Training in the window: the controller and its worker, driven through the main window.

Runs are short (LeNet-5 on 300 generated shapes, 5 batches an epoch) and every test waits on the
controller's signals, never on time.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest
from PySide6.QtCore import QCoreApplication

from netbuilder.core.datasets.shapes import shapes_dataset
from netbuilder.core.network import Network
from netbuilder.core.project import load_project
from netbuilder.core.trainer import Trainer
from netbuilder.core.weights import load_weights
from netbuilder.gui.document import EXAMPLES_DIR, ProjectDocument
from netbuilder.gui.main_window import BUILD, TRAIN
from netbuilder.gui.training import TrainingController
from netbuilder.gui.training.events import (
    ValidationRecorder,
    class_probabilities,
    confusion_matrix,
    dead_relu_fractions,
    run_label,
    same_training_setup,
)

RUN = 30_000  # ms: generous, the machine may be busy; every wait ends on a signal long before


def tiny(doc: ProjectDocument, epochs: int = 2, batch_size: int = 64, **training) -> ProjectDocument:
    """``doc`` set to train on 300 shapes (270 train, 30 validation): 5 batches an epoch at 64."""
    doc.set_value("dataset", {"kind": "shapes", "train_size": 300, "test_size": 0})
    doc.set_value("training.epochs", epochs)
    doc.set_value("training.batch_size", batch_size)
    for key, value in training.items():
        doc.set_value(f"training.{key}", value)
    return doc


class Recorder:
    """Every controller signal in arrival order, as (name, payload)."""

    NAMES = ("stateChanged", "datasetReady", "runStarted", "batchEnded", "epochEnded", "probeReady",
             "filtersReady", "runEnded", "error")

    def __init__(self, controller: TrainingController):
        self.log: list[tuple[str, object]] = []
        for name in self.NAMES:
            getattr(controller, name).connect(lambda payload, n=name: self.log.append((n, payload)))

    def of(self, name: str) -> list:
        return [p for n, p in self.log if n == name]

    def batch_points(self) -> list[tuple[float, float, float]]:
        return [pt for p in self.of("batchEnded") for pt in p.points]

    def epochs(self) -> list:
        return [e for p in self.of("epochEnded") for e in p.epochs]


def train(qtbot, controller, mode="new", checkpoint=None):
    """Start a run and wait for its end; returns the RunEnded event."""
    with qtbot.waitSignal(controller.runEnded, timeout=RUN) as ended:
        assert controller.start(mode, checkpoint)
    return ended.args[0]


# --- a run in the window ---------------------------------------------------------------------
def test_a_run_reports_in_order_and_fills_the_curves(window, doc, qtbot):
    tiny(doc, epochs=2)
    log = Recorder(window.controller)
    with qtbot.waitSignal(window.controller.runEnded, timeout=RUN) as ended:
        assert window.start_training()
    assert ended.args[0].status == "finished"
    assert window.mode == TRAIN

    names = [n for n, _ in log.log if n not in ("probeReady", "filtersReady")]
    assert names[:3] == ["stateChanged", "datasetReady", "stateChanged"] and names[3] == "runStarted"
    assert names[-2:] == ["stateChanged", "runEnded"]
    assert [s for s in log.of("stateChanged")] == ["loading", "running", "idle"]
    data = log.of("datasetReady")[0]
    assert (data.train_size, data.val_size) == (270, 30) and data.val_x.shape == (30, 1, 28, 28)
    assert data.class_names[0] == "circle" and len(data.class_names) == 10
    started = log.of("runStarted")[0]
    assert started.label == "run 1 · adam lr 0.001 · batch 64" and started.event.batches_per_epoch == 5

    # Every batch and every epoch arrives once and in order (signals carry lists of them), and
    # no epoch arrives before its last batch.
    points = log.batch_points()
    assert np.allclose([x for x, _, _ in points], [e + b / 5 for e in range(2) for b in range(1, 6)])
    assert [e.epoch for e in log.epochs()] == [1, 2]
    received = 0
    for name, payload in log.log:
        if name == "batchEnded":
            received += len(payload.points)
        elif name == "epochEnded":
            assert received >= 5 * payload.event.epoch
    epoch = log.of("epochEnded")[-1]
    assert epoch.confusion.shape == (10, 10) and epoch.confusion.sum() == 30
    assert set(epoch.grad_norms) == set(Network(doc.project).parameters())
    assert all(v > 0 for v in epoch.grad_norms.values())
    assert set(epoch.dead_relu) == {"conv1", "conv2", "dense1", "dense2"}
    probe = log.of("probeReady")[-1]
    assert [(name, a.shape) for name, _, a in probe.layers][:2] == [("conv1", (6, 28, 28)), ("pool1", (6, 14, 14))]
    assert probe.probabilities.shape == (10,) and np.isclose(probe.probabilities.sum(), 1)
    assert log.of("filtersReady")[-1].weight.shape == (6, 1, 5, 5)

    window.curves.redraw()
    run = window.curves.current
    assert (run.batch_count, run.epoch_count) == (10, 2)
    assert len(run.raw_loss.getData()[0]) == 10 and len(run.val_loss.getData()[0]) == 2
    panel = window.train_panel
    assert panel.progress.value() == panel.progress.maximum() == 10
    assert "Finished 2 epochs" in panel.status_label.text()
    assert not doc.locked and window.export_action.isEnabled()


def test_many_tiny_epochs_arrive_in_lists_and_none_is_lost(controller, doc, qtbot):
    doc.new_project("xor")  # four samples: one batch an epoch
    doc.set_value("training.epochs", 300)
    log = Recorder(controller)
    assert train(qtbot, controller).status == "finished"
    assert [e.epoch for e in log.epochs()] == list(range(1, 301))
    assert np.allclose([x for x, _, _ in log.batch_points()], np.arange(1, 301))
    assert len(log.of("epochEnded")) < 300 and len(log.of("batchEnded")) < 300
    assert controller.checkpoint_epoch == 300  # the last epoch is always kept
    assert log.of("datasetReady")[0].val_is_train  # XOR keeps no validation split


def test_the_gui_thread_never_runs_a_batch(controller, doc, qtbot, monkeypatch):
    threads = []
    step = Trainer._step

    def recording_step(self, *args):
        threads.append(threading.current_thread() is threading.main_thread())
        return step(self, *args)

    monkeypatch.setattr(Trainer, "_step", recording_step)
    tiny(doc, epochs=1)
    assert train(qtbot, controller).status == "finished"
    assert threads and not any(threads)


def test_the_pipeline_is_locked_while_training_and_the_rate_changes_live(controller, doc, qtbot):
    tiny(doc, epochs=200, batch_size=16)
    with qtbot.waitSignal(controller.batchEnded, timeout=RUN):
        controller.start()
    assert doc.locked and doc.lock_reason == "Training"
    blocks = len(doc.project.blocks)
    doc.add_block("dropout")
    assert len(doc.project.blocks) == blocks  # refused while training

    doc.set_value("training.learning_rate", 0.0005)
    # from the next batch on (the request waits in the run's control until then)
    qtbot.waitUntil(lambda: controller._session.trainer.learning_rate == 0.0005, timeout=RUN)
    with qtbot.waitSignal(controller.runEnded, timeout=RUN):
        controller.stop()
    assert not doc.locked
    doc.add_block("dropout")
    assert len(doc.project.blocks) == blocks + 1


def test_pause_holds_the_batch_count_still_and_resume_goes_on(controller, doc, qtbot):
    tiny(doc, epochs=200, batch_size=16)
    log = Recorder(controller)
    with qtbot.waitSignal(controller.batchEnded, timeout=RUN):
        controller.start()
    controller.pause()
    assert controller.is_paused and controller.state == "paused"
    assert controller._session.trainer.wait_until_paused(timeout=RUN / 1000)
    QCoreApplication.processEvents()  # deliver what was sent before the loop parked
    held = len(log.batch_points())
    # A probe asked for while paused makes a round trip through the worker pool...
    with qtbot.waitSignal(controller.probeReady, timeout=RUN) as probe:
        controller.set_probe_sample(3)
    assert probe.args[0].sample_index == 3
    # ...and meanwhile not one batch was trained.
    assert len(log.batch_points()) == held and controller.is_paused

    with qtbot.waitSignal(controller.batchEnded, timeout=RUN):
        controller.resume()
    assert controller.state == "running" and len(log.batch_points()) > held
    with qtbot.waitSignal(controller.runEnded, timeout=RUN) as ended:
        controller.stop()
    assert ended.args[0].status == "stopped" and controller.state == "idle"


def test_stop_while_paused_ends_the_run(controller, doc, qtbot):
    tiny(doc, epochs=200, batch_size=16)
    with qtbot.waitSignal(controller.batchEnded, timeout=RUN):
        controller.start()
    controller.pause()
    with qtbot.waitSignal(controller.runEnded, timeout=RUN) as ended:
        controller.stop()
    assert ended.args[0].status == "stopped"
    assert controller.has_trained and controller.trained_network() is not None


@pytest.mark.parametrize("paused", [False, True])
def test_closing_the_window_while_training_stops_and_joins_the_worker(window, doc, qtbot, qtlog, paused):
    tiny(doc, epochs=200, batch_size=16)
    with qtbot.waitSignal(window.controller.batchEnded, timeout=RUN):
        window.start_training()
    if paused:
        window.controller.pause()
    assert window.controller.is_running
    assert window.close()
    assert not window.controller._jobs.busy  # the worker thread was joined
    assert window.controller.state == "idle" and not doc.locked
    assert window.mode == BUILD  # the layout saved is the builder's
    assert not [r for r in qtlog.records if "QThread" in r.message or "Destroyed" in r.message]


def test_closing_while_training_asks_first_and_no_keeps_the_run(window, doc, qtbot):
    tiny(doc, epochs=200, batch_size=16)
    with qtbot.waitSignal(window.controller.batchEnded, timeout=RUN):
        window.start_training()
    asked = []
    window.ask_stop_training = lambda: asked.append(True) or False
    assert not window.close()
    assert asked == [True] and window.controller.is_running and doc.locked
    window.ask_stop_training = lambda: True
    assert window.close() and not window.controller.is_running


def test_a_diverging_run_says_so_keeps_good_weights_and_the_app_keeps_working(window, doc, qtbot):
    tiny(doc, epochs=3, loss="squared_error", optimizer="sgd", learning_rate=1e12)
    doc.set_block_field(len(doc.project.blocks) - 1, "activation", "identity")
    errors = []
    window.controller.error.connect(errors.append)
    with qtbot.waitSignal(window.controller.runEnded, timeout=RUN) as ended:
        window.start_training()
    assert ended.args[0].status == "diverged"
    assert len(errors) == 1 and "diverged" in errors[0] and "learning rate" in errors[0]
    assert errors[0] in window.train_panel.status_label.text()
    assert "c62828" in window.train_panel.status_label.styleSheet()  # shown as an error
    network = window.controller.trained_network()
    assert network is not None and all(np.isfinite(p).all() for p in network.parameters().values())

    doc.set_value("training.learning_rate", 0.001)
    assert train(qtbot, window.controller).status == "finished"
    assert "Finished" in window.train_panel.status_label.text()


def test_bad_data_is_reported_without_a_run(controller, doc, qtbot):
    doc.set_value("dataset", {"kind": "npz", "path": "/nonexistent/data.npz"})
    errors = []
    controller.error.connect(errors.append)
    assert train(qtbot, controller).status == "failed"
    assert errors and errors[0].startswith("The dataset cannot be used") and "data.npz" in errors[0]
    assert controller.state == "idle" and not doc.locked and not controller.has_trained


def test_a_shape_mismatch_names_both_shapes(controller, doc, qtbot):
    doc.set_value("dataset", {"kind": "shapes", "train_size": 300, "test_size": 0})
    doc.set_value("input_shape", (3, 28, 28))
    errors = []
    controller.error.connect(errors.append)
    assert train(qtbot, controller).status == "failed"
    assert "1 x 28 x 28" in errors[0] and "3 x 28 x 28" in errors[0]


def test_a_network_with_errors_does_not_start(controller, doc):
    doc.set_block_field(2, "kernel_size", 99)
    errors = []
    controller.error.connect(errors.append)
    assert not controller.start()
    assert controller.state == "idle" and "cannot be trained" in errors[0]


def test_export_writes_weights_that_load_back_with_the_same_predictions(window, doc, qtbot, tmp_path):
    tiny(doc, epochs=1)
    assert not window.export_action.isEnabled()
    assert train(qtbot, window.controller).status == "finished"
    assert window.export_action.isEnabled()
    path = tmp_path / "lenet.npz"
    assert window.exports.export_weights(str(path))
    assert str(path) in window.statusBar().currentMessage()

    project, state = load_weights(path)
    loaded = Network(project)
    loaded.load_state_dict(state)
    x = np.random.default_rng(1).random((8, 1, 28, 28), dtype=np.float32)
    trained = window.controller.trained_network()
    assert np.array_equal(loaded.predict(x), trained.predict(x))
    # The statistics travel with the weights, not as an edit of the project behind the user's back.
    assert project.dataset["normalization"] == trained.project.dataset["normalization"]
    assert "normalization" not in doc.project.dataset


def test_another_project_forgets_the_trained_weights(window, doc, qtbot):
    tiny(doc, epochs=1)
    train(qtbot, window.controller)
    assert window.export_action.isEnabled()
    doc.new_project("mlp")
    assert not window.controller.has_trained and window.controller.trained_network() is None
    assert not window.export_action.isEnabled() and not window.train_panel.continue_action.isEnabled()
    assert len(window.curves.runs) == 1  # the session's curves stay
    assert window.train_panel.status_label.text().startswith("Ready: press Train (F5) to train MLP")


def test_export_before_training_is_refused_with_a_reason(window, tmp_path):
    assert not window.exports.export_weights(str(tmp_path / "w.npz"))
    assert "no trained weights" in window.errors[0] and not (tmp_path / "w.npz").exists()


def test_training_never_edits_the_project(controller, doc, qtbot):
    """No undo step, no modified flag: opening an example and training leaves it as shipped."""
    tiny(doc, epochs=1)
    doc.undo_stack.setClean()
    before, steps = doc.project.to_dict(), doc.undo_stack.count()
    train(qtbot, controller)
    assert controller._session.trainer.project.dataset["normalization"]  # the run has its statistics
    assert doc.project.to_dict() == before and doc.undo_stack.count() == steps and not doc.modified


def test_continue_training_goes_on_from_the_last_epoch(window, doc, qtbot):
    tiny(doc, epochs=2)
    log = Recorder(window.controller)
    train(qtbot, window.controller)
    assert window.train_panel.continue_action.isEnabled()
    assert train(qtbot, window.controller, "continue").status == "finished"
    second = log.of("runStarted")[1]
    assert second.continued and second.run == 1 and second.event.start_epoch == 2
    assert [e.epoch for e in log.epochs()] == [1, 2, 3, 4]
    assert window.curves.current.batch_count == 20 and len(window.curves.runs) == 1

    doc.set_value("training.batch_size", 32)  # another trainer setup: a new run is needed
    assert "batch size" in window.controller.continue_problem()


def test_a_checkpoint_continues_exactly_like_an_unbroken_run(doc, qtbot, tmp_path):
    tiny(doc, epochs=2)
    first = TrainingController(doc)
    try:
        train(qtbot, first)
        path = tmp_path / "run.npz"
        assert first.save_checkpoint(path) == 2
    finally:
        first.shutdown()

    resumed = TrainingController(doc)
    log = Recorder(resumed)
    try:
        assert train(qtbot, resumed, "checkpoint", path).status == "finished"
        started = log.of("runStarted")[0]
        assert started.event.start_epoch == 2 and len(started.history) == 2
        assert "from run.npz" in started.label
        resumed_weights = resumed.trained_network().state_dict()
    finally:
        resumed.shutdown()

    doc.set_value("training.epochs", 4)
    unbroken = TrainingController(doc)
    try:
        train(qtbot, unbroken)
        unbroken_weights = unbroken.trained_network().state_dict()
    finally:
        unbroken.shutdown()
    assert all(np.array_equal(resumed_weights[k], unbroken_weights[k]) for k in unbroken_weights)


def test_a_bad_checkpoint_file_is_named(controller, doc, qtbot, tmp_path):
    tiny(doc)
    bad = tmp_path / "junk.npz"
    bad.write_bytes(b"not a zip")
    errors = []
    controller.error.connect(errors.append)
    assert train(qtbot, controller, "checkpoint", bad).status == "failed"
    assert "junk.npz" in errors[0]


def test_a_probe_is_sent_on_demand_when_idle(controller, doc, qtbot):
    tiny(doc, epochs=1)
    train(qtbot, controller)
    with qtbot.waitSignal(controller.probeReady, timeout=RUN) as probe:
        controller.set_probe_sample(7)
    payload = probe.args[0]
    assert payload.sample_index == 7 and payload.input.shape == (1, 28, 28)
    assert payload.predicted == int(np.argmax(payload.probabilities))


def test_runs_are_numbered_and_labelled_with_their_settings(controller, doc, qtbot):
    tiny(doc, epochs=1)
    log = Recorder(controller)
    train(qtbot, controller)
    doc.set_value("training.optimizer", "momentum")
    doc.set_value("training.learning_rate", 0.01)
    train(qtbot, controller)
    labels = [p.label for p in log.of("runStarted")]
    assert labels == ["run 1 · adam lr 0.001 · batch 64", "run 2 · momentum lr 0.01 m 0.9 · batch 64"]


# --- the worker's computations ---------------------------------------------------------------
def test_confusion_matrix_counts_rows_true_columns_predicted():
    m = confusion_matrix(np.array([0, 0, 1, 2, 2]), np.array([0, 1, 1, 2, 0]), 3)
    assert m.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]


def test_class_probabilities_for_each_kind_of_output():
    assert np.allclose(class_probabilities(np.array([0.2, 0.8]), "softmax"), [0.2, 0.8])
    assert np.allclose(class_probabilities(np.array([0.9]), "sigmoid"), [0.1, 0.9])
    scores = class_probabilities(np.array([1.0, 3.0]), "identity")
    assert np.isclose(scores.sum(), 1) and scores[1] > scores[0]
    assert np.isnan(class_probabilities(np.array([np.inf, 1.0]), "identity")).all()


def test_dead_relu_share_counts_units_silent_for_every_sample():
    project = load_project(EXAMPLES_DIR / "lenet5.json")
    net = Network(project, rng=np.random.default_rng(0))
    x = np.random.default_rng(0).random((16, 1, 28, 28), dtype=np.float32)
    blocks = net.forward_blocks(x)
    shares = dead_relu_fractions(blocks)
    dense1 = dict((info.name, out) for info, out in blocks)["dense1"]
    assert shares["dense1"] == pytest.approx(float((dense1 <= 0).all(axis=0).mean()))
    assert "pool1" not in shares and "dense3" not in shares  # no ReLU there


def test_validation_recorder_keeps_what_the_trainer_validated_on():
    project = load_project(EXAMPLES_DIR / "lenet5.json")
    project.training.batch_size = 32
    trainer = Trainer(project, shapes_dataset(100, 0))
    recorder = ValidationRecorder.install(trainer)
    assert ValidationRecorder.install(trainer) is recorder  # once per trainer
    trainer.fit(epochs=1)
    matrix = recorder.take(10)
    x, y = trainer.validation_data()
    assert matrix.sum() == len(y) > 0
    predicted = trainer.network.classify(trainer.network.predict(x))
    assert np.trace(matrix) == int(np.count_nonzero(predicted == y))
    assert recorder.take(10) is None


def test_same_training_setup_names_what_changed():
    a = load_project(EXAMPLES_DIR / "lenet5.json")
    b = a.copy()
    b.training.learning_rate, b.training.epochs = 0.1, 9
    b.dataset["normalization"] = {"mean": [0.5], "std": [0.2]}
    assert same_training_setup(a, b) == ""
    b.training.seed = 3
    assert "seed" in same_training_setup(a, b)
    c = a.copy()
    c.blocks[0]["filters"] = 8
    assert same_training_setup(a, c) == "the network changed"


def test_run_label_names_the_settings():
    settings = load_project(EXAMPLES_DIR / "lenet5.json").training
    assert run_label(3, settings) == "run 3 · adam lr 0.001 · batch 64"
    settings.weight_decay, settings.loss = 1e-4, "squared_error"
    assert run_label(1, settings, "continued") == \
        "run 1 · adam lr 0.001 · batch 64 · wd 0.0001 · squared error · continued"


def test_train_on_an_invalid_network_shows_the_first_red_card_and_every_problem(window, doc, qtbot):
    told = []
    window.tell = lambda title, text: told.append((title, text))
    doc.set_block_field(2, "kernel_size", 99)
    assert "Cannot train yet: block 3 (conv): kernel 99x99" in window.train_panel.train_action.toolTip()
    window.set_mode(TRAIN)
    window.train_panel.train_action.trigger()
    assert window.mode == BUILD and doc.selected == 2 and window.canvas.cards[2].selected
    [(title, text)] = told
    assert title.startswith("Cannot train yet") and doc.inference.errors[0].message in text
    doc.undo_stack.undo()
    assert window.train_panel.train_action.toolTip() == "Train the network from fresh weights (F5)"
