"""The Data tab's augmentation settings and what they do: the project's ``training.augmentation``
edited field by field (each change one undo step), and a row of augmented copies of one image of
the data, drawn with the run's own generator, so the user sees what the network will see."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSignalBlocker
from PySide6.QtWidgets import QDoubleSpinBox, QFormLayout, QGroupBox, QLabel, QSpinBox, QVBoxLayout, QWidget

from netbuilder.core.augment import Augmentation, augmentation_rng
from netbuilder.gui import theme
from netbuilder.gui.views.tiles import GREY, TileGrid

KEY = "training.augmentation"
COPIES = 8  # augmented copies of the sample shown
# (setting, label, maximum, step, decimals, tip); shift is in whole pixels
FIELDS = (
    ("shift", "shift (px)", 8, 1, 0, "each image moved up to this many pixels in x and y, zeros filling in"),
    ("flip", "flip", 1.0, 0.1, 2, "share of images mirrored left to right (0.5: half)"),
    ("rotate", "rotate (°)", 45.0, 5.0, 1, "each image turned by up to this many degrees either way"),
    ("contrast", "contrast", 1.0, 0.05, 2, "each image's contrast scaled by 1 ± this"),
    ("brightness", "brightness", 1.0, 0.05, 2, "each image lightened or darkened by up to this"),
    ("noise", "noise", 0.5, 0.01, 3, "Gaussian noise of this standard deviation added to the pixels"),
)


class AugmentBox(QGroupBox):
    """Augmentation fields of ``doc``'s training settings and the augmented copies of ``sample()``."""

    def __init__(self, doc, parent: QWidget | None = None):
        super().__init__("Augmentation (training images only)", parent)
        self.doc = doc
        self._sample: np.ndarray | None = None
        self.editors: dict[str, QSpinBox | QDoubleSpinBox] = {}
        form = QFormLayout()
        for name, label, maximum, step, decimals, tip in FIELDS:
            spin = QSpinBox() if decimals == 0 else QDoubleSpinBox()
            spin.setObjectName(f"augmentation.{name}")
            spin.setRange(0, maximum)
            spin.setSingleStep(step)
            if decimals:
                spin.setDecimals(decimals)
            spin.setToolTip(tip)
            spin.setKeyboardTracking(False)  # one edit (and undo step) per value
            spin.valueChanged.connect(lambda value, n=name: self._commit(n, value))
            self.editors[name] = spin
            form.addRow(label, spin)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        theme.style(self.summary, "color: {MUTED};")
        self.copies = TileGrid(tile_size=44, max_rows=1)
        box = QVBoxLayout(self)
        box.addLayout(form)
        box.addWidget(self.summary)
        box.addWidget(self.copies)
        doc.valueChanged.connect(lambda key: self.refresh() if key == KEY else None)
        doc.projectReplaced.connect(self.refresh)
        doc.lockChanged.connect(lambda reason: self.setEnabled(not reason))
        self.refresh()

    def set_sample(self, image: np.ndarray | None) -> None:
        """The image (C, H, W) in [0, 1] whose augmented copies are shown (the data's first sample)."""
        self._sample = None if image is None else np.asarray(image, np.float32)
        self._draw()

    def augmentation(self) -> Augmentation:
        try:
            return Augmentation.from_spec(self.doc.project.training.augmentation)
        except ValueError:  # a hand-edited value out of range: the problem is shown with the project's
            return Augmentation()

    def refresh(self) -> None:
        spec = self.doc.project.training.augmentation or {}
        for name, spin in self.editors.items():
            with QSignalBlocker(spin):
                spin.setValue(spec.get(name, 0) if isinstance(spec, dict) else 0)
        self._draw()

    def _commit(self, name: str, value) -> None:
        spec = dict(self.doc.project.training.augmentation or {})
        value = int(value) if name == "shift" else round(float(value), 6)
        if value:
            spec[name] = value
        else:
            spec.pop(name, None)
        self.doc.set_value(KEY, spec or None)

    def _draw(self) -> None:
        aug = self.augmentation()
        self.summary.setText(f"{aug.describe()}: what the network sees of one image, {COPIES} times"
                             if aug.enabled else "No augmentation: the network sees the images as they are.")
        if self._sample is None or not aug.enabled:
            self.copies.clear()
            return
        seed = self.doc.project.training.seed
        copies = aug.augment(np.repeat(self._sample[None], COPIES, axis=0), augmentation_rng(seed))
        if copies.shape[1] == 3:
            self.copies.set_tiles(copies.transpose(0, 2, 3, 1))
        else:
            self.copies.set_tiles(copies[:, 0], GREY)

    @property
    def shown(self) -> int:
        return self.copies.count

