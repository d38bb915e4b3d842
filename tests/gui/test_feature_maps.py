"""The feature-map view: one tile per channel of each conv and pool block, hover text, orientation.

``FakeController`` stands in for netbuilder.gui.training.controller.TrainingController: the same signals,
emitted by hand with payloads built from a real core Network (the other view tests import it).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QObject, QPoint, QPointF, Qt, Signal
from PySide6.QtGui import QColor, QMouseEvent
from PySide6.QtWidgets import QApplication

from netbuilder.core.network import Network
from netbuilder.core.project import load_project
from netbuilder.core.run_events import DataReady, Probe
from netbuilder.gui.document import EXAMPLES_DIR
from netbuilder.gui.views.feature_maps import FeatureMapView

CLASSES = ["circle", "square", "triangle", "diamond", "plus", "cross", "star", "bar", "heart", "crescent"]


class FakeController(QObject):
    """The TrainingController's signals and the calls the views make, without a worker."""

    stateChanged = Signal(str)
    datasetReady = Signal(object)
    runStarted = Signal(object)
    batchEnded = Signal(object)
    epochEnded = Signal(object)
    probeReady = Signal(object)
    filtersReady = Signal(object)
    runEnded = Signal(object)
    error = Signal(str)

    def __init__(self, class_names=None):
        super().__init__()
        self.class_names = list(class_names or [])
        self.probe_requests: list[int] = []
        self.probes_wanted: list[bool] = []
        self.is_running = False
        self.is_paused = False
        self.has_trained = False

    def set_probe_sample(self, index: int) -> None:
        self.probe_requests.append(index)

    def set_probes_wanted(self, wanted: bool) -> None:
        self.probes_wanted.append(wanted)


def network(example: str = "lenet5") -> Network:
    return Network(load_project(EXAMPLES_DIR / f"{example}.json"), rng=np.random.default_rng(0))


def probe_payload(net: Network, x: np.ndarray, label: int, index: int = 0) -> Probe:
    """What the controller's probeReady carries for sample ``x`` (C, H, W)."""
    outs = net.forward_blocks(x[None])
    layers = [(info.name, info.kind, np.array(out[0])) for info, out in outs]
    p = layers[-1][2]
    return Probe(index, label, x.copy(), layers, p, int(np.argmax(p)))


def trainer_probe_payload(example: str, label: int = 0) -> Probe:
    """What the worker sends for a sample of ``example``: ``Trainer.probe``'s list, blocks in groups too."""
    from netbuilder.core.trainer import Trainer
    from tests.core.test_trainer import blobs

    data = blobs(20, classes=10, shape=(1, 28, 28))
    trainer = Trainer(load_project(EXAMPLES_DIR / f"{example}.json"), data)
    x = data.x_train[label]
    layers = trainer.probe(x)
    p = layers[-1][2]
    return Probe(label, label, x.copy(), layers, p, int(np.argmax(p)))


def dataset_payload(n: int = 20, shape=(1, 28, 28)) -> DataReady:
    rng = np.random.default_rng(1)
    return DataReady("shapes", CLASSES, shape, 100, n, rng.random((n, *shape), dtype=np.float32), np.arange(n) % 10)


@pytest.fixture
def fake(qtbot):
    return FakeController(CLASSES)


@pytest.fixture
def view(qtbot, fake):
    w = FeatureMapView(fake)
    qtbot.addWidget(w)
    w.resize(1000, 700)
    w.show()
    qtbot.waitExposed(w)
    return w


def send_move(widget, pos: QPoint) -> None:
    local = QPointF(pos)
    event = QMouseEvent(QEvent.Type.MouseMove, local, QPointF(widget.mapToGlobal(pos)), Qt.MouseButton.NoButton,
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)


def test_one_tile_per_channel_of_each_conv_and_pool_block(view, fake, qtbot):
    net = network()
    x = np.random.default_rng(2).random((1, 28, 28), dtype=np.float32)
    with qtbot.waitSignal(fake.probeReady):
        fake.probeReady.emit(probe_payload(net, x, 3))
    assert view.layers_shown() == ["conv1", "pool1", "conv2", "pool2"]
    assert [view.tile_count(n) for n in view.layers_shown()] == [6, 6, 16, 16]
    assert view.bars.values() == pytest.approx(probe_payload(net, x, 3).probabilities)


