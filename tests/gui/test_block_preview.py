"""The inspector's "Output on a sample": the selected block's maps, redrawn as its fields change."""
import numpy as np
from PySide6.QtWidgets import QSpinBox

from netbuilder.gui.inspector import Inspector
from netbuilder.gui.views.block_preview import BlockPreviewView

WAIT = 20000  # ms: the first read of the built-in data takes a moment on a busy machine


def make(qtbot, doc, weights=lambda: None):
    inspector = Inspector(doc)
    view = BlockPreviewView(doc, weights)
    inspector.add_section(view)
    qtbot.addWidget(inspector)
    inspector.show()
    return inspector, view


def test_a_selected_block_shows_its_maps_and_a_change_of_filters_redraws_them(qtbot, doc):
    inspector, view = make(qtbot, doc)
    assert view.isHidden()  # nothing selected: the project page has no block to show
    doc.select(0)  # conv1: 6 maps of 28 x 28
    qtbot.waitUntil(lambda: view.last is not None and view.last.name == "conv1", timeout=WAIT)
    assert view.grid.count == 6 and view.last.output.shape == (6, 28, 28)
    assert "the seed's initial weights" in view.caption.text() and "sample 1 of 10" in view.caption.text()
    inspector.findChild(QSpinBox, "filters").setValue(4)  # typed in the inspector
    qtbot.waitUntil(lambda: view.grid.count == 4, timeout=WAIT)
    view.next.click()
    qtbot.waitUntil(lambda: "sample 2 of 10" in view.caption.text(), timeout=WAIT)


def test_an_impossible_setting_is_explained_instead_of_maps(qtbot, doc):
    _, view = make(qtbot, doc)
    doc.select(1)
    qtbot.waitUntil(lambda: view.last is not None, timeout=WAIT)
    doc.set_block_field(1, "size", 99)
    qtbot.waitUntil(lambda: "fix this first" in view.caption.text(), timeout=WAIT)
    assert view.last is None and view.grid.count == 0


def test_trained_weights_are_named_when_they_are_used(qtbot, doc):
    from netbuilder.core.network import Network

    weights = Network(doc.project, rng=np.random.default_rng(3)).state_dict()
    _, view = make(qtbot, doc, lambda: weights)
    doc.select(2)
    qtbot.waitUntil(lambda: view.last is not None, timeout=WAIT)
    assert view.last.trained == 4 and "trained weights" in view.caption.text()
