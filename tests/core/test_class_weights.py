"""Class weights (training.class_weights): the weighted losses' values and gradients (by hand, against
PyTorch, by central differences), "balanced" from the training split, the weighted validation and
epoch losses, the setting's checks and round trip, resuming, and what they do to a minority class."""
from __future__ import annotations

import json

import numpy as np
import pytest

from netbuilder.core import trainer as trainer_module
from netbuilder.core.checkpoint import save_checkpoint
from netbuilder.core.class_weights import balanced
from netbuilder.core.datasets.base import Dataset
from netbuilder.core.errors import ProjectError
from netbuilder.core.inference import validate
from netbuilder.core.losses import BinaryCrossEntropy, SoftmaxCrossEntropy, SquaredError, make_loss
from netbuilder.core.network import Network
from netbuilder.core.project import Project, TrainingSettings, load_project, parse_project, save_project
from netbuilder.core.trainer import Trainer
from tests.core.gradcheck import check_loss
from tests.core.test_trainer import blobs, mlp_project

W3 = [0.5, 2.0, 3.0]


def one_hot(labels, k):
    return np.eye(k)[labels]


# --- the losses ---------------------------------------------------------------------------------
def test_weighted_cross_entropy_by_hand():
    z = np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    y = np.array([0, 2])
    value, grad = SoftmaxCrossEntropy(W3).value_and_grad(z, one_hot(y, 3))
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    losses = -np.log(p[[0, 1], y])  # image 0 weighs 0.5 (class 0), image 1 weighs 3 (class 2)
    assert value == pytest.approx((0.5 * losses[0] + 3.0 * losses[1]) / 3.5, rel=1e-12)
    np.testing.assert_allclose(grad, (p - one_hot(y, 3)) * np.array([[0.5], [3.0]]) / 3.5, rtol=1e-12)


def test_weighted_squared_error_and_binary_cross_entropy_by_hand():
    a = np.array([[0.2], [0.9], [0.4]])
    y = np.array([0, 1, 1])
    w = [1.0, 4.0]  # one binary output: the weights of classes 0 and 1
    value, grad = SquaredError(w).value_and_grad(a, y.reshape(-1, 1).astype(float))
    sw = np.array([1.0, 4.0, 4.0])
    diff = a[:, 0] - y
    assert value == pytest.approx(np.sum(sw * 0.5 * diff ** 2) / 9.0, rel=1e-12)
    np.testing.assert_allclose(grad[:, 0], sw * diff / 9.0, rtol=1e-12)

    value, grad = BinaryCrossEntropy(w).value_and_grad(a, y.reshape(-1, 1).astype(float))
    s = 1 / (1 + np.exp(-a[:, 0]))
    bce = -(y * np.log(s) + (1 - y) * np.log(1 - s))
    assert value == pytest.approx(np.sum(sw * bce) / 9.0, rel=1e-12)
    np.testing.assert_allclose(grad[:, 0], sw * (s - y) / 9.0, rtol=1e-12)


