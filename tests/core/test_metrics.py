"""core.metrics: the confusion matrix, per-class figures and their averages, the confident mistakes."""
import numpy as np
import pytest

from netbuilder.core import metrics
from netbuilder.core.metrics import (
    class_probabilities,
    classification_report,
    confusion_matrix,
    most_confidently_wrong,
    per_class,
)


def test_confusion_matrix_rows_are_true_columns_predicted():
    m = confusion_matrix(np.array([0, 0, 1, 2, 2]), np.array([0, 1, 1, 2, 0]), 3)
    assert m.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]
    assert m.dtype == np.int64


def test_per_class_figures_by_hand():
    # true 0: 2 samples (1 right), true 1: 1 (right), true 2: 2 (1 right); class 3 never occurs
    m = confusion_matrix(np.array([0, 0, 1, 2, 2]), np.array([0, 1, 1, 2, 0]), 4)
    precision, recall, f1, support = per_class(m)
    np.testing.assert_allclose(precision, [1 / 2, 1 / 2, 1, 0])
    np.testing.assert_allclose(recall, [1 / 2, 1, 1 / 2, 0])
    np.testing.assert_allclose(f1, [1 / 2, 2 / 3, 2 / 3, 0])
    assert support.tolist() == [2, 1, 2, 0]


def test_report_averages_and_sums_on_random_labels():
    rng = np.random.default_rng(3)
    n, k = 500, 6
    true = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 2 * np.eye(k)[true]  # better than chance
    probs = class_probabilities(logits, "identity")
    r = classification_report(true, probs, [f"c{i}" for i in range(k)])
    predicted = probs.argmax(axis=1)
    assert r.support.sum() == n == r.total
    assert (r.matrix.sum(axis=1) == r.support).all()
    assert r.matrix.sum(axis=0).tolist() == np.bincount(predicted, minlength=k).tolist()
    assert r.correct == int((predicted == true).sum())
    assert round(float((r.recall * r.support).sum())) == r.correct
    assert r.accuracy == pytest.approx(np.mean(predicted == true))
    assert r.weighted["recall"] == pytest.approx(r.accuracy)  # support-weighted recall is the accuracy
    for name in ("precision", "recall", "f1"):
        per = getattr(r, name)
        assert r.macro[name] == pytest.approx(per.mean())
        assert r.weighted[name] == pytest.approx((per * r.support).sum() / n)
    for c in range(k):  # one class by its definition
        tp = int(((predicted == c) & (true == c)).sum())
        assert r.precision[c] == pytest.approx(tp / (predicted == c).sum())
        assert r.recall[c] == pytest.approx(tp / (true == c).sum())


def test_macro_average_leaves_out_classes_that_never_occur():
    probs = np.eye(3)[[0, 1, 1]]
    r = classification_report(np.array([0, 1, 1]), probs)
    assert r.class_names == ["class 0", "class 1", "class 2"]
    assert r.macro == {"precision": 1.0, "recall": 1.0, "f1": 1.0}


def test_most_confidently_wrong_is_sorted_and_names_what_it_took_them_for():
    true = np.array([0, 1, 2, 0, 1])
    probs = np.array([[0.9, 0.1, 0], [0.7, 0.3, 0], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1]])
    wrong = most_confidently_wrong(true, probs, count=5)
    assert [(m.index, m.true, m.predicted) for m in wrong] == [(2, 2, 1), (1, 1, 0), (3, 0, 1)]
    assert [m.confidence for m in wrong] == [0.8, 0.7, 0.7]  # ties: the lower index first
    r = classification_report(true, probs, ["a", "b", "c"], wrong=2)
    assert len(r.mistakes) == 2
    d = r.to_dict()
    assert d["most_confidently_wrong"][0] == {"index": 2, "true": 2, "true_name": "c", "predicted": 1,
                                             "predicted_name": "b", "confidence": 0.8}
    assert d["confusion_matrix"] == r.matrix.tolist() and d["per_class"][0]["support"] == 2


def test_given_predictions_are_counted_instead_of_the_argmax():
    probs = np.array([[0.5, 0.5], [0.2, 0.8]])  # one sigmoid output of 0.5 is class 1 for the engine
    r = classification_report(np.array([1, 1]), probs, predicted=np.array([1, 1]))
    assert r.accuracy == 1.0 and r.mistakes == []


def test_class_probabilities_for_each_kind_of_output():
    np.testing.assert_allclose(class_probabilities(np.array([[0.2, 0.8]]), "softmax"), [[0.2, 0.8]])
    np.testing.assert_allclose(class_probabilities(np.array([[0.9], [0.25]]), "sigmoid"), [[0.1, 0.9], [0.75, 0.25]])
    p = class_probabilities(np.array([[1.0, 3.0], [np.inf, 1.0]]), "identity")
    assert p[0].sum() == pytest.approx(1) and p[0, 1] > p[0, 0]
    assert np.isnan(p[1]).all()


def test_the_window_uses_these_metrics():
    pytest.importorskip("PySide6")
    from netbuilder.gui.training import events

    assert events.confusion_matrix is metrics.confusion_matrix
    np.testing.assert_allclose(events.class_probabilities(np.array([1.0, 3.0]), "identity"),
                               class_probabilities(np.array([[1.0, 3.0]]), "identity")[0])


def test_evaluate_network_counts_the_engines_decisions_on_the_split_training_holds_out():
    from netbuilder.core.datasets import load_dataset, train_val_split
    from netbuilder.core.metrics import evaluate_network, evaluation_split
    from netbuilder.core.network import Network
    from netbuilder.core.project import Project

    project = Project.from_dict({
        "format": 2, "name": "t", "input_shape": [1, 28, 28], "num_classes": 10,
        "blocks": [{"kind": "flatten"}, {"kind": "dense", "units": 10, "activation": "softmax"}],
        "training": {"validation_fraction": 0.25, "seed": 3}, "dataset": {"kind": "shapes"}})
    ds = load_dataset({"kind": "shapes", "train_size": 80, "test_size": 20})
    net = Network(project)
    x, y, what = evaluation_split(project, ds, "val")
    _, val = train_val_split(ds.y_train, 0.25, 3)
    np.testing.assert_array_equal(x, ds.x_train[val])
    assert what == "validation split" and len(y) == 20
    r = evaluate_network(net, x, y, ds.class_names)
    assert r.correct == int((net.predict(x).argmax(axis=1) == y).sum()) and r.total == 20
    x, y, _ = evaluation_split(project, ds, "test")
    assert len(y) == 20 and evaluate_network(net, x, y).class_names[0] == "class 0"
    with pytest.raises(ValueError, match="'test' or 'val'"):
        evaluation_split(project, ds, "train")
