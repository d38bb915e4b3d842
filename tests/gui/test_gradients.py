"""The gradient view: one point per epoch per layer (weights), log scale, dead ReLU shares."""
from __future__ import annotations

import pytest

from netbuilder.core.run_events import EpochsDone
from netbuilder.core.trainer import EpochEnd, RunStarted
from netbuilder.gui.views.gradients import GradientView, weight_norms
from tests.gui.events import epochs_done, run_began
from tests.gui.test_feature_maps import FakeController


def payload(n: int, scale: float) -> EpochsDone:
    return epochs_done(EpochEnd(n, 1.0, 0.5, 1.0, 0.5, 1.0, 100.0),
                       grad_norms={"conv1.weight": 0.01 * scale, "conv1.bias": 0.5, "dense1.weight": 0.3 * scale,
                                   "dense1.bias": 0.2},
                       dead_relu={"conv1": 0.1 * n, "dense1": 0.0})


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
    fake.runStarted.emit(run_began(RunStarted(1, 1, 10, 2), label="run 2"))
    assert view.layer_names() == [] and view.series("conv1") == ([], [])
    fake.epochEnded.emit(payload(1, 1.0))
    assert view.series("conv1")[0] == [1]


def test_zero_and_non_finite_norms_are_not_plotted_on_the_log_axis(view, fake):
    fake.epochEnded.emit(epochs_done(EpochEnd(1, 1, 1, 1, 1, 1, 1), grad_norms={"a.weight": 0.0, "b.weight": 1.0}))
    fake.epochEnded.emit(epochs_done(EpochEnd(2, 1, 1, 1, 1, 1, 1),
                                     grad_norms={"a.weight": float("nan"), "b.weight": 2.0}))
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
    fake.epochEnded.emit(epochs_done(EpochEnd(1, 1, 1, 1, 1, 1, 1), grad_norms={"a.weight": 1.0}))
    assert "no ReLU layers" in view.dead_plot.getPlotItem().titleLabel.text


def test_a_continued_run_extends_the_lines(view, fake):
    fake.epochEnded.emit(payload(1, 1.0))
    fake.runStarted.emit(run_began(RunStarted(1, 1, 10, 2, 1), label="run 1 · continued", continued=True))
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


def resnet_small_epoch() -> tuple[dict, object]:
    """The epochEnded payload the worker sends for resnet_small after one batch: real norms and shares."""
    import numpy as np

    from netbuilder.gui.training.events import GradNorms, dead_relu_shares, layer_order
    from tests.gui.test_feature_maps import network

    net = network("resnet_small")
    rng = np.random.default_rng(0)
    x = rng.random((4, 1, 28, 28), dtype=np.float32)
    net.train_step(x, np.arange(4))
    norms = GradNorms()
    norms.add({name: float(np.linalg.norm(g)) for name, g in net.gradients().items()})
    return epochs_done(EpochEnd(1, 1, 1, 1, 1, 1, 1), grad_norms=norms.take(), dead_relu=dead_relu_shares(net, x),
                       layer_order=layer_order(net)), net


def test_the_blocks_inside_groups_are_named_by_their_path(view, fake):
    payload, net = resnet_small_epoch()
    fake.epochEnded.emit(payload)
    inner = [".conv1", ".batchnorm1", ".conv2", ".batchnorm2"]
    weighted = ["conv1", "batchnorm1", *[f"residual1{n}" for n in inner]]
    for k in (2, 3):  # these two change the shape: a 1x1 convolution on the skip path, after the inner blocks
        weighted += [f"residual{k}{n}" for n in inner] + [f"residual{k}.projection"]
    assert view.layer_names() == weighted + ["dense1"]
    assert all(view.series(name) == ([1], [pytest.approx(payload.grad_norms[name + ".weight"])])
               for name in view.layer_names())
    # ReLU blocks inside the groups count too, and each group's own relu after the sum
    assert list(payload.dead_relu) == ["batchnorm1", "residual1.batchnorm1", "residual1", "residual2.batchnorm1",
                                          "residual2", "residual3.batchnorm1", "residual3"]
    assert view.dead_series("residual2.batchnorm1")[0] == [1] and view.dead_series("residual2")[0] == [1]
    # first to last as the data goes: each group's own entry right after its inner blocks, not at the end
    assert view._layers.index("residual1.batchnorm2") + 1 == view._layers.index("residual1")
    assert view._layers.index("residual2.projection") + 1 == view._layers.index("residual2")
    assert view._layers[-1] == "dense1"
    assert view.legend.text().index("&nbsp;residual1&nbsp;") < view.legend.text().index("residual2.conv1")


def test_the_dead_share_of_an_inner_relu_block_counts_its_units():
    import numpy as np

    from netbuilder.gui.training.events import dead_relu_shares

    _, net = resnet_small_epoch()
    x = np.random.default_rng(1).random((6, 1, 28, 28), dtype=np.float32)
    outputs = {stage.path: y for stage, y in net.forward_stages(x)}
    shares = dead_relu_shares(net, x)
    for name in ("residual2.batchnorm1", "residual3"):
        assert shares[name] == pytest.approx(float((outputs[name] <= 0).all(axis=0).mean()))
    assert "residual2.conv1" not in shares  # identity activation: no ReLU units there
