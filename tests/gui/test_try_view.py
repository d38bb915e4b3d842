"""The Try view: a drawn image, a dropped PNG, JPEG and palette PNG with alpha, and the clipboard are
classified as the engine classifies the same preprocessed array; saliency over the image; the
feature maps of every conv and pool block; "train first" without trained weights."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QObject, QPoint, QPointF, Qt, QUrl, Signal
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent, QGuiApplication, QImage
from PySide6.QtWidgets import QApplication

from netbuilder.core.network import Network
from netbuilder.gui.try_view import TryView, network_input

CLASSES = ["circle", "square", "triangle", "diamond", "plus", "cross", "star", "bar", "heart", "crescent"]


class TrainedController(QObject):
    """The controller's part the view uses, with "trained" weights (seeded, not really trained)."""

    trainedChanged = Signal(bool)
    runEnded = Signal(object)
    epochEnded = Signal(object)

    def __init__(self, doc):
        super().__init__()
        self.doc = doc
        self.class_names = list(CLASSES)
        self.has_trained = True
        self.net = Network(doc.project.copy(), rng=np.random.default_rng(4))

    def trained_network(self):
        copy = Network(self.net.project.copy())
        copy.load_state_dict(self.net.state_dict())
        return copy


@pytest.fixture
def view(doc, qtbot):
    v = TryView(TrainedController(doc))
    qtbot.addWidget(v)
    v.resize(1100, 700)
    v.show()
    yield v
    v.shutdown()


def shown(qtbot, view, action):
    with qtbot.waitSignal(view.resultShown, timeout=4000) as blocker:
        action()
    return blocker.args[0]


def assert_engine_agrees(view, result):
    net = view.controller.trained_network()
    expected = net.predict(result.input[None])[0]
    np.testing.assert_allclose(result.probabilities, expected, rtol=1e-5, atol=1e-7)
    assert result.predicted == int(np.argmax(expected))
    np.testing.assert_allclose(view.bars.values(), expected, rtol=1e-5, atol=1e-7)
    assert CLASSES[result.predicted] in view.prediction_label.text()


def test_a_drawn_stroke_is_classified_as_the_engine_does(view, qtbot):
    view.brush_spin.setValue(3)
    result = shown(qtbot, view, lambda: view.sketch.stroke([(6, 6), (14, 20), (22, 8)]))
    assert result.source == "drawing" and result.trained
    np.testing.assert_array_equal(result.input, view.sketch.array())
    assert result.input.shape == (1, 28, 28) and result.input.max() > 0.9 and result.input[0, 0, 0] == 0
    assert_engine_agrees(view, result)
    assert view.layers_shown() == ["conv1", "pool1", "conv2", "pool2"]
    # saliency: the input's size, in [0, 1]; Grad-CAM on the last convolution, selectable
    heat = view.overlay_heat()
    assert heat.shape == (28, 28) and 0 <= heat.min() and heat.max() <= 1
    view.overlay_box.setCurrentIndex(view.overlay_box.findData("gradcam"))
    assert result.saliency.cam_block == "conv2" and "conv2" in view.overlay_caption.text()
    np.testing.assert_array_equal(view.overlay_heat(), result.saliency.grad_cam)
    assert "Train first" not in view.weights_label.text()


def test_drawing_with_the_mouse_clear_and_invert(view, qtbot):
    pad = view.sketch
    start = QPointF(1 + 10 * pad.scale, 1 + 10 * pad.scale)
    with qtbot.waitSignal(view.resultShown, timeout=4000):
        qtbot.mousePress(pad, Qt.MouseButton.LeftButton, pos=start.toPoint())
        qtbot.mouseRelease(pad, Qt.MouseButton.LeftButton, pos=start.toPoint())
    assert pad.array()[0, 10, 10] > 0.5
    qtbot.waitUntil(lambda: not view.busy)
    result = shown(qtbot, view, pad.invert)
    assert result.input[0, 0, 0] == 1.0 and result.input[0, 10, 10] < 0.5
    qtbot.waitUntil(lambda: not view.busy)
    shown(qtbot, view, pad.clear)
    assert pad.is_blank()


