"""The gradient view: one point per epoch per layer (weights), log scale, dead ReLU shares."""
from __future__ import annotations

import pytest

from netbuilder.core.trainer import EpochEnd, RunStarted
from netbuilder.gui.views.gradients import GradientView, weight_norms
from tests.gui.test_feature_maps import FakeController


def payload(n: int, scale: float) -> dict:
    return {"event": EpochEnd(n, 1.0, 0.5, 1.0, 0.5, 1.0, 100.0), "confusion": None,
            "grad_norms": {"conv1.weight": 0.01 * scale, "conv1.bias": 0.5, "dense1.weight": 0.3 * scale,
                           "dense1.bias": 0.2},
            "dead_relu": {"conv1": 0.1 * n, "dense1": 0.0}}


@pytest.fixture
def fake(qtbot):
    return FakeController()


@pytest.fixture
def view(qtbot, fake):
    w = GradientView(fake)
    qtbot.addWidget(w)
    w.resize(600, 500)
    w.show()
    qtbot.waitExposed(w)
    return w


def test_one_point_per_epoch_per_layer(view, fake, qtbot):
    for n in (1, 2, 3):
        with qtbot.waitSignal(fake.epochEnded):
            fake.epochEnded.emit(payload(n, 1.0 / n))
    assert view.layer_names() == ["conv1", "dense1"]  # weights only, in network order
    assert view.series("conv1") == ([1, 2, 3], pytest.approx([0.01, 0.005, 0.01 / 3]))
    assert view.series("dense1")[0] == [1, 2, 3]
    assert view.dead_series("conv1") == ([1, 2, 3], pytest.approx([0.1, 0.2, 0.3]))
    xs, ys = view._norm_items["conv1"].getData()
    assert list(xs) == [1, 2, 3] and len(ys) == 3
    assert view.norm_plot.getPlotItem().ctrl.logYCheck.isChecked()


def test_a_new_run_starts_empty(view, fake):
    fake.epochEnded.emit(payload(1, 1.0))
    fake.runStarted.emit({"label": "run 2", "event": RunStarted(1, 1, 10, 2)})
    assert view.layer_names() == [] and view.series("conv1") == ([], [])
    fake.epochEnded.emit(payload(1, 1.0))
    assert view.series("conv1")[0] == [1]


def test_zero_and_non_finite_norms_are_not_plotted_on_the_log_axis(view, fake):
    fake.epochEnded.emit({"event": EpochEnd(1, 1, 1, 1, 1, 1, 1), "grad_norms": {"a.weight": 0.0, "b.weight": 1.0}})
    fake.epochEnded.emit({"event": EpochEnd(2, 1, 1, 1, 1, 1, 1),
                          "grad_norms": {"a.weight": float("nan"), "b.weight": 2.0}})
    assert view.series("a") == ([1], [0.0])
    xs, _ = view._norm_items["a"].getData()
    assert xs is None or len(xs) == 0
    assert view.series("b") == ([1, 2], [1.0, 2.0])


def test_weight_norms_falls_back_to_every_parameter():
    assert weight_norms({"x.weight": 1.0, "x.bias": 2.0}) == {"x": 1.0}
    assert weight_norms({"x.gamma": 1.0}) == {"x.gamma": 1.0}


def test_a_layer_has_the_same_colour_in_both_plots_and_the_legend(view, fake):
    fake.epochEnded.emit(payload(1, 1.0))
    for name in ("conv1", "dense1"):
        norm_pen = view._norm_items[name].opts["pen"].color().name()
        dead_pen = view._dead_items[name].opts["pen"].color().name()
        assert norm_pen == dead_pen and norm_pen in view.legend.text()
    assert view._norm_items["conv1"].opts["pen"].color() != view._norm_items["dense1"].opts["pen"].color()


def test_a_network_without_relu_says_so(view, fake):
    fake.epochEnded.emit({"event": EpochEnd(1, 1, 1, 1, 1, 1, 1), "grad_norms": {"a.weight": 1.0}, "dead_relu": {}})
    assert "no ReLU layers" in view.dead_plot.getPlotItem().titleLabel.text


def test_a_continued_run_extends_the_lines(view, fake):
    fake.epochEnded.emit(payload(1, 1.0))
    fake.runStarted.emit({"label": "run 1 · continued", "event": RunStarted(1, 1, 10, 2, 1), "continued": True})
    fake.epochEnded.emit(payload(2, 1.0))
    assert view.series("conv1")[0] == [1, 2]


def test_layers_new_in_both_plots_at_once_are_listed_once(view, fake):
    fake.epochEnded.emit(payload(1, 1.0))
    assert view.legend.text().count("conv1") == 1 and view._layers == ["conv1", "dense1"]


@pytest.mark.parametrize("height,quarters", [(110, False), (420, True)])
def test_the_dead_relu_labels_never_overlap(qtbot, view, height, quarters):
    from PySide6.QtGui import QImage, QPainter

    plot = view.dead_plot
    plot.resize(360, height)
    plot.show()
    qtbot.waitExposed(plot)
    axis = plot.getPlotItem().getAxis("left")
    image = QImage(10, 10, QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    try:
        _, _, texts = axis.generateDrawSpecs(painter)
    finally:
        painter.end()
    rects = [rect for rect, _, _ in texts]
    assert all(not a.intersects(b) for i, a in enumerate(rects) for b in rects[i + 1:])
    assert ("25%" in [t for _, _, t in texts]) == quarters and "50%" in [t for _, _, t in texts]