def test_weighted_losses_match_torch():
    import torch  # the reference; installed in CI, so its absence fails rather than skips
    F = torch.nn.functional
    rng = np.random.default_rng(4)
    z = rng.standard_normal((9, 3)) * 2
    y = rng.integers(0, 3, 9)
    zt = torch.tensor(z, requires_grad=True)
    want = F.cross_entropy(zt, torch.tensor(y), weight=torch.tensor(W3, dtype=torch.float64))
    want.backward()
    value, grad = SoftmaxCrossEntropy(W3).value_and_grad(z, one_hot(y, 3))
    assert value == pytest.approx(want.item(), rel=1e-12)
    np.testing.assert_allclose(grad, zt.grad.numpy(), rtol=1e-10, atol=1e-14)

    # binary cross-entropy of one sigmoid output, each image weighing its class's weight
    z1, y1, w = z[:, :1], (y % 2).astype(float).reshape(-1, 1), np.array([0.25, 3.0])
    zt = torch.tensor(z1, requires_grad=True)
    sample = torch.tensor(w[(y % 2)]).reshape(-1, 1)
    want = F.binary_cross_entropy_with_logits(zt, torch.tensor(y1), weight=sample, reduction="sum") / sample.sum()
    want.backward()
    value, grad = BinaryCrossEntropy(w).value_and_grad(z1, y1)
    assert value == pytest.approx(want.item(), rel=1e-12)
    np.testing.assert_allclose(grad, zt.grad.numpy(), rtol=1e-10, atol=1e-14)

    # float32 predictions: the gradient stays float32 and close to torch's float32 one
    z32 = z.astype(np.float32)
    zt = torch.tensor(z32, requires_grad=True)
    F.cross_entropy(zt, torch.tensor(y), weight=torch.tensor(W3, dtype=torch.float32)).backward()
    _, grad = SoftmaxCrossEntropy(W3).value_and_grad(z32, one_hot(y, 3).astype(np.float32))
    assert grad.dtype == np.float32
    np.testing.assert_allclose(grad, zt.grad.numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("loss, k, weights", [
    (SoftmaxCrossEntropy, 4, [0.3, 1.0, 2.5, 7.0]), (SquaredError, 4, [0.3, 1.0, 2.5, 7.0]),
    (BinaryCrossEntropy, 4, [0.3, 1.0, 2.5, 7.0]), (BinaryCrossEntropy, 1, [0.4, 5.0]), (SquaredError, 1, [2.0, 0.5]),
])
def test_weighted_losses_gradcheck(loss, k, weights):
    rng = np.random.default_rng(k)
    pred = rng.standard_normal((6, k)) * 2
    labels = rng.integers(0, max(k, 2), 6)
    target = one_hot(labels, k) if k > 1 else labels.reshape(-1, 1).astype(float)
    assert check_loss(loss(weights), pred, target) < 1e-7


def test_weights_of_one_are_the_plain_mean_and_the_weights_are_checked():
    rng = np.random.default_rng(2)
    z = rng.standard_normal((5, 3)).astype(np.float32)
    t = one_hot(rng.integers(0, 3, 5), 3).astype(np.float32)
    for name in ("cross_entropy", "squared_error", "binary_cross_entropy"):
        plain, weighted = make_loss(name).value_and_grad(z, t), make_loss(name, [1, 1, 1]).value_and_grad(z, t)
        assert weighted[0] == pytest.approx(plain[0], rel=1e-6)
        np.testing.assert_allclose(weighted[1], plain[1], rtol=1e-6, atol=1e-8)
    assert make_loss("cross_entropy", [1, 2, 3]).weight_of(np.array([0, 2, 2])) == 7.0
    assert make_loss("cross_entropy").weight_of(np.array([0, 2, 2])) == 3.0
    with pytest.raises(ValueError, match="2 class weights for 3 outputs"):
        make_loss("cross_entropy", [1, 2]).value_and_grad(z, t)
    for bad in ([1, -1, 1], [1, float("nan"), 1], []):
        with pytest.raises(ValueError, match="positive finite"):
            make_loss("cross_entropy", bad)


# --- "balanced", and the network and trainer --------------------------------------------------
def imbalanced(n_major=90, n_minor=10, seed=0, spread=1.2):
    """Two overlapping clouds of two features (as 2 x 1 x 1 images): many of class 0, few of class 1."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(-1.0, spread, (n_major, 2)), rng.normal(1.0, spread, (n_minor, 2))])
    y = np.array([0] * n_major + [1] * n_minor, np.int64)
    order = rng.permutation(len(y))
    x = np.clip((x[order] + 4) / 8, 0, 1)  # pixel values lie in [0, 1]
    return Dataset("clouds", x.reshape(-1, 2, 1, 1).astype(np.float32), y[order], ["many", "few"])


def cloud_project(class_weights=None, **training):
    settings = dict(optimizer="adam", learning_rate=0.05, batch_size=32, epochs=10, validation_fraction=0.2, seed=1,
                    class_weights=class_weights)
    settings.update(training)
    return Project(name="clouds", input_shape=(2, 1, 1), num_classes=2,
                   blocks=[{"kind": "flatten"}, {"kind": "dense", "units": 2, "activation": "softmax"}],
                   training=TrainingSettings(**settings))


def test_balanced_weights_come_from_the_training_split_and_are_noted():
    data = imbalanced()
    trainer = Trainer(cloud_project("balanced"), data)
    counts = np.bincount(data.y_train[trainer.train_idx], minlength=2)
    n = counts.sum()
    assert counts.tolist() == [72, 8]  # the validation share of each class is held out first
    assert trainer.class_weights == pytest.approx([n / (2 * counts[0]), n / (2 * counts[1])])
    assert trainer.class_weights == pytest.approx([80 / 144, 5.0])
    np.testing.assert_array_equal(trainer.network.loss.class_weights, trainer.class_weights)
    assert trainer.network._fused  # still softmax and cross-entropy as one step
    assert "class weights (balanced): many 0.556, few 5" in trainer.notes


def test_a_class_without_training_images_weighs_one():
    weights, empty = balanced(np.array([0, 0, 0, 2]), 4)
    assert weights.tolist() == [4 / 12, 1.0, 1.0, 1.0] and empty == [1, 3]
    project = mlp_project(class_weights="balanced")
    data = blobs(n=60, classes=2)  # the network has a third class the data never shows
    trainer = Trainer(project, data)
    assert trainer.class_weights[2] == 1.0
    assert any(note.endswith("c2 has no training image: weight 1") or "2 has no training image" in note
               for note in trainer.notes), trainer.notes


def test_a_list_is_the_networks_own_and_fuses_with_softmax():
    net = Network(cloud_project([1.0, 3.0]))
    assert net.loss.class_weights.tolist() == [1.0, 3.0] and net._fused
    assert Network(cloud_project("balanced")).loss.class_weights is None  # the trainer resolves it


def test_validation_and_epoch_losses_are_weighted_means_accuracy_is_not(monkeypatch):
    monkeypatch.setattr(trainer_module, "EVAL_BATCH", 7)  # chunks of unequal weight
    data = imbalanced(n_major=150, n_minor=30)
    trainer = Trainer(cloud_project([1.0, 6.0], epochs=1, batch_size=16), data)
    history = trainer.fit()
    net = trainer.network
    x, y = trainer.validation_data()
    whole, outputs = net.evaluate(x, y)  # one call: the weighted mean over the whole split
    e = history.epochs[-1]
    assert e.val_loss == pytest.approx(whole, rel=1e-6)
    assert e.val_accuracy == np.mean(net.classify(outputs) == y)
    plain = make_loss("cross_entropy").value_and_grad(np.log(outputs), net.targets(y))[0]
    assert abs(plain - whole) > 1e-3  # the weights change the figure: the check above can fail
    # the epoch's training loss: each batch's weighted mean, weighted by the batch's weight
    order = np.asarray(trainer._order)
    batches = [order[i:i + 16] for i in range(0, len(order), 16)]
    weights = [net.loss.weight_of(trainer._y[b]) for b in batches]
    want = sum(w * v for w, v in zip(weights, history.batch_losses[0])) / sum(weights)
    assert e.train_loss == pytest.approx(want, rel=1e-12)


def test_resuming_a_balanced_run_is_the_unbroken_run(tmp_path):
    project = mlp_project(class_weights="balanced")
    data = blobs(n=90)
    y = np.asarray(data.y_train).copy()
    y[y == 2] = np.where(np.arange((y == 2).sum()) % 3 == 0, 2, 0)  # class 2 rare, class 0 common
    data = Dataset("skewed", data.x_train, y, data.class_names)
    unbroken = Trainer(project, data)
    unbroken.fit(epochs=4)
    first = Trainer(project, data)
    first.fit(epochs=2)
    save_checkpoint(tmp_path / "ck.npz", first.checkpoint())
    second = Trainer.from_checkpoint(tmp_path / "ck.npz", data)
    assert second.class_weights == unbroken.class_weights != [1.0, 1.0, 1.0]
    second.fit(epochs=2)
    state, want = second.network.state_dict(), unbroken.network.state_dict()
    assert all(np.array_equal(state[k], want[k]) for k in want)
    assert second.history.val_loss == unbroken.history.val_loss


def test_balanced_weights_raise_the_minority_classs_recall():
    """The real effect: on overlapping clouds, 9 to 1, the unweighted network leans to the larger
    class; balanced weights move the boundary back, and the minority's recall on a balanced test
    set rises (seeded: the figures are the same every run)."""
    data = imbalanced(n_major=900, n_minor=100, seed=0)
    test = imbalanced(n_major=500, n_minor=500, seed=1)
    recalls = {}
    for weights in (None, "balanced"):
        trainer = Trainer(cloud_project(weights), data)
        assert trainer.fit().status == "finished"
        net = trainer.network
        predicted = net.classify(net.predict(test.x_train))
        recalls[weights] = [float(np.mean(predicted[test.y_train == c] == c)) for c in (0, 1)]
    plain, weighted = recalls[None], recalls["balanced"]
    assert weighted[1] > plain[1] + 0.2, recalls  # the minority class is found far more often
    assert weighted[0] < plain[0]  # at the majority's expense: the boundary moved
    assert (weighted[0] + weighted[1]) > (plain[0] + plain[1])  # balanced accuracy rises


# --- the setting in the project file --------------------------------------------------------------
def test_round_trip_and_left_out_when_unset(tmp_path):
    for value in ("balanced", [1.0, 2.5]):
        project = cloud_project(value)
        save_project(project, tmp_path / "p.json")
        assert load_project(tmp_path / "p.json").training.class_weights == value
    text = (tmp_path / "p.json").read_text()
    assert '"class_weights": [1.0, 2.5]' in text
    save_project(cloud_project(None), tmp_path / "p.json")
    assert "class_weights" not in (tmp_path / "p.json").read_text()


@pytest.mark.parametrize("value, message", [
    ([1.0, 2.0, 3.0], 'training.class_weights has 3 weights but the network has 2 classes; give one a class, '
                      'in class order, or "balanced"'),
    ([1.0, -2.0], "training.class_weights must hold positive numbers, one a class; weight 2 (class 1) is -2.0"),
    ([1.0, 0], "weight 2 (class 1) is 0"),
    ([1.0, float("nan")], "weight 2 (class 1) is NaN"),
    ([1.0, "2"], 'weight 2 (class 1) is "2"'),
    ([], 'training.class_weights must be "balanced" or a list of positive numbers, one a class, got []'),
    ("balance", 'training.class_weights must be "balanced", a list of numbers (one a class) or null, got "balance"'),
])
def test_bad_values_are_one_clear_line(value, message):
    with pytest.raises(ProjectError) as caught:
        validate(cloud_project(value))
    assert message in str(caught.value)
    assert [p.field for p in caught.value.problems] == ["training.class_weights"]


def test_one_binary_output_takes_two_weights():
    project = cloud_project([1.0, 2.0], loss="binary_cross_entropy")
    project.num_classes = 1
    project.blocks[-1] = {"kind": "dense", "units": 1, "activation": "sigmoid"}
    assert Network(project).loss.class_weights.tolist() == [1.0, 2.0]
    project.training.class_weights = [2.0]
    with pytest.raises(ProjectError, match=r"has 1 weight but the network has 2 classes \(one binary output"):
        validate(project)


def test_the_file_names_itself_and_the_field(tmp_path):
    doc = json.loads(cloud_project().to_json())
    doc["training"]["class_weights"] = 3
    (tmp_path / "p.json").write_text(json.dumps(doc))
    with pytest.raises(ProjectError) as caught:
        load_project(tmp_path / "p.json")
    assert str(caught.value) == (f'{tmp_path / "p.json"}: training.class_weights must be "balanced", a list of '
                                 "numbers (one a class) or null, got 3")
    doc["training"]["class_weights"] = [1, "NaN"]
    with pytest.raises(ProjectError, match="invalid JSON: NaN is not allowed"):
        parse_project(json.dumps(doc).replace('"NaN"', "NaN"), "p.json")


def test_cli_train_prints_the_weights_it_trains_with(tmp_path, capsys):
    from netbuilder.core import cli

    project = cloud_project("balanced", epochs=1)
    project.dataset = {"kind": "shapes", "train_size": 40, "test_size": 0}
    project.input_shape = (1, 28, 28)
    project.num_classes = 10
    project.blocks[-1] = {"kind": "dense", "units": 10, "activation": "softmax"}
    save_project(project, tmp_path / "p.json")
    assert cli.main(["train", str(tmp_path / "p.json")]) == 0
    out = capsys.readouterr()
    assert "note: class weights (balanced): " in out.out + out.err


def test_the_imbalance_note_suggests_balanced_weights():
    from netbuilder.core.datasets.preview import imbalance_notes

    (note,) = imbalance_notes([100, 5], ["cat", "dog"])
    assert note.startswith("imbalanced classes: 'dog' (5)")
    assert note.endswith('Training with "class_weights": "balanced" (the Train panel\'s Class weights) weighs '
                         "every class alike")
    assert Trainer(cloud_project([1.0, 3.0]), imbalanced()).notes == ["class weights: many 1, few 3"]
