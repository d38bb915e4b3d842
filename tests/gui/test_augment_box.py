"""The Data tab's augmentation box: the settings edit the project (undoably) and the augmented
copies of a sample show what the network will see."""
import numpy as np

from netbuilder.core.augment import Augmentation, augmentation_rng
from netbuilder.gui.views.augment_box import COPIES, AugmentBox


def test_settings_edit_the_project_one_undo_step_each_and_copies_are_the_runs(qtbot, doc):
    box = AugmentBox(doc)
    qtbot.addWidget(box)
    sample = np.random.default_rng(0).random((1, 28, 28), dtype=np.float32)
    box.set_sample(sample)
    assert doc.project.training.augmentation is None and box.shown == 0
    assert "No augmentation" in box.summary.text()
    box.editors["shift"].setValue(2)
    box.editors["flip"].setValue(0.5)
    assert doc.project.training.augmentation == {"shift": 2, "flip": 0.5}
    assert box.shown == COPIES and "shift 2 px" in box.summary.text()
    expected = Augmentation(shift=2, flip=0.5).augment(np.repeat(sample[None], COPIES, axis=0),
                                                      augmentation_rng(doc.project.training.seed))
    assert not np.allclose(expected[0], expected[1])  # different copies: what the run's generator draws
    doc.undo_stack.undo()
    assert doc.project.training.augmentation == {"shift": 2} and box.editors["flip"].value() == 0
    box.editors["shift"].setValue(0)
    assert doc.project.training.augmentation is None and box.shown == 0


def test_the_data_tab_shows_the_copies_of_its_first_sample(qtbot, doc):
    from tests.gui.test_data_panel import loaded, make_panel
    from tests.gui.test_feature_maps import FakeController

    panel = make_panel(qtbot, doc, FakeController())
    qtbot.waitUntil(loaded(panel, "shapes"), timeout=20000)
    panel.augment_box.editors["rotate"].setValue(20)
    assert panel.augment_box.shown == COPIES
