"""Starting the app: LeNet-5 by default, a project file if given, LeNet-5 again if that file is bad."""
import json
import signal

import pytest
from PySide6.QtCore import QCoreApplication, QSettings, QTimer
from PySide6.QtWidgets import QApplication

from netbuilder.core import cli
from netbuilder.gui import app as gui_app
from netbuilder.gui.document import EXAMPLES_DIR
from netbuilder.gui.main_window import MainWindow
from netbuilder.gui.project_files import ProjectFiles


@pytest.fixture(autouse=True)
def private_settings(tmp_path, qapp):
    """Settings in a temporary folder; the app's names and Ctrl+C handler restored afterwards."""
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    names = qapp.organizationName(), qapp.applicationName(), qapp.applicationDisplayName()
    sigint = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, sigint)
    qapp.setOrganizationName(names[0])
    qapp.setApplicationName(names[1])
    qapp.setApplicationDisplayName(names[2])


@pytest.fixture
def errors(monkeypatch):
    """Error boxes recorded instead of shown; never a question left waiting for a person."""
    shown = []
    monkeypatch.setattr(ProjectFiles, "show_error", lambda self, title, text, details="": shown.append(text))
    monkeypatch.setattr(ProjectFiles, "ask_save_changes", lambda self, name: "discard")
    return shown


@pytest.fixture
def project_file(tmp_path):
    path = tmp_path / "xor.json"
    path.write_text((EXAMPLES_DIR / "xor.json").read_text(encoding="utf-8"), encoding="utf-8")
    return path


@pytest.fixture
def bad_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"format": 1, "blocks": 3}), encoding="utf-8")
    return path


def lenet5_on_shapes(doc):
    return doc.project.name == "LeNet-5" and doc.project.dataset == {"kind": "shapes"} and doc.path is None


def test_create_window_opens_lenet5_on_the_builtin_dataset(qtbot, errors):
    window = gui_app.create_window()
    qtbot.addWidget(window)
    assert lenet5_on_shapes(window.doc) and window.doc.inference.ok and not window.doc.modified


def test_create_window_opens_the_given_file(qtbot, errors, project_file):
    window = gui_app.create_window(str(project_file))
    qtbot.addWidget(window)
    assert window.doc.project.name == "XOR" and window.doc.path == project_file
    assert errors == []


def test_create_window_with_a_bad_file_shows_it_and_keeps_lenet5(qtbot, errors, bad_file):
    window = gui_app.create_window(str(bad_file))
    qtbot.addWidget(window)
    assert lenet5_on_shapes(window.doc) and not window.doc.modified
    assert len(errors) == 1 and "blocks must be a list" in errors[0]


def run_main(qtbot, *args):
    """main(*args) with its event loop; records the window's state once it runs, then closes it."""
    seen = {}

    def look_and_close():
        [window] = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
        qtbot.addWidget(window)
        seen.update(window=window, name=window.doc.project.name, path=window.doc.path,
                    dataset=window.doc.project.dataset, title=window.windowTitle())
        window.close()
        QCoreApplication.exit(0)

    QTimer.singleShot(0, look_and_close)
    seen["code"] = gui_app.main(*args)
    return seen


def test_main_with_a_bad_file_falls_back_to_lenet5(qtbot, errors, bad_file):
    seen = run_main(qtbot, str(bad_file))
    assert seen["code"] == 0
    assert seen["name"] == "LeNet-5" and seen["path"] is None and seen["dataset"] == {"kind": "shapes"}
    assert len(errors) == 1 and "bad.json" in errors[0]
    assert QCoreApplication.applicationName() == "netbuilder"


def test_main_opens_the_given_file(qtbot, errors, project_file):
    seen = run_main(qtbot, str(project_file))
    assert seen["name"] == "XOR" and seen["path"] == project_file
    assert seen["title"] == "xor.json[*] — netbuilder"


def test_main_without_arguments_opens_lenet5(qtbot, errors):
    seen = run_main(qtbot)
    assert seen["name"] == "LeNet-5" and seen["path"] is None and errors == []


def test_netbuilder_command_starts_the_app_with_the_file(monkeypatch):
    calls = []
    monkeypatch.setattr(gui_app, "main", lambda path=None: calls.append(path) or 0)
    assert cli.main(["net.json"]) == 0
    assert cli.main([]) == 0
    assert calls == ["net.json", None]


def test_main_opens_a_bundled_example_by_name_as_a_new_project(qtbot, errors, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no file called vgg_bn here
    seen = run_main(qtbot, "vgg_bn")
    assert seen["name"] == "Small VGG with BatchNorm" and seen["path"] is None and errors == []
    (tmp_path / "vgg_bn").write_text("{}")  # a file of that name wins, as on the command line
    seen = run_main(qtbot, "vgg_bn")
    assert seen["name"] == "LeNet-5" and len(errors) == 1
