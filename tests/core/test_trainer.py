"""The trainer: event stream, control from other threads, probing, divergence, determinism, XOR."""
import queue
import threading

import numpy as np
import pytest

from netbuilder.core.datasets.base import Dataset
from netbuilder.core.errors import TrainingError
from netbuilder.core.project import Project, TrainingSettings
from netbuilder.core.resources import resource_path
from netbuilder.core.trainer import BatchEnd, EpochEnd, History, RunEnded, RunStarted, Trainer

TIMEOUT = 20  # seconds; only reached if something is broken


def blobs(n=60, classes=3, seed=0, shape=(1, 4, 4)):
    """Separable classes: each class lights up its own region of a small image, plus noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n, dtype=np.int64) % classes
    x = rng.uniform(0, 0.3, (n,) + shape).astype(np.float32)
    flat = x.reshape(n, -1)
    size = flat.shape[1] // classes
    for k in range(classes):
        flat[y == k, k * size:(k + 1) * size] += 0.6
    return Dataset("blobs", x, y, [f"c{k}" for k in range(classes)])


def mlp_project(dropout=False, seed=3, **training):
    blocks = [{"kind": "flatten"}, {"kind": "dense", "units": 16, "activation": "relu"}]
    if dropout:
        blocks.append({"kind": "dropout", "rate": 0.3})
    blocks.append({"kind": "dense", "units": 3, "activation": "softmax"})
    settings = dict(loss="cross_entropy", optimizer="momentum", learning_rate=0.05, batch_size=16,
                    epochs=3, validation_fraction=0.2, seed=seed)
    settings.update(training)
    return Project(name="tiny", input_shape=(1, 4, 4), num_classes=3, blocks=blocks,
                   training=TrainingSettings(**settings))


def conv_project(**training):
    blocks = [{"kind": "conv", "filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"},
              {"kind": "pool", "mode": "max", "size": 2},
              {"kind": "dense", "units": 3, "activation": "softmax"}]
    settings = dict(optimizer="adam", learning_rate=0.01, batch_size=8, epochs=2, validation_fraction=0.2)
    settings.update(training)
    return Project(name="conv", input_shape=(1, 4, 4), num_classes=3, blocks=blocks,
                   training=TrainingSettings(**settings))


def run_in_thread(trainer, epochs=None):
    """Start ``trainer.run`` in a thread; events arrive on the returned queue."""
    events = queue.Queue()

    def work():
        for event in trainer.run(epochs):
            events.put(event)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread, events


def next_of(events, cls):
    while True:
        event = events.get(timeout=TIMEOUT)
        if isinstance(event, cls):
            return event


# --- the event stream ---------------------------------------------------------------------------
def test_events_come_in_order_with_1_based_counts():
    trainer = Trainer(mlp_project(), blobs(60))
    events = list(trainer.run())
    # 60 samples, 20% (4 per class) held out: 48 to train in batches of 16.
    assert events[0] == RunStarted(epochs=3, batches_per_epoch=3, train_size=48, val_size=12)
    kinds = [type(e).__name__ for e in events[1:]]
    assert kinds == (["BatchEnd"] * 3 + ["EpochEnd"]) * 3 + ["RunEnded"]
    batches = [e for e in events if isinstance(e, BatchEnd)]
    assert [(b.epoch, b.batch) for b in batches] == [(e, b) for e in (1, 2, 3) for b in (1, 2, 3)]
    assert [b.seen for b in batches] == [16 * i for i in range(1, 10)]
    assert all(b.batches_per_epoch == 3 and np.isfinite(b.loss) and 0 <= b.accuracy <= 1
               and b.images_per_sec > 0 for b in batches)
    epochs = [e for e in events if isinstance(e, EpochEnd)]
    assert [e.epoch for e in epochs] == [1, 2, 3]
    for e in epochs:
        assert e.val_loss is not None and 0 <= e.val_accuracy <= 1 and e.seconds > 0
    # Epoch loss is the sample-weighted mean of its batch losses (equal batches here).
    assert epochs[0].train_loss == pytest.approx(np.mean([b.loss for b in batches[:3]]))
    assert events[-1] == RunEnded("finished", "finished 3 epochs", 3)
    assert trainer.history.status == "finished"


def test_partial_last_batch_and_no_validation():
    trainer = Trainer(mlp_project(validation_fraction=0.0, batch_size=25), blobs(60))
    events = list(trainer.run(epochs=1))
    assert events[0] == RunStarted(1, 3, 60, 0)
    batches = [e for e in events if isinstance(e, BatchEnd)]
    assert [b.seen for b in batches] == [25, 50, 60]
    (epoch,) = [e for e in events if isinstance(e, EpochEnd)]
    assert epoch.val_loss is None and epoch.val_accuracy is None


def test_fit_returns_history_and_learns():
    seen = []
    history = Trainer(mlp_project(epochs=15), blobs(90)).fit(seen.append)
    assert isinstance(history, History)
    assert isinstance(seen[0], RunStarted) and isinstance(seen[-1], RunEnded)
    assert len(history.epochs) == 15 and history.epochs_done == 15
    assert [len(b) for b in history.batch_losses] == [5] * 15  # 72 training samples, batches of 16
    assert history.train_loss[-1] < 0.5 * history.train_loss[0]
    assert history.val_accuracy[-1] >= 0.9


def test_validation_metrics_are_computed_in_inference_mode():
    data = blobs(60)
    trainer = Trainer(mlp_project(dropout=True), data)
    history = trainer.fit(epochs=1)
    # Recompute independently from the trained network's probabilities.
    x, y = data.x_train[trainer.val_idx], data.y_train[trainer.val_idx]
    probs = trainer.network.predict(x)
    expected_loss = -np.mean(np.log(probs[np.arange(len(y)), y]))
    assert history.val_loss[0] == pytest.approx(expected_loss, rel=1e-5)
    assert history.val_accuracy[0] == pytest.approx(np.mean(probs.argmax(1) == y))


def test_conv_network_trains_and_float64_works():
    trainer = Trainer(conv_project(), blobs(40), dtype=np.float64)
    history = trainer.fit()
    assert history.status == "finished"
    assert all(p.dtype == np.float64 and np.isfinite(p).all() for p in trainer.network.parameters().values())


# --- determinism ----------------------------------------------------------------------------------
def test_same_seed_gives_identical_weights_bit_for_bit():
    data = blobs(60)
    a = Trainer(mlp_project(dropout=True), data)
    b = Trainer(mlp_project(dropout=True), data)
    a.fit()
    b.fit()
    wa, wb = a.weights(), b.weights()
    assert wa.keys() == wb.keys()
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)
    c = Trainer(mlp_project(dropout=True, seed=4), data)
    c.fit()
    assert not np.array_equal(wa["dense1.weight"], c.weights()["dense1.weight"])


def test_probing_during_training_changes_nothing():
    """Probes from another thread between batches leave the trained weights bit-identical."""
    data = blobs(60)
    quiet = Trainer(mlp_project(dropout=True, epochs=4), data)
    quiet.fit()

    busy = Trainer(mlp_project(dropout=True, epochs=4), data)
    sample = data.x_train[0]
    done, probed = threading.Event(), threading.Event()
    results = []

    def prober():
        while not done.is_set():
            results.append(busy.probe(sample))
            probed.set()

    thread = threading.Thread(target=prober, daemon=True)

    def on_event(event):
        if isinstance(event, RunStarted):
            thread.start()
        elif isinstance(event, BatchEnd) and event.batch == 1:
            assert probed.wait(TIMEOUT)  # a probe has run during this run, before the next batch

    try:
        busy.fit(on_event)
    finally:
        done.set()
        thread.join(TIMEOUT)
    assert results
    for k, v in quiet.weights().items():
        assert np.array_equal(v, busy.weights()[k])

    names = [(name, kind) for name, kind, _ in results[0]]
    assert names == [("flatten1", "flatten"), ("dense1", "dense"), ("dropout1", "dropout"), ("dense2", "dense")]
    shapes = [a.shape for _, _, a in results[-1]]
    assert shapes == [(16,), (16,), (16,), (3,)]
    assert all(np.isfinite(a).all() for r in results for _, _, a in r)


def test_probe_returns_copies_matching_forward_blocks():
    data = blobs(30)
    trainer = Trainer(conv_project(), data)
    out = trainer.probe(data.x_train[3][None])
    expected = trainer.network.forward_blocks(data.x_train[3:4])
    assert [(n, k) for n, k, _ in out] == [(i.name, i.kind) for i, _ in expected]
    for (_, _, a), (_, b) in zip(out, expected):
        np.testing.assert_array_equal(a, b[0])
    out[0][2][...] = 123.0  # a copy: scribbling on it leaves the next probe alone
    assert not np.any(trainer.probe(data.x_train[3])[0][2] == 123.0)
    with pytest.raises(ValueError, match=r"one sample of shape \(1, 4, 4\), got \(2, 1, 4, 4\)"):
        trainer.probe(data.x_train[:2])


# --- control from another thread ---------------------------------------------------------------------
def test_pause_resume_stop_from_another_thread():
    trainer = Trainer(mlp_project(), blobs(60))
    thread, events = run_in_thread(trainer, epochs=100_000)
    first = next_of(events, BatchEnd)
    assert first.epoch == 1

    trainer.pause()
    assert trainer.paused
    assert trainer.wait_until_paused(TIMEOUT)
    # Parked: whatever was queued before the pause took hold, then nothing more.
    while not events.empty():
        events.get_nowait()
    with pytest.raises(queue.Empty):
        events.get(timeout=0.3)

    trainer.resume()
    assert not trainer.paused
    resumed = next_of(events, BatchEnd)
    assert resumed.seen > first.seen

    trainer.stop()
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    remaining = []
    while not events.empty():
        remaining.append(events.get_nowait())
    end = remaining[-1]
    assert isinstance(end, RunEnded) and end.status == "stopped"
    assert end.epochs_done == trainer.history.epochs_done
    assert end.message.startswith("stopped after")


def test_stop_while_paused_ends_the_run():
    trainer = Trainer(mlp_project(), blobs(60))
    thread, events = run_in_thread(trainer, epochs=100_000)
    next_of(events, BatchEnd)
    trainer.pause()
    assert trainer.wait_until_paused(TIMEOUT)
    trainer.stop()
    end = next_of(events, RunEnded)
    thread.join(TIMEOUT)
    assert end.status == "stopped" and not thread.is_alive()
    # Flags are cleared: the next run goes through to the end.
    assert list(trainer.run(epochs=1))[-1].status == "finished"


def test_stop_takes_effect_before_the_next_batch():
    trainer = Trainer(mlp_project(), blobs(60))
    events = []

    def on_event(event):
        events.append(event)
        if isinstance(event, BatchEnd) and (event.epoch, event.batch) == (2, 2):
            trainer.stop()

    history = trainer.fit(on_event)
    assert isinstance(events[-2], BatchEnd) and (events[-2].epoch, events[-2].batch) == (2, 2)
    assert events[-1] == RunEnded("stopped", "stopped after 1 complete epoch", 1)
    assert [len(b) for b in history.batch_losses] == [3, 2]


def test_stop_before_run_stops_at_once():
    trainer = Trainer(mlp_project(), blobs(60))
    trainer.stop()
    events = list(trainer.run())
    assert [type(e) for e in events] == [RunStarted, RunEnded]
    assert events[-1] == RunEnded("stopped", "stopped after 0 complete epochs", 0)


def test_learning_rate_changes_live():
    trainer = Trainer(mlp_project(optimizer="sgd", learning_rate=0.1), blobs(60))
    rates = []

    def on_event(event):
        if isinstance(event, BatchEnd):
            rates.append(trainer.learning_rate)
            if event.batch == 1:
                trainer.set_learning_rate(0.01)

    trainer.fit(on_event, epochs=1)
    assert rates == [0.1, 0.01, 0.01]
    with pytest.raises(ValueError, match="learning rate must be > 0, got -1"):
        trainer.set_learning_rate(-1)


# --- divergence -------------------------------------------------------------------------------------
def test_huge_learning_rate_diverges_with_finite_weights():
    # Linear outputs under squared error: each step multiplies the error by about 1 - lr * |x|^2.
    project = mlp_project(optimizer="sgd", learning_rate=1e6, epochs=50, loss="squared_error")
    project.blocks[-1]["activation"] = "identity"
    trainer = Trainer(project, blobs(60))
    events = list(trainer.run())
    end = events[-1]
    assert end.status == "diverged"
    batches = [e for e in events if isinstance(e, BatchEnd)]
    bad_epoch, bad_batch = (1, 1) if not batches else (
        (batches[-1].epoch, batches[-1].batch + 1) if batches[-1].batch < 3 else (batches[-1].epoch + 1, 1))
    assert f"epoch {bad_epoch}, batch {bad_batch}" in end.message
    assert "lower learning rate" in end.message and "1e+06" in end.message
    assert all(np.isfinite(w).all() for w in trainer.weights().values())


def test_nan_loss_keeps_the_weights_of_the_last_good_step():
    trainer = Trainer(mlp_project(epochs=2), blobs(60))
    net = trainer.network
    real_step, calls = net.train_step, []

    def flaky_step(x, labels):
        loss, out = real_step(x, labels)
        calls.append(1)
        return (float("nan") if len(calls) == 5 else loss), out

    net.train_step = flaky_step
    good = {}

    def on_event(event):
        if isinstance(event, BatchEnd):
            good.update(trainer.weights())

    history = trainer.fit(on_event)
    assert history.status == "diverged"
    assert "epoch 2, batch 2: the loss became NaN" in history.message
    assert "weights from before this batch are kept" in history.message
    assert history.epochs_done == 1
    for k, v in trainer.weights().items():
        assert np.array_equal(v, good[k])


def test_overflowing_update_restores_the_epoch_start_weights():
    trainer = Trainer(mlp_project(epochs=2), blobs(60))
    net = trainer.network
    real_step, calls = net.train_step, []
    start_of_epoch_2 = {}

    def poisoning_step(x, labels):
        calls.append(1)
        if len(calls) == 5:  # as if the previous update had overflowed a weight
            net.parameters()["dense1.weight"][0, 0] = np.inf
            return float("nan"), np.zeros((len(x), 3), np.float32)
        return real_step(x, labels)

    net.train_step = poisoning_step

    def on_event(event):
        if isinstance(event, EpochEnd):
            start_of_epoch_2.update(trainer.weights())

    history = trainer.fit(on_event)
    assert history.status == "diverged"
    assert "restored from the start of epoch 2" in history.message
    for k, v in trainer.weights().items():
        assert np.array_equal(v, start_of_epoch_2[k])


# --- bad input ---------------------------------------------------------------------------------------
def test_image_shape_mismatch_is_reported():
    with pytest.raises(TrainingError, match=r"images are 1 x 5 x 5 .* network's input is 1 x 4 x 4"):
        Trainer(mlp_project(), blobs(30, shape=(1, 5, 5)))


def test_too_few_outputs_for_the_classes():
    data = blobs(40, classes=4)
    with pytest.raises(TrainingError, match="dataset has 4 classes but the network has 3 outputs"):
        Trainer(mlp_project(), data)


def test_bad_epochs():
    trainer = Trainer(mlp_project(), blobs(30))
    with pytest.raises(TrainingError, match="epochs must be a whole number >= 1, got 0"):
        list(trainer.run(epochs=0))


def test_a_crash_inside_the_step_ends_the_run_as_failed():
    trainer = Trainer(mlp_project(), blobs(30))

    def broken(x, labels):
        raise MemoryError("out of memory")

    trainer.network.train_step = broken
    events = list(trainer.run())
    assert events[-1] == RunEnded("failed", "training failed: MemoryError: out of memory", 0)
    assert isinstance(trainer.error, MemoryError)


# --- the textbook example ------------------------------------------------------------------------------
def test_mlp_learns_xor_with_squared_error_and_sigmoid():
    """2-2-1 sigmoid network, squared error, full-batch gradient descent (Rumelhart et al. 1986)."""
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32).reshape(4, 2, 1, 1)
    y = np.array([0, 1, 1, 0], np.int64)
    data = Dataset("xor", x, y, ["false", "true"])
    project = Project(
        name="xor", input_shape=(2, 1, 1), num_classes=1,
        blocks=[{"kind": "flatten"}, {"kind": "dense", "units": 2, "activation": "sigmoid"},
                {"kind": "dense", "units": 1, "activation": "sigmoid"}],
        training=TrainingSettings(loss="squared_error", optimizer="momentum", learning_rate=0.5, momentum=0.9,
                                  batch_size=4, epochs=1500, validation_fraction=0.0, seed=1))
    trainer = Trainer(project, data)
    history = trainer.fit()
    out = trainer.network.predict(x)[:, 0]
    assert history.status == "finished"
    assert np.all(np.abs(out - y) < 0.2), out
    assert history.train_accuracy[-1] == 1.0


def test_the_xor_example_project_learns():

    from netbuilder.core.project import load_project

    project = load_project(resource_path("examples") / "xor.json")
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32).reshape(4, 2, 1, 1)
    y = np.array([0, 1, 1, 0], np.int64)
    trainer = Trainer(project, Dataset("xor", x, y, ["false", "true"]))
    history = trainer.fit()
    assert history.status == "finished" and history.epochs_done == project.training.epochs
    out = trainer.network.predict(x)[:, 0]
    assert np.all(np.abs(out - y) < 0.2), out
