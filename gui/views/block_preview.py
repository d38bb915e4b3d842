"""The inspector's "Output on a sample": what the selected block makes of one image of the chosen
data, at the weights training would start from (or the trained ones, where they still fit),
redrawn as its fields change — so a 5x5 stride-2 convolution can be seen before pressing Train.

The data's samples are read once per dataset (``core.datasets.preview``) and every output is
computed (``core.block_preview``) as a background job; only the newest request is shown.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget

from netbuilder.core.block_preview import BlockOutput, PreviewError, block_output
from netbuilder.core.datasets.preview import preview_dataset
from netbuilder.gui import theme
from netbuilder.gui.background import Jobs
from netbuilder.gui.views.tiles import GREY, SEQUENTIAL, TileGrid, scale_each

DELAY_MS = 150  # typing in a field: one computation after the keystrokes, not one per keystroke


class BlockPreviewView(QWidget):
    """The selected block's output for one sample; ``weights()`` gives trained weights or None."""

    def __init__(self, doc, weights: Callable[[], dict | None] = lambda: None, parent: QWidget | None = None):
        super().__init__(parent)
        self.doc = doc
        self.weights = weights
        self._jobs = Jobs(self)
        self._samples: list[tuple[str, np.ndarray]] = []  # (class name, image) of the data shown
        self._samples_key = None
        self._index = 0
        self._request = 0  # the newest computation asked for; older results are dropped
        self.last: BlockOutput | None = None

        self.header = QLabel("Output on a sample")
        self.header.setTextFormat(Qt.TextFormat.RichText)
        self.previous = QToolButton(text="◀")
        self.next = QToolButton(text="▶")
        self.previous.setToolTip("the previous sample")
        self.next.setToolTip("the next sample (one of each class)")
        self.previous.clicked.connect(lambda: self._step(-1))
        self.next.clicked.connect(lambda: self._step(1))
        self.input_grid = TileGrid(tile_size=48, max_rows=1)
        self.grid = TileGrid(tile_size=40)
        self.caption = QLabel()
        self.caption.setWordWrap(True)
        theme.style(self.caption, "color: {MUTED};")
        self.header.setWordWrap(True)
        sample = QHBoxLayout()
        sample.setContentsMargins(0, 0, 0, 0)
        sample.addWidget(self.input_grid, 1)
        sample.addWidget(self.previous, 0, Qt.AlignmentFlag.AlignTop)
        sample.addWidget(self.next, 0, Qt.AlignmentFlag.AlignTop)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 8, 0, 0)
        box.addWidget(self.header)
        box.addLayout(sample)
        box.addWidget(self.grid)
        box.addWidget(self.caption)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DELAY_MS)
        self._timer.timeout.connect(self._compute)
        doc.selectionChanged.connect(self._schedule)
        doc.inferenceChanged.connect(self._schedule)
        doc.projectReplaced.connect(self._forget_samples)
        self._schedule()

    # --- what is asked -----------------------------------------------------------------------
    def _schedule(self, *_args) -> None:
        if self.doc.block_at(self.doc.selected_path) is None:
            self.hide()
            return
        self.show()
        self._timer.start()

    def _forget_samples(self) -> None:
        self._samples, self._samples_key = [], None

    def _step(self, by: int) -> None:
        if self._samples:
            self._index = (self._index + by) % len(self._samples)
            self._compute()

    def _compute(self) -> None:
        address = self.doc.selected_path
        if self.doc.block_at(address) is None:
            return
        project = self.doc.project.copy()
        base = self.doc.path.parent if self.doc.path else None
        key = repr((project.dataset, str(base)))
        samples = self._samples if key == self._samples_key else None
        weights = self.weights()
        self._request += 1
        request, index = self._request, self._index

        def work(_report):
            found = samples
            if found is None:  # one image of each class, read once per dataset
                preview = preview_dataset(project.dataset, base, per_class=1)
                found = [(name, s[0]) for name, s in zip(preview.class_names, preview.samples) if len(s)]
            if not found:
                raise PreviewError("the data has no images to show")
            name, image = found[index % len(found)]
            return key, found, name, image, block_output(project, image, address, weights)

        self._jobs.start(work, done=lambda result: self._shown(request, result),
                         failed=lambda exc: self._failed(request, exc), name="block-preview")

    # --- what comes back ---------------------------------------------------------------------
    def _shown(self, request: int, result) -> None:
        if request != self._request:
            return
        key, samples, name, image, out = result
        self._samples, self._samples_key = samples, key
        self.last = out
        self._show_input(image)
        values = np.asarray(out.output, np.float32)
        where = ("trained weights" if out.trained and not out.fresh else
                 "the seed's initial weights" if not out.trained else "trained weights where they still fit")
        if values.ndim == 3:
            self.grid.set_tiles(scale_each(values), SEQUENTIAL)
            what = f"{values.shape[0]} map{'s' if values.shape[0] != 1 else ''} {values.shape[1]}×{values.shape[2]}"
        else:
            flat = values.reshape(-1)
            self.grid.set_tiles(scale_each(flat[None, None, :]), SEQUENTIAL)  # one strip of features
            what = f"{flat.size} values"
        theme.set_text(self.header, f"Output on a sample · <b>{out.name}</b> · {what}")
        self.caption.setText(f"sample {self._index % len(samples) + 1} of {len(samples)} ({name}) · {where} · "
                             f"values {float(values.min()):.3g} … {float(values.max()):.3g}")

    def _failed(self, request: int, exc: BaseException) -> None:
        if request != self._request:
            return
        self.last = None
        self.grid.clear()
        self.input_grid.clear()
        theme.set_text(self.header, "Output on a sample")
        self.caption.setText(str(exc) if isinstance(exc, (PreviewError, ValueError, OSError))
                             else f"{type(exc).__name__}: {exc}")

    def _show_input(self, image: np.ndarray) -> None:
        image = np.clip(np.asarray(image, np.float32), 0, 1)
        if image.shape[0] == 3:
            self.input_grid.set_tiles(image.transpose(1, 2, 0)[None])
        else:
            self.input_grid.set_tiles(image[:1], GREY)