def drop(view, mime: QMimeData, target=None) -> None:
    """Enter, move and drop, as Qt delivers a drag; onto ``target`` (a child: the whole view takes drops)."""
    target = target if target is not None else view
    pos = QPoint(target.width() // 2, target.height() // 2)
    args = (Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    enter = QDragEnterEvent(pos, *args)
    QApplication.sendEvent(target, enter)
    assert enter.isAccepted()
    QApplication.sendEvent(target, QDragMoveEvent(pos, *args))
    QApplication.sendEvent(target, QDropEvent(QPointF(pos), *args))


def files(tmp_path):
    rng = np.random.default_rng(0)
    png = tmp_path / "shape.png"
    Image.fromarray((rng.random((40, 60)) * 255).astype(np.uint8)).save(png)
    jpeg = tmp_path / "photo.jpg"
    Image.fromarray((rng.random((50, 30, 3)) * 255).astype(np.uint8)).save(jpeg, quality=90)
    palette = tmp_path / "palette.png"
    im = Image.fromarray(rng.integers(0, 4, (28, 28)).astype(np.uint8), mode="P")
    im.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255] + [0] * (256 * 3 - 12))
    im.info["transparency"] = 0  # red is see-through: black after compositing
    im.save(palette, transparency=0)
    return [png, jpeg, palette]


def test_dropped_png_jpeg_and_palette_png_with_alpha_are_prepared_and_classified(view, qtbot, tmp_path):
    for path, target in zip(files(tmp_path), (view, view.bars, view.sketch)):
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(path))])
        result = shown(qtbot, view, lambda m=mime, t=target: drop(view, m, t))
        assert result.source == path.name
        # exactly the shared preprocessing's array, and the engine's prediction for it
        np.testing.assert_array_equal(result.input, network_input(str(path), view.controller.doc.project))
        assert result.input.shape == (1, 28, 28) and result.input.dtype == np.float32
        assert_engine_agrees(view, result)
        qtbot.waitUntil(lambda: not view.busy)
    # the palette image's transparent pixels (index 0) are black, white ones white
    index = np.asarray(Image.open(tmp_path / "palette.png"))
    assert np.all(result.input[0][index == 0] == 0) and np.all(result.input[0][index == 3] == 1)


def test_dropped_image_data_and_the_clipboard(view, qtbot):
    image = QImage(20, 20, QImage.Format.Format_RGB32)
    image.fill(Qt.GlobalColor.white)
    mime = QMimeData()
    mime.setImageData(image)
    result = shown(qtbot, view, lambda: drop(view, mime))
    assert result.source == "dropped image" and result.input.max() == 1.0
    assert result.input.min() == 1.0  # "fit": a square image fills the square input
    qtbot.waitUntil(lambda: not view.busy)
    QGuiApplication.clipboard().setImage(image)
    result = shown(qtbot, view, view.paste)
    assert result.source == "clipboard"
    assert_engine_agrees(view, result)
    QGuiApplication.clipboard().clear()
    assert not view.paste() and "no image" in view.status_label.text()


def test_without_trained_weights_it_says_train_first_and_uses_fresh_weights(doc, controller, qtbot):
    view = TryView(controller)
    qtbot.addWidget(view)
    assert "Train first" in view.weights_label.text() and "untrained" in view.weights_label.text()
    with qtbot.waitSignal(view.resultShown, timeout=4000) as blocker:
        view.sketch.stroke([(4, 4), (20, 20)])
    result = blocker.args[0]
    assert not result.trained and "untrained weights" in view.prediction_label.text()
    expected = Network(doc.project.copy()).predict(result.input[None])[0]
    np.testing.assert_allclose(result.probabilities, expected, rtol=1e-6)
    view.shutdown()


def test_an_unreadable_file_is_named_in_the_status_line(view, qtbot, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    view.open_image(str(bad))
    qtbot.waitUntil(lambda: "Cannot classify" in view.status_label.text(), timeout=4000)


def test_the_window_has_a_try_mode_on_ctrl_4_next_to_build_and_training(window, qtbot):
    window.show()
    assert window.try_mode_action.shortcut().toString() == "Ctrl+4"
    assert window.try_mode_action in window.view_menu.actions()
    assert window.toolbar.widgetForAction(window.try_mode_action) is not None
    window.try_mode_action.trigger()
    assert window.mode == "try" and window.pages.currentWidget() is window.try_view
    assert window.try_mode_action.isChecked() and not window.palette_dock.isVisible()
    window.train_mode_action.trigger()
    window.try_mode_action.trigger()
    window.build_mode_action.trigger()  # the builder's docks come back as they were
    assert window.pages.currentWidget() is window.canvas and window.palette_dock.isVisible()
    window.set_mode("try")
    qtbot.waitUntil(lambda: window.try_view.hasFocus() or window.try_view.isAncestorOf(QApplication.focusWidget()))
    with qtbot.waitSignal(window.try_view.resultShown, timeout=4000) as blocker:
        window.try_view.sketch.stroke([(8, 8), (20, 20)])
    assert not blocker.args[0].trained  # nothing trained yet: fresh weights, labelled
