"""Step (F10): one batch, then a pause, and the Step inspector lists every block with its δ."""
from __future__ import annotations

from PySide6.QtCore import QCoreApplication

from netbuilder.gui.main_window import TRAIN
from netbuilder.gui.views.step_view import BlockCard, Histogram
from tests.gui.test_training import RUN, Recorder, tiny


def step(qtbot, controller):
    with qtbot.waitSignal(controller.stepTraced, timeout=RUN) as traced:
        assert controller.step()
    return traced.args[0].trace


def test_step_from_idle_trains_one_batch_pauses_and_the_inspector_lists_every_block(window, doc, qtbot):
    tiny(doc, epochs=3)
    controller = window.controller
    log = Recorder(controller)
    panel = window.train_panel
    assert panel.step_action.shortcut().toString() == "F10" and panel.step_action.isEnabled()
    assert panel.step_action in window.train_menu.actions()
    assert panel.buttons["step"].defaultAction() is panel.step_action

    trace = step(qtbot, controller)
    assert controller.state == "paused" and controller.is_running
    assert controller._session.trainer.wait_until_paused(timeout=RUN / 1000)
    QCoreApplication.processEvents()
    assert [p[0] for p in log.batch_points()] == [0.2]  # batch 1 of 5, in epochs
    assert (trace.epoch, trace.batch) == (1, 1) and controller._session.trainer.optimizer.steps == 1

    view = window.step_view
    assert window.epoch_tabs.currentWidget() is view
    paths = [s.path for s in controller._session.trainer.network.walk_stages()]
    assert sorted(view.cards) == sorted(paths)
    for card in view.cards.values():
        assert isinstance(card, BlockCard)
        if "delta" in card.block.tensors:
            assert "delta" in card.rows
    conv = next(card for card in view.cards.values() if card.block.maps.get("z") is not None)
    assert {"a_prev", "z", "a", "delta"} <= set(conv.rows) and "grad:weight" in conv.rows
    assert conv.findChildren(Histogram)
    assert "Epoch 1, batch 1" in view.header.text()

    # Step again: exactly one more batch, paused again
    trace = step(qtbot, controller)
    assert trace.batch == 2 and controller.state == "paused"
    assert controller._session.trainer.wait_until_paused(timeout=RUN / 1000)
    QCoreApplication.processEvents()
    assert len(log.batch_points()) == 2 and controller._session.trainer.optimizer.steps == 2

    # Resume goes on to the end of the run
    with qtbot.waitSignal(controller.runEnded, timeout=RUN) as ended:
        controller.resume()
    assert ended.args[0].status == "finished" and len(log.batch_points()) == 15
    assert window.mode == TRAIN  # a Step from idle opens the Training view, as Train does


def test_the_f10_action_steps_while_paused_and_the_status_says_so(window, doc, qtbot):
    tiny(doc, epochs=50, batch_size=16)
    controller = window.controller
    with qtbot.waitSignal(controller.batchEnded, timeout=RUN):
        assert controller.start()
    controller.pause()
    assert controller._session.trainer.wait_until_paused(timeout=RUN / 1000)
    steps = controller._session.trainer.optimizer.steps
    assert "F10" in window.train_panel.status_label.text()
    with qtbot.waitSignal(controller.stepTraced, timeout=RUN):
        window.train_panel.step_action.trigger()
    assert controller._session.trainer.wait_until_paused(timeout=RUN / 1000)
    assert controller._session.trainer.optimizer.steps == steps + 1 and controller.state == "paused"
    with qtbot.waitSignal(controller.runEnded, timeout=RUN) as ended:
        controller.stop()
    assert ended.args[0].status == "stopped"


def test_the_inspector_shows_inner_blocks_by_path_indented_and_the_torch_message(controller, qtbot):
    from netbuilder.core.step_trace import NEEDS_NUMPY, StepTrace
    from netbuilder.core.trainer import Trainer
    from netbuilder.gui.views.step_view import StepView
    from tests.core.test_groups import nested_project
    from tests.core.test_trainer import blobs

    trainer = Trainer(nested_project(), blobs(n=48, shape=(2, 6, 6)))
    trainer.step_sample = 3
    trainer.step()
    run = trainer.run()
    trace = next(e for e in run if isinstance(e, StepTrace))
    trainer.stop()
    list(run)
    view = StepView(controller)
    qtbot.addWidget(view)
    view.show_trace(trace)
    assert list(view.cards) == [b.path for b in trace.blocks] and trace.sample == 3
    inner, outer = view.cards["res1.conv1"], view.cards["res1"]
    assert inner.layout().contentsMargins().left() > outer.layout().contentsMargins().left()
    assert "z" in outer.rows and "note_update:weight" in {w.objectName() for w in view.cards["stem"].findChildren(
        type(view.header))}
    view.show_trace(StepTrace(1, 1, 5, 0.5, 8, 0.01, "SGD", 1, message=NEEDS_NUMPY))
    assert view.cards == {} and NEEDS_NUMPY in view.header.text()
