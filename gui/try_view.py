"""The Try view: show the trained network an image of one's own and see what it thinks and where it looked.

An image comes from a file (Open Image…, any format Pillow reads), a drop onto the view (files or
image data), the clipboard (Paste, Ctrl+V) or the drawing pad at the network's input size (brush
size, clear, invert). The view shows the input exactly as the network sees it (after the
dataset's resize mode and channel conversion), the class probabilities as bars, the feature maps
of every conv and pool block (blocks inside groups too, by path) and a saliency map over the image:
the input gradient |∂ logit / ∂ x| (max over channels) or Grad-CAM on the last convolution
(``netbuilder.core.saliency`` says how each is defined).

The network is the training controller's trained copy; before anything is trained the view says
so and uses fresh (untrained) weights, labelled as such. The work (preparing the image, the
forward pass, the saliency maps) runs off the GUI thread through ``Jobs``, one job at a time:
a request made meanwhile waits, and only the latest waiting one runs.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt, Signal
from PySide6.QtGui import QAction, QDragEnterEvent, QDropEvent, QGuiApplication, QImage, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from netbuilder.core import saliency
from netbuilder.core.images import prepare_image
from netbuilder.core.network import Network
from netbuilder.gui import theme
from netbuilder.gui.background import Jobs
from netbuilder.gui.views.feature_maps import LayerSections, ProbabilityBars, class_name
from netbuilder.gui.views.sketch import SketchPad
from netbuilder.gui.views.tiles import TileGrid, _lut, scale_together

OVERLAYS = (("gradient", "Input gradient |∂ score / ∂ x|"), ("gradcam", "Grad-CAM (last convolution)"),
            ("none", "No overlay"))
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp *.gif *.tif *.tiff *.webp *.ppm *.pgm *.pbm);;All files (*)"


def resize_mode(project) -> str:
    """How the project's dataset resizes images ("fit" unless its spec says otherwise)."""
    spec = project.dataset if isinstance(project.dataset, dict) else {}
    mode = spec.get("resize", "fit")
    return mode if isinstance(mode, str) else "fit"


def network_input(source, project) -> np.ndarray:
    """``source`` (a path, image bytes, a PIL image or an array) as (C, H, W) float32 in [0, 1], as the
    network sees it: ``core.images.prepare_image`` at the project's input shape and resize mode,
    the same step the image-folder loader takes."""
    return prepare_image(source, tuple(project.input_shape), resize_mode(project))


def qimage_bytes(image: QImage) -> bytes:
    """A QImage (clipboard, dropped data) as PNG bytes, for ``network_input``."""
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    buffer.close()
    return bytes(data.data())


@dataclass
class TryResult:
    """What one image made of the network: computed in the background, drawn on the GUI thread."""

    source: str  # "drawing", a file name, "clipboard", "dropped image"
    input: np.ndarray  # (C, H, W), as the network sees it
    probabilities: np.ndarray  # (K,) the network's output (K = 1: the probability of class 1)
    predicted: int
    layers: list  # [(path, kind, output (C, H, W) or (n,)), ...] as Trainer.probe gives
    saliency: saliency.Saliency | None
    trained: bool


def classify(network: Network, x: np.ndarray, source: str, trained: bool) -> TryResult:
    """The forward pass (every block's output) and the saliency maps of the predicted class."""
    stages = network.forward_stages(x[None])
    layers = [(stage.path, stage.info.kind, np.array(out[0], copy=True)) for stage, out in stages]
    outputs = stages[-1][1].reshape(1, -1)
    predicted = int(network.classify(outputs)[0]) if np.isfinite(outputs).all() else -1
    maps = saliency.explain(network, x, predicted) if predicted >= 0 else None
    return TryResult(source, x, outputs[0].copy(), predicted, layers, maps, trained)


HEAT = _lut("inferno")  # saliency: black (nothing) through red to yellow (most)


def overlay(image: np.ndarray, heat: np.ndarray | None, dim: float = 0.45) -> np.ndarray:
    """(H, W, 3) RGB in [0, 1]: the image in grey or colour, and with ``heat`` ([0, 1]) the image
    dimmed to ``dim`` under the heat's colours, which cover it as much as they are hot."""
    c = image.shape[0]
    base = np.repeat(image[:1], 3, axis=0) if c != 3 else image
    base = base.transpose(1, 2, 0)
    inside = base.size and float(base.min()) >= 0 and float(base.max()) <= 1
    base = base if inside else scale_together(base)
    if heat is None:
        return base
    colours = HEAT[np.clip(heat * 255 + 0.5, 0, 255).astype(np.uint8)].astype(np.float32) / 255
    alpha = np.sqrt(np.clip(heat, 0, 1))[..., None]  # faint evidence still shows
    return base * dim * (1 - alpha) + colours * alpha