RESNET_SMALL_MAPS = ["conv1", "batchnorm1", *[
    f"residual{k}{inner}" for k in (1, 2, 3) for inner in (".conv1", ".batchnorm1", ".conv2", ".batchnorm2", "")]]


def test_the_blocks_inside_groups_have_sections_named_by_their_path(view, fake, qtbot):
    from netbuilder.gui.views.feature_maps import INDENT

    payload = trainer_probe_payload("resnet_small")
    fake.probeReady.emit(payload)
    # each group's inner blocks just before the group's own output, as the data goes through them
    assert view.layers_shown() == RESNET_SMALL_MAPS
    assert [view.tile_count(n) for n in view.layers_shown()] == [8] * 7 + [16] * 5 + [32] * 5
    inner, group, top = view.section("residual2.conv2"), view.section("residual2"), view.section("conv1")
    assert "residual2 › </span><b>conv2</b>" in inner.header.text()
    assert "· conv · 16 maps 14×14" in inner.header.text()
    assert group.header.text().startswith("<b>residual2</b>")
    assert "· residual output · 16 maps 14×14" in group.header.text()
    assert "›" not in top.header.text()
    margins = [view.section(n).layout().contentsMargins().left() for n in ("conv1", "residual2.conv2", "residual2")]
    assert margins == [0, INDENT, 0]  # inner blocks indented under their group
    maps = dict((n, a) for n, _, a in payload.layers)["residual2.conv2"]
    text = view.tile_text("residual2.conv2", 3)
    assert text.startswith("residual2 › conv2 · channel 3 of 16 · 14×14 · values ")
    assert f"{maps[3].min():.3g} … {maps[3].max():.3g}" in text


def test_the_paths_of_branches_are_levels_of_the_section_titles(view, fake):
    from netbuilder.gui.views.feature_maps import INDENT

    fake.probeReady.emit(trainer_probe_payload("inception_mini"))
    shown = view.layers_shown()
    assert shown[:8] == ["conv1", "pool1", "branches1.path1.conv1", "branches1.path2.conv1", "branches1.path2.conv2",
                         "branches1.path3.pool1", "branches1.path3.conv1", "branches1"]
    section = view.section("branches1.path2.conv2")
    assert "branches1 › path2 › </span><b>conv2</b>" in section.header.text()
    assert section.layout().contentsMargins().left() == 2 * INDENT
    assert "· branches output · 32 maps 14×14" in view.section("branches1").header.text()


def test_a_wider_network_rebuilds_the_grid_and_updates_reuse_it(view, fake):
    x = np.random.default_rng(2).random((1, 28, 28), dtype=np.float32)
    fake.probeReady.emit(probe_payload(network(), x, 0))
    fake.probeReady.emit(probe_payload(network("small_vgg"), x, 0))
    assert view.layers_shown() == ["conv1", "conv2", "pool1", "conv3", "conv4", "pool2"]
    assert [view.tile_count(n) for n in view.layers_shown()] == [16, 16, 16, 32, 32, 32]
    grid = view.section("conv3").grid
    fake.probeReady.emit(probe_payload(network("small_vgg"), x[:, ::-1].copy(), 1))
    assert view.section("conv3").grid is grid  # same widgets, new pictures


def test_hover_names_layer_channel_and_value_range(view, fake, qtbot):
    net = network()
    x = np.random.default_rng(3).random((1, 28, 28), dtype=np.float32)
    payload = probe_payload(net, x, 1)
    fake.probeReady.emit(payload)
    maps = dict((n, a) for n, _, a in payload.layers)["conv2"]
    grid = view.section("conv2").grid
    qtbot.waitUntil(lambda: grid.width() > 100)
    rect = grid.tile_rect(5)
    assert grid.tile_at(rect.center()) == 5
    with qtbot.waitSignal(grid.hovered) as hovered:
        send_move(grid, rect.center())
    assert hovered.args == [5]
    text = view.hover_label.text()
    assert text == view.tile_text("conv2", 5)
    assert text.startswith("conv2 · channel 5 of 16 · 10×10 · values ")
    assert f"{maps[5].min():.3g} … {maps[5].max():.3g}" in text


