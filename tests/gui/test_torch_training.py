"""The window trains with the torch engine: the engine choice, every view fed as with numpy, Stop
within one batch, a run continued on the other engine; and without torch the choice is disabled."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSettings

from netbuilder.core.network import Network
from netbuilder.gui import engine_picker
from netbuilder.gui.engine_picker import EnginePicker
from tests.gui.test_training import RUN, Recorder, tiny, train


def test_the_window_trains_with_torch_and_every_view_is_fed(window, doc, qtbot):
    tiny(doc, epochs=2)
    picker = window.train_panel.engine
    picker.engine.setCurrentIndex(picker.engine.findData("torch"))
    picker.engine.activated.emit(picker.engine.currentIndex())  # what a user's pick emits
    assert picker.device.isEnabled() and picker.device.findData("cpu") >= 0
    picker.device.setCurrentIndex(picker.device.findData("cpu"))
    picker.device.activated.emit(picker.device.currentIndex())
    assert (window.controller.engine, window.controller.device) == ("torch", "cpu")
    log = Recorder(window.controller)
    with qtbot.waitSignal(window.controller.runEnded, timeout=RUN) as ended:
        assert window.start_training()
    assert ended.args[0].status == "finished"
    assert window.controller._session.trainer.engine == "torch"
    started = log.of("runStarted")[0]
    assert started.engine == "torch engine on cpu"
    assert "torch engine on cpu" in window.train_panel.speed_label.text()
    assert [e.epoch for e in log.epochs()] == [1, 2]
    epoch = log.of("epochEnded")[-1]
    assert epoch.confusion.shape == (10, 10) and epoch.confusion.sum() == 30
    assert set(epoch.grad_norms) == set(Network(doc.project).parameters())
    assert all(v > 0 for v in epoch.grad_norms.values())
    assert set(epoch.dead_relu) == {"conv1", "conv2", "dense1", "dense2"}
    probe = log.of("probeReady")[-1]
    assert probe.probabilities.shape == (10,) and np.isclose(probe.probabilities.sum(), 1)
    # the trained weights came home: the numpy network predicts what the torch model learnt
    net = window.controller.trained_network()
    trainer = window.controller._session.trainer
    x, _ = trainer.validation_data()
    assert np.allclose(net.predict(x), trainer.network.predict(x))
    assert not doc.locked and window.export_action.isEnabled()


def test_stop_ends_a_torch_run_within_one_batch(controller, doc, qtbot):
    tiny(doc, epochs=200, batch_size=16)
    controller.set_engine("torch", "cpu")
    log = Recorder(controller)
    with qtbot.waitSignal(controller.batchEnded, timeout=RUN):
        controller.start()
    trainer = controller._session.trainer
    with qtbot.waitSignal(controller.runEnded, timeout=RUN) as ended:
        controller.stop()
        at_stop = sum(len(trainer.history.batch_losses[e]) for e in range(len(trainer.history.batch_losses)))
    assert ended.args[0].status == "stopped"
    done = sum(len(losses) for losses in trainer.history.batch_losses)
    assert done <= at_stop + 1  # the batch in progress ends, no other starts
    assert controller.has_trained and len(log.batch_points()) == done


def test_a_numpy_run_continues_on_torch_from_where_it_stands(controller, doc, qtbot):
    tiny(doc, epochs=1)
    assert train(qtbot, controller).status == "finished"
    before = controller._session.trainer
    assert before.engine == "numpy"
    controller.set_engine("torch", "cpu")
    assert train(qtbot, controller, "continue").status == "finished"
    after = controller._session.trainer
    assert after.engine == "torch" and after.history.epochs_done == 2
    assert [round(e.epoch) for e in after.history.epochs] == [1, 2]


def test_without_torch_the_choice_is_disabled_with_the_install_hint(qtbot, controller, monkeypatch, tmp_path):
    monkeypatch.setattr(engine_picker, "torch_installed", lambda: False)
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    settings.setValue(engine_picker.SETTINGS_KEY, "torch@cpu")  # chosen once, uninstalled since
    picker = EnginePicker(controller, settings)
    qtbot.addWidget(picker)
    item = picker.engine.model().item(picker.engine.findData("torch"))
    assert not item.isEnabled() and "pip install 'netbuilder[torch]'" in item.toolTip()
    assert picker.hint.text() and "netbuilder[torch]" in picker.hint.text()
    assert picker.engine.currentData() == "numpy" and controller.engine == "numpy"
    assert not picker.device.isEnabled()


def test_the_engine_choice_is_remembered(qtbot, controller, tmp_path):
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    picker = EnginePicker(controller, settings)
    qtbot.addWidget(picker)
    picker.engine.setCurrentIndex(picker.engine.findData("torch"))
    picker.engine.activated.emit(picker.engine.currentIndex())
    picker.device.setCurrentIndex(picker.device.findData("cpu"))
    picker.device.activated.emit(picker.device.currentIndex())
    again = EnginePicker(controller, settings)
    qtbot.addWidget(again)
    assert (again.engine.currentData(), again.device.currentData()) == ("torch", "cpu")
    assert (controller.engine, controller.device) == ("torch", "cpu")


def test_a_torch_that_cannot_be_loaded_leaves_the_numpy_engine_and_says_why(qtbot, controller, monkeypatch):
    def broken():
        raise ImportError("libtorch_cpu.so: cannot open shared object file")

    monkeypatch.setattr(engine_picker, "torch_devices", broken)
    picker = EnginePicker(controller)
    qtbot.addWidget(picker)
    picker.engine.setCurrentIndex(picker.engine.findData("torch"))
    picker.engine.activated.emit(picker.engine.currentIndex())  # no exception escapes the slot
    assert picker.engine.currentData() == "numpy" and controller.engine == "numpy"
    assert "could not be loaded" in picker.hint.text() and "libtorch_cpu.so" in picker.hint.text()
    assert not picker.engine.model().item(picker.engine.findData("torch")).isEnabled()
