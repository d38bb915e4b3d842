"""The Evaluation tab: after a run, core.metrics' report on the held-out images, and a gallery of
the most confidently wrong ones that opens in the Try view."""
import numpy as np

from netbuilder.core.metrics import evaluate_network
from netbuilder.gui.window_actions import TRY
from tests.gui.test_training import RUN, tiny


def test_a_run_ends_with_the_report_and_a_mistake_opens_in_the_try_view(window, doc, qtbot):
    tiny(doc, epochs=1)
    with qtbot.waitSignal(window.controller.runEnded, timeout=RUN):
        assert window.start_training()
    view = window.evaluation
    qtbot.waitUntil(lambda: view.report is not None, timeout=RUN)
    trainer = window.controller._session.trainer
    x, y = trainer.validation_data()
    expected = evaluate_network(trainer.network, x, y, list(window.controller.class_names), wrong=12)
    assert view.report.accuracy == expected.accuracy and (view.report.matrix == expected.matrix).all()
    assert view.table.rowCount() == 10 and view.table.item(0, 0).text() == "circle"
    assert view.table.item(0, 4).text() == str(int(expected.support[0]))
    assert f"{100 * expected.accuracy:.1f}%" in view.header.text()
    assert view.gallery.count == len(expected.mistakes) > 0  # one epoch on 270 images: mistakes aplenty
    first = expected.mistakes[0]
    assert view._tile_text(0).startswith(f"true {window.controller.class_names[first.true]} → predicted")
    submitted = []
    window.try_view.submit = lambda image, label: submitted.append((image, label))
    view.open_mistake(0)
    assert window.mode == TRY
    np.testing.assert_array_equal(submitted[0][0], x[first.index])
