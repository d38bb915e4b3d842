"""Fixtures for the GUI tests (pytest-qt, offscreen)."""
import pytest
from PySide6.QtCore import QSettings

from netbuilder.gui.document import ProjectDocument
from netbuilder.gui.main_window import MainWindow
from netbuilder.gui.project_files import DISCARD
from netbuilder.gui.training import TrainingController


@pytest.fixture
def doc(qtbot):
    """A document holding the LeNet-5 example, unmodified."""
    d = ProjectDocument()
    d.new_project("lenet5")
    return d


@pytest.fixture(autouse=True, scope="session")
def _set_up_as_the_app_does():
    """The process as ``netbuilder`` and ``netbuilder-gui`` prepare it (BLAS on one thread, malloc
    keeping freed memory): the window's tests run where the window runs."""
    from netbuilder.core.cli import prepare_process

    prepare_process()


@pytest.fixture(autouse=True, scope="session")
def _release_qt_objects_before_exit(qapp):
    """Free every Qt object while Python is alive: Qt's own exit handlers would otherwise delete
    clipboard data and undo commands that Python already finalised (a crash at interpreter exit)."""
    yield
    import gc

    from PySide6.QtCore import QCoreApplication, QEvent

    qapp.clipboard().clear()
    for _ in range(3):
        gc.collect()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        qapp.processEvents()


@pytest.fixture
def window(doc, qtbot, tmp_path):
    """The main window on ``doc`` with its own settings file; it never waits for a person."""
    w = MainWindow(doc, QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    w.errors = []
    w.files.ask_save_changes = lambda name: DISCARD  # closing never waits for a person
    w.ask_stop_training = lambda: True
    w.files.show_error = lambda title, text, details="": w.errors.append(text)
    yield w
    w.controller.shutdown()


@pytest.fixture
def controller(doc, qtbot):
    """A training controller of ``doc``, shut down after the test."""
    c = TrainingController(doc)
    yield c
    c.shutdown()