class TryView(QWidget):
    """Classify an image of one's own with the trained network (see the module)."""

    resultShown = Signal(object)  # the TryResult just drawn (tests wait for it)

    def __init__(self, controller, parent: QWidget | None = None):
        super().__init__(parent)
        self.controller = controller
        self.doc = controller.doc
        self._jobs = Jobs(self)
        self._pending: tuple | None = None  # (source, label) waiting for the job in flight
        self._last: TryResult | None = None
        self._network: Network | None = None
        self.setAcceptDrops(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # Ctrl+V pastes here once the view is shown

        # --- sources
        self.open_button = QPushButton("Open Image…")
        self.open_button.setToolTip("Classify an image file (PNG, JPEG, BMP, GIF, TIFF, WebP…)")
        self.open_button.clicked.connect(lambda: self.open_image())
        self.paste_action = QAction("Paste Image", self)
        self.paste_action.setShortcut(QKeySequence.StandardKey.Paste)
        self.paste_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.paste_action.triggered.connect(self.paste)
        self.addAction(self.paste_action)
        self.paste_button = QPushButton("Paste")
        self.paste_button.setToolTip("Classify the image on the clipboard (Ctrl+V)")
        self.paste_button.clicked.connect(self.paste)
        self.weights_label = QLabel()
        self.weights_label.setWordWrap(True)
        sources = QHBoxLayout()
        sources.addWidget(self.open_button)
        sources.addWidget(self.paste_button)
        hint = QLabel("or drop an image here, or draw one below")
        theme.style(hint, "color: {MUTED};")
        sources.addWidget(hint)
        sources.addStretch(1)

        # --- drawing pad
        self.sketch = SketchPad()
        self.sketch.drawn.connect(self.classify_drawing)
        self.brush_spin = QSpinBox()
        self.brush_spin.setObjectName("brush_size")
        self.brush_spin.setRange(1, 12)
        self.brush_spin.setValue(2)
        self.brush_spin.setPrefix("brush ")
        self.brush_spin.setSuffix(" px")
        self.brush_spin.setToolTip("The brush's width, in the network's input pixels")
        self.brush_spin.valueChanged.connect(lambda v: setattr(self.sketch, "brush", float(v)))
        self.clear_button = QPushButton("Clear")
        self.clear_button.clicked.connect(self.sketch.clear)
        self.invert_button = QPushButton("Invert")
        self.invert_button.setToolTip("Swap dark and light (a dark digit on white paper becomes MNIST-like)")
        self.invert_button.clicked.connect(self.sketch.invert)
        self.colour_button = QPushButton("Colour…")
        self.colour_button.setToolTip("The brush's colour (colour inputs only)")
        self.colour_button.clicked.connect(self._choose_colour)
        pad_tools = QHBoxLayout()
        for w in (self.brush_spin, self.clear_button, self.invert_button, self.colour_button):
            pad_tools.addWidget(w)
        pad_tools.addStretch(1)
        self.sketch_caption = QLabel()
        left = QWidget()
        lbox = QVBoxLayout(left)
        lbox.setContentsMargins(0, 0, 6, 0)
        lbox.addWidget(self.sketch_caption)
        lbox.addWidget(self.sketch)
        lbox.addLayout(pad_tools)
        lbox.addStretch(1)

        # --- what the network sees, and what it thinks
        self.input_caption = QLabel("<b>As the network sees it</b>")
        self.input_grid = TileGrid(tile_size=160)
        self.input_grid.setObjectName("try_input")
        self.overlay_box = QComboBox()
        for key, text in OVERLAYS:
            self.overlay_box.addItem(text, key)
        self.overlay_box.setToolTip("Input gradient: how much each pixel moves the top class's score (its logit).\n"
                                    "Grad-CAM: where the last convolution's maps speak for the top class.")
        self.overlay_box.currentIndexChanged.connect(self._draw_overlay)
        self.overlay_grid = TileGrid(tile_size=160)
        self.overlay_grid.setObjectName("try_overlay")
        self.overlay_caption = QLabel()
        self.overlay_caption.setWordWrap(True)
        theme.style(self.overlay_caption, "color: {MUTED};")
        self.prediction_label = QLabel()
        self.prediction_label.setWordWrap(True)
        self.bars = ProbabilityBars()
        middle = QWidget()
        mbox = QVBoxLayout(middle)
        mbox.setContentsMargins(6, 0, 6, 0)
        images = QHBoxLayout()
        seen = QVBoxLayout()
        seen.addWidget(self.input_caption)
        seen.addWidget(self.input_grid)
        seen.addStretch(1)
        looked = QVBoxLayout()
        looked.addWidget(self.overlay_box)
        looked.addWidget(self.overlay_grid)
        looked.addWidget(self.overlay_caption)
        looked.addStretch(1)
        images.addLayout(seen)
        images.addLayout(looked)
        mbox.addLayout(images)
        mbox.addWidget(self.prediction_label)
        mbox.addWidget(self.bars)
        mbox.addStretch(1)

        # --- feature maps
        self.layers = LayerSections()
        self.maps_scroll = QScrollArea()
        self.maps_scroll.setWidgetResizable(True)
        self.maps_scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.maps_scroll.setWidget(self.layers)
        self.maps_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.maps_message = QLabel()
        self.maps_message.setWordWrap(True)
        theme.style(self.maps_message, "color: {MUTED};")
        right = QWidget()
        rbox = QVBoxLayout(right)
        rbox.setContentsMargins(0, 0, 0, 0)
        rbox.addWidget(QLabel("<b>Feature maps</b>"))
        rbox.addWidget(self.maps_message)
        rbox.addWidget(self.maps_scroll, 1)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        for w in (left, middle, right):
            self.splitter.addWidget(w)
        self.splitter.setStretchFactor(2, 1)

        self.status_label = QLabel(" ")
        theme.style(self.status_label, "color: {MUTED};")
        box = QVBoxLayout(self)
        box.setContentsMargins(6, 6, 6, 6)
        box.addLayout(sources)
        box.addWidget(self.weights_label)
        box.addWidget(self.splitter, 1)
        box.addWidget(self.status_label)

        controller.trainedChanged.connect(self._forget_network)
        controller.runEnded.connect(self._forget_network)
        controller.epochEnded.connect(self._forget_network)
        self.doc.projectReplaced.connect(self._forget_network)
        self.doc.inferenceChanged.connect(self._forget_network)
        self._forget_network()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self.isAncestorOf(QApplication.focusWidget()):
            self.setFocus()

    # --- the network ---------------------------------------------------------------------------
    def _forget_network(self, *_) -> None:
        """The weights or the project changed: the next image takes a new copy."""
        self._network = None
        self._update_weights_label()
        inference = self.doc.inference
        shape = tuple(inference.input_shape) if inference is not None else ()
        if len(shape) == 3 and shape[0] in (1, 3):
            self.sketch.set_shape(*shape)
        self.colour_button.setVisible(self.sketch.shape[0] == 3)
        c, h, w = self.sketch.shape
        theme.set_text(self.sketch_caption, f"<b>Draw</b> <span style='color:{{MUTED}}'>· {c}×{h}×{w}, "
                                            f"{'grey' if c == 1 else 'colour'}</span>")

    def _update_weights_label(self) -> None:
        if self.controller.has_trained:
            theme.set_text(self.weights_label, "<span style='color:{MUTED}'>The trained network's weights.</span>")
        else:
            theme.set_text(self.weights_label, "<b style='color:{WARNING_TEXT}'>Train first</b> (F5): nothing has "
                                               "been trained yet, so this shows what <b>fresh, untrained "
                                               "weights</b> make of the image.")

    def network(self) -> tuple[Network | None, bool]:
        """(the network to try, whether its weights are trained); None when the project has errors."""
        if self._network is None:
            trained = self.controller.trained_network()
            if trained is not None:
                self._network, self._trained = trained, True
            elif not self.doc.inference.errors:
                self._network, self._trained = Network(self.doc.project.copy()), False
            else:
                return None, False
        return self._network, self._trained

    # --- sources -------------------------------------------------------------------------------
    def open_image(self, path: str | None = None) -> None:
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Classify an Image", "", IMAGE_FILTER)
        if path:
            self.submit(str(path), os.path.basename(str(path)))

    def paste(self) -> bool:
        """Classify the clipboard's image; False (and a word in the status line) when it holds none."""
        mime = QGuiApplication.clipboard().mimeData()
        if mime is not None and mime.hasImage():
            image = QImage(mime.imageData())
            if not image.isNull():
                self.submit(qimage_bytes(image), "clipboard")
                return True
        if mime is not None and mime.hasUrls() and mime.urls()[0].isLocalFile():
            self.open_image(mime.urls()[0].toLocalFile())
            return True
        self.status_label.setText("The clipboard holds no image")
        return False

    def classify_drawing(self) -> None:
        self.submit(self.sketch.array(), "drawing")

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        mime = event.mimeData()
        if mime.hasImage() or (mime.hasUrls() and any(u.isLocalFile() for u in mime.urls())):
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:
        event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        mime = event.mimeData()
        files = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()] if mime.hasUrls() else []
        if files:
            self.open_image(files[0])
        elif mime.hasImage():
            self.submit(qimage_bytes(QImage(mime.imageData())), "dropped image")
        else:
            return
        event.acceptProposedAction()

    # --- the work ------------------------------------------------------------------------------
    def submit(self, source, label: str) -> None:
        """Classify ``source`` (path, image bytes or (C, H, W) array) in the background."""
        if self._jobs.busy:
            self._pending = (source, label)  # only the latest waiting request runs
            return
        network, trained = self.network()
        if network is None:
            self.status_label.setText("The network has errors: fix the red blocks in the Build view first")
            return
        project = network.project
        self.status_label.setText(f"Classifying {label}…")

        def work(report):
            x = network_input(source, project)
            return classify(network, x, label, trained)
        self._jobs.start(work, done=self._done, failed=self._failed, name="try")

    def _next(self) -> None:
        if self._pending is not None:
            source, label = self._pending
            self._pending = None
            self.submit(source, label)

    def _failed(self, exc: BaseException) -> None:
        self.status_label.setText(f"Cannot classify that: {exc}")
        self._next()

    def _done(self, result: TryResult) -> None:
        if self._pending is None:
            self.show_result(result)
        self._next()

    @property
    def busy(self) -> bool:
        return self._jobs.busy or self._pending is not None

    # --- drawing the result ----------------------------------------------------------------------
    def show_result(self, result: TryResult) -> None:
        self._last = result
        x = result.input
        c, h, w = x.shape
        self.input_grid.set_tiles(overlay(x, None)[None])
        theme.set_text(self.input_caption, f"<b>As the network sees it</b> <span style='color:{{MUTED}}'>· "
                                           f"{c}×{h}×{w} · {result.source}</span>")
        names = list(self.controller.class_names or [])
        k = result.predicted if result.predicted >= 0 else None
        probs = result.probabilities
        if len(probs) == 1:  # one sigmoid unit: the probability of class 1
            probs = np.array([1 - probs[0], probs[0]], np.float32)
        self.bars.set_probabilities(probs, names, None, k)
        confidence = f" · {float(probs[k]):.0%}" if k is not None else ""
        untrained = "" if result.trained else " <span style='color:{WARNING_TEXT}'>(untrained weights)</span>"
        theme.set_text(self.prediction_label, f"Predicted <b>{class_name(names, k)}</b>{confidence}{untrained}")
        self._draw_maps(result.layers)
        self._draw_overlay()
        self.status_label.setText(" ")
        self.resultShown.emit(result)

    def _draw_overlay(self, *_) -> None:
        result = self._last
        if result is None:
            return
        key = self.overlay_box.currentData()
        maps = result.saliency
        heat, text = None, ""
        if maps is not None and key == "gradient":
            heat = maps.input_gradient
            text = "Bright: pixels whose change moves the top class's score most (|∂ logit / ∂ x|, max over channels)."
        elif maps is not None and key == "gradcam":
            if maps.grad_cam is None:
                text = "Grad-CAM needs a convolution block: this network has none."
            else:
                heat = maps.grad_cam
                text = (f"Grad-CAM on {maps.cam_block.replace('.', ' › ')}: its maps weighted by how much they "
                        "raise the top class's score, upsampled.")
        self.overlay_grid.set_tiles(overlay(result.input, heat)[None])
        self.overlay_caption.setText(text)

    def overlay_heat(self) -> np.ndarray | None:
        """The heat map shown now (for tests), or None."""
        maps = self._last.saliency if self._last is not None else None
        key = self.overlay_box.currentData()
        if maps is None or key == "none":
            return None
        return maps.input_gradient if key == "gradient" else maps.grad_cam

    def _draw_maps(self, layers: list) -> None:
        maps = self.layers.show_layers(layers, False)
        self.maps_message.setText("" if maps else "This network has no convolution or pooling blocks: "
                                                  "no feature maps to show.")
        self.maps_message.setVisible(not maps)

    def layers_shown(self) -> list[str]:
        return list(self.layers.sections)

    @property
    def last_result(self) -> TryResult | None:
        return self._last

    def _choose_colour(self) -> None:
        from PySide6.QtWidgets import QColorDialog

        colour = QColorDialog.getColor(self.sketch.colour, self, "Brush Colour")
        if colour.isValid():
            self.sketch.colour = colour

    def shutdown(self) -> None:
        """The window is closing: wait for a classification in progress (a fraction of a second)."""
        self._pending = None
        self._jobs.wait(5)


__all__ = ["TryView", "TryResult", "classify", "network_input", "overlay"]
