"""The gradient view draws incrementally: curves made once, only grown layers redrawn, nothing while hidden."""
from __future__ import annotations

import pytest

from netbuilder.core.trainer import EpochEnd
from netbuilder.gui.views.gradients import SYMBOL_LIMIT, GradientView
from tests.gui.events import epochs_done
from tests.gui.test_feature_maps import FakeController


def payload(epoch: int, norms: dict[str, float], dead: dict[str, float] | None = None):
    return epochs_done(EpochEnd(epoch, 1.0, 0.5, 1.0, 0.5, 1.0, 100.0),
                       grad_norms={f"{name}.weight": v for name, v in norms.items()}, dead_relu=dead or {},
                       layer_order=["conv1", "conv2", "dense1"])


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


def test_each_layer_keeps_its_curves_and_only_grown_layers_get_new_data(view, fake, monkeypatch):
    fake.epochEnded.emit(payload(1, {"conv1": 0.1, "dense1": 0.2}, {"conv1": 0.0}))
    items = dict(view._norm_items), dict(view._dead_items)
    handed: list[str] = []
    for name, item in view._norm_items.items():
        monkeypatch.setattr(item, "setData", lambda *a, _n=name, _f=item.setData, **k: (handed.append(_n), _f(*a, **k)))
    fake.epochEnded.emit(payload(2, {"conv1": 0.05}))  # dense1's norm not finite this epoch: not sent
    assert (view._norm_items, view._dead_items) == items  # the same curve objects, none made again
    assert handed == ["conv1"]
    assert list(view._norm_items["conv1"].getData()[0]) == [1, 2]
    assert list(view._norm_items["dense1"].getData()[0]) == [1]


def test_a_new_layer_gets_a_curve_and_the_others_only_change_colour(view, fake):
    fake.epochEnded.emit(payload(1, {"conv1": 0.1, "dense1": 0.2}))
    conv1, dense1 = view._norm_items["conv1"], view._norm_items["dense1"]
    last = dense1.opts["pen"].color().name()
    fake.epochEnded.emit(payload(2, {"conv1": 0.1, "conv2": 0.3, "dense1": 0.2}))
    assert view._norm_items["conv1"] is conv1 and view._norm_items["dense1"] is dense1
    assert view._layers == ["conv1", "conv2", "dense1"]
    colours = [view._norm_items[n].opts["pen"].color().name() for n in view._layers]
    assert len(set(colours)) == 3 and colours[-1] == last  # the last layer keeps the last colour
    assert view.legend.text().count("■") == 3


def test_a_hidden_view_keeps_the_points_and_draws_them_when_shown(view, fake, qtbot):
    view.hide()
    for epoch in (1, 2, 3):
        fake.epochEnded.emit(payload(epoch, {"conv1": 0.1 * epoch}, {"conv1": 0.5}))
    assert view.series("conv1") == ([1, 2, 3], pytest.approx([0.1, 0.2, 0.3]))
    assert view._norm_items == {}  # nothing drawn while nobody can see it
    view.show()
    qtbot.waitExposed(view)
    assert list(view._norm_items["conv1"].getData()[0]) == [1, 2, 3]
    assert list(view._dead_items["conv1"].getData()[1]) == [0.5, 0.5, 0.5]


def test_long_runs_draw_lines_without_dots(view, fake):
    for epoch in range(1, SYMBOL_LIMIT + 1):
        fake.epochEnded.emit(payload(epoch, {"conv1": 1.0 / epoch}))
    assert view._norm_items["conv1"].opts["symbol"] == "o"
    fake.epochEnded.emit(payload(SYMBOL_LIMIT + 1, {"conv1": 0.01}))
    assert view._norm_items["conv1"].opts["symbol"] is None
    assert len(view._norm_items["conv1"].getData()[0]) == SYMBOL_LIMIT + 1