def test_images_are_not_transposed(view, fake, qtbot):
    """A bright top-right corner stays top right in the input and in conv/pool maps (no column-major flip)."""
    x = np.zeros((1, 28, 28), np.float32)
    x[0, :6, 20:] = 1.0  # top right only: a transpose would move it to the bottom left
    payload = probe_payload(network(), x, 0)
    pool = np.zeros((6, 14, 14), np.float32)
    pool[:, :3, 10:] = 2.0
    payload = dataclasses.replace(payload, layers=[(n, k, pool if n == "pool1" else a) for n, k, a in payload.layers])
    fake.probeReady.emit(payload)

    for grid in (view.input_grid, view.section("pool1").grid):
        qtbot.waitUntil(lambda g=grid: g.height() >= g.heightForWidth(g.width()) > 50)  # laid out
        image = grid.grab().toImage()
        rect = grid.tile_rect(0)
        top_right = QColor(image.pixel(rect.right() - 3, rect.top() + 3))
        bottom_left = QColor(image.pixel(rect.left() + 3, rect.bottom() - 3))
        assert top_right.value() > 200, grid.objectName()  # white or viridis yellow
        assert bottom_left.value() < 100, grid.objectName()  # black or viridis purple


def test_sample_picker_asks_the_controller_and_shows_the_true_class(view, fake):
    fake.datasetReady.emit(dataset_payload(20))
    assert view.sample_spin.maximum() == 20 and view.sample_spin.text() == "1 of 20"  # people count from 1
    assert fake.probe_requests == [0]
    view.next_button.click()
    view.next_button.click()
    assert fake.probe_requests == [0, 1, 2]
    assert "triangle" in view.truth_label.text()  # val_y = index % 10
    view.prev_button.click()
    assert fake.probe_requests[-1] == 1 and "square" in view.truth_label.text()
    assert view.sample_index == 1


def test_per_layer_scale_keeps_relative_strength(view, fake):
    net = network()
    x = np.random.default_rng(4).random((1, 28, 28), dtype=np.float32)
    payload = probe_payload(net, x, 0)
    maps = np.zeros((6, 14, 14), np.float32)
    maps[0] = 1.0
    maps[1, 0, 0] = 0.5  # a weak channel: bright on its own scale, dim on the layer's
    payload = dataclasses.replace(payload, layers=[(n, k, maps if n == "pool1" else a) for n, k, a in payload.layers])
    fake.probeReady.emit(payload)
    grid = view.section("pool1").grid

    def brightness(tile):
        return QColor(grid.image.pixel(tile * 14, 0)).lightness()

    own_scale = brightness(1)
    view.same_scale.setChecked(True)
    assert brightness(1) < own_scale
    assert brightness(0) == QColor(grid.image.pixel(0, 0)).lightness() > brightness(1)


def test_a_hidden_view_draws_the_latest_probe_when_shown(qtbot, fake):
    w = FeatureMapView(fake)
    qtbot.addWidget(w)
    x = np.random.default_rng(5).random((1, 28, 28), dtype=np.float32)
    fake.probeReady.emit(probe_payload(network(), x, 0))
    assert w.layers_shown() == []
    w.show()
    qtbot.waitExposed(w)
    assert w.layers_shown() == ["conv1", "pool1", "conv2", "pool2"]


def test_a_hidden_view_wants_no_probes_and_asks_for_one_when_shown_during_a_run(qtbot, fake):
    w = FeatureMapView(fake)
    qtbot.addWidget(w)
    fake.datasetReady.emit(dataset_payload(3))
    w.sample_spin.setValue(3)
    w.show()
    qtbot.waitExposed(w)
    w.hide()
    assert fake.probes_wanted[-1] is False
    fake.is_running = True
    fake.probe_requests.clear()
    w.show()
    assert fake.probes_wanted[-1] is True and fake.probe_requests == [2]  # its sample, as the network is now


