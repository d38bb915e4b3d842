"""The filter view: one tile per kernel of the first conv, diverging colours centred at 0, hover text."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtGui import QColor

from netbuilder.core.run_events import Filters
from netbuilder.gui.views.filters import FilterView, filter_payload
from netbuilder.gui.views.tiles import DIVERGING
from tests.gui.test_feature_maps import FakeController, network


@pytest.fixture
def fake(qtbot):
    return FakeController()


@pytest.fixture
def view(qtbot, fake):
    w = FilterView(fake)
    qtbot.addWidget(w)
    w.resize(600, 400)
    w.show()
    qtbot.waitExposed(w)
    return w


def test_one_tile_per_filter_of_the_first_conv(view, fake, qtbot):
    weights = network().state_dict()["conv1.weight"]
    with qtbot.waitSignal(fake.filtersReady):
        fake.filtersReady.emit(Filters("conv1", weights))
    assert view.tile_count == weights.shape[0] == 6
    assert "conv1" in view.header.text() and "6 filters 5×5" in view.header.text()
    wide = network("small_vgg").state_dict()["conv1.weight"]
    fake.filtersReady.emit(Filters("conv1", wide))
    assert view.tile_count == 16


def test_zero_is_white_and_signs_take_opposite_colours(view, fake):
    w = np.zeros((3, 1, 3, 3), np.float32)
    w[0, 0, 0, 0] = 1.0  # top-left strongly positive
    w[1, 0, 0, 0] = -1.0  # top-left strongly negative
    fake.filtersReady.emit(Filters("c", w))
    image = view.grid.image  # the strip: tile i occupies columns 3i..3i+2

    def colour(x, y):
        return QColor(image.pixel(x, y)).getRgb()[:3]

    assert colour(0, 0) == tuple(DIVERGING[-1])  # +max: red end
    assert colour(3, 0) == tuple(DIVERGING[0])  # -max: blue end
    assert colour(1, 1) == colour(7, 2) == tuple(DIVERGING[128])  # zero: the neutral middle
    assert view.tile_text(1) == "c · filter 1 of 3 · 1×3×3 · weights -1 … 0"


def test_three_channel_kernels_show_as_colour(view, fake):
    w = np.zeros((2, 3, 2, 2), np.float32)
    w[0, 0] = 1.0  # the red channel only
    fake.filtersReady.emit(Filters("conv1", w))
    assert view.tile_count == 2
    assert QColor(view.grid.image.pixel(0, 0)).getRgb()[:3] == (255, 0, 0)


def test_none_clears_and_bad_shapes_are_named():
    assert filter_payload(None) is None and filter_payload(Filters("", None)) is None
    with pytest.raises(ValueError, match=r"\(F, C, kh, kw\), got shape \(6, 5\)"):
        filter_payload(Filters("d", np.zeros((6, 5))))


def test_hidden_view_draws_on_show(qtbot, fake):
    w = FilterView(fake)
    qtbot.addWidget(w)
    fake.filtersReady.emit(Filters("conv1", np.ones((4, 1, 3, 3), np.float32)))
    assert w.tile_count == 0
    w.show()
    qtbot.waitExposed(w)
    assert w.tile_count == 4


def test_the_first_filters_may_be_inside_a_group():
    """A network that starts with a group: its first convolution, the one that sees the image, by path."""
    from netbuilder.core.network import Network
    from netbuilder.core.project import Project
    from netbuilder.gui.training.worker import first_filters

    conv = {"kind": "conv", "filters": 3, "kernel_size": 3, "padding": "same", "activation": "relu"}
    project = Project(name="group first", input_shape=(1, 8, 8), num_classes=2, blocks=[
        {"kind": "residual", "blocks": [dict(conv, filters=1)]}, dict(conv, filters=5),
        {"kind": "dense", "units": 2, "activation": "softmax"}])
    net = Network(project, rng=np.random.default_rng(0))
    found = first_filters(net)
    assert found.name == "residual1.conv1" and found.weight.shape == (1, 1, 3, 3)
    np.testing.assert_array_equal(found.weight, net.parameters()["residual1.conv1.weight"])
    assert first_filters(network()).name == "conv1"