def test_all_views_follow_a_real_training_run(qtbot, doc):
    """The real TrainingController on a tiny dataset feeds every view (no fake)."""
    from netbuilder.gui.training.controller import TrainingController
    from netbuilder.gui.views.confusion import ConfusionView
    from netbuilder.gui.views.filters import FilterView
    from netbuilder.gui.views.gradients import GradientView

    doc.set_value("dataset", {"kind": "shapes", "train_size": 200, "test_size": 0})
    doc.set_value("training.epochs", 2)
    doc.set_value("training.validation_fraction", 0.2)
    controller = TrainingController(doc)
    views = [FeatureMapView(controller), FilterView(controller), ConfusionView(controller), GradientView(controller)]
    for w in views:
        qtbot.addWidget(w)
        w.show()
    maps, filters, confusion, gradients = views
    try:
        with qtbot.waitSignal(controller.runEnded, timeout=60000):
            assert controller.start()
        qtbot.waitUntil(lambda: maps.layers_shown() != [] and filters.tile_count > 0)
        assert [maps.tile_count(n) for n in maps.layers_shown()] == [6, 6, 16, 16]
        assert maps.sample_spin.maximum() == 40
        assert filters.tile_count == 6
        assert confusion.matrix().shape == (10, 10) and confusion.matrix().sum() == 40
        assert confusion.epoch == 2
        assert gradients.layer_names() == ["conv1", "conv2", "dense1", "dense2", "dense3"]
        xs, ys = gradients.series("conv1")
        assert xs[-1] == 2 and all(v > 0 for v in ys)
        with qtbot.waitSignal(controller.probeReady, timeout=10000) as probe:
            maps.next_button.click()  # idle: the controller probes on demand
        assert probe.args[0].sample_index == 1 == maps.sample_index
    finally:
        controller.shutdown()


def test_the_picker_follows_the_probed_sample_without_asking_again(view, fake):
    fake.datasetReady.emit(dataset_payload(20))
    x = np.random.default_rng(6).random((1, 28, 28), dtype=np.float32)
    payload = probe_payload(network(), x, 3, index=5)
    payload = dataclasses.replace(payload, probabilities=np.full(10, np.nan), predicted=-1)  # a diverged network
    fake.probeReady.emit(payload)
    assert view.sample_index == 5 and view.sample_spin.text() == "6 of 20"
    assert fake.probe_requests == [0]
    assert "Predicted <b>?</b>" in view.prediction_label.text()
    assert "diamond" in view.truth_label.text()


def test_without_a_validation_split_the_picker_says_training_sample(view, fake):
    fake.datasetReady.emit(dataclasses.replace(dataset_payload(5), val_is_train=True))
    assert view.sample_caption.text() == "Training sample (no validation split)"


def test_a_network_without_conv_or_pool_says_so(view, fake):
    net = network("mlp")
    x = np.random.default_rng(7).random(net.project.input_shape, dtype=np.float32)
    fake.probeReady.emit(probe_payload(net, x, 0))
    assert view.layers_shown() == []
    assert view.message.isVisible() and "no convolution or pooling blocks" in view.message.text()
    assert len(view.bars.values()) == net.output_features


def test_mosaic_places_tiles_row_by_row_with_transparent_gaps():
    from netbuilder.gui.views.tiles import mosaic

    tiles = np.arange(1, 4, dtype=np.uint32)[:, None, None] * np.array([[1, 2], [3, 4]], np.uint32)  # 3 tiles 2x2
    out = mosaic(tiles, columns=2, shown=3, th=4, tw=4, gap=1)  # scaled 2x, 2 per row
    assert out.shape == (9, 9)
    assert (out[:4, :4] == np.kron(tiles[0], np.ones((2, 2), np.uint32))).all()  # top-left stays top-left
    assert (out[:4, 5:] == np.kron(tiles[1], np.ones((2, 2), np.uint32))).all()
    assert (out[5:, :4] == np.kron(tiles[2], np.ones((2, 2), np.uint32))).all()
    assert (out[4] == 0).all() and (out[:, 4] == 0).all() and (out[5:, 5:] == 0).all()  # gaps, missing 4th


def test_the_view_fits_the_pane_it_has_at_1024_by_640(view, fake):
    fake.datasetReady.emit(dataset_payload(1200))
    net = network()
    x = np.asarray(dataset_payload(1).val_x[0])
    fake.probeReady.emit(probe_payload(net, x, 3))
    # The right-hand pane of the Training view is about 440 px wide there.
    assert view.minimumSizeHint().width() <= 440
    view.resize(440, 400)
    QApplication.processEvents()
    # All ten classes stay reachable: the bars scroll when the pane is short.
    bars = view.bars
    assert bars.height() >= bars.minimumSizeHint().height()
    assert view.left_scroll.verticalScrollBar().maximum() > 0
