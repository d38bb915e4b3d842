"""The unexpected: an exception escaping a slot or a thread is written to a crash file and shown,
the window stays up. And the pipeline as a picture: File > Export Diagram and `netbuilder diagram`."""
from __future__ import annotations

import threading
import xml.etree.ElementTree as ET

import pytest
from PySide6.QtCore import QSettings, QTimer
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QMessageBox

from netbuilder.core import cli
from netbuilder.core.project import load_project
from netbuilder.core.resources import example_path
from netbuilder.gui import app as gui_app
from netbuilder.gui.diagram import write_pipeline
from netbuilder.gui.main_window import MainWindow


@pytest.fixture
def window(qtbot, doc, tmp_path):
    w = MainWindow(doc, QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    return w


@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    folder = tmp_path / "state"
    monkeypatch.setenv("NETBUILDER_STATE_DIR", str(folder))
    return folder


def crash_dialogs(window):
    return [b for b in window.findChildren(QMessageBox) if b.objectName() == "crash_dialog"]


@pytest.mark.qt_no_exception_capture  # the exception is the point: our hook, not pytest-qt's, takes it
def test_an_exception_in_a_slot_is_saved_and_shown_and_the_window_stays(window, qtbot, state_dir, capsys):
    restore = gui_app.install_crash_handler(window)
    try:
        def broken():
            raise ZeroDivisionError("a bug in a view")

        timer = QTimer(window)
        timer.setSingleShot(True)
        timer.timeout.connect(broken)
        timer.start(0)
        qtbot.waitUntil(lambda: len(crash_dialogs(window)) == 1)
    finally:
        restore()
    [report] = (state_dir / "crashes").glob("crash-*.txt")
    text = report.read_text(encoding="utf-8")
    assert "ZeroDivisionError: a bug in a view" in text and "netbuilder" in text.splitlines()[0]
    [box] = crash_dialogs(window)
    assert str(report) in box.text() and "ZeroDivisionError: a bug in a view" in box.text()
    window.doc.set_value("name", "still editing")  # the window and its document go on
    assert window.doc.project.name == "still editing"
    window.doc.undo_stack.undo()  # nothing unsaved: closing must not ask
    assert "ZeroDivisionError" in capsys.readouterr().err  # still printed for a terminal


@pytest.mark.qt_no_exception_capture
def test_an_exception_in_a_worker_thread_is_reported_on_the_gui_thread(window, qtbot, state_dir):
    restore = gui_app.install_crash_handler(window)
    try:
        def work():
            raise RuntimeError("lost in a thread")

        thread = threading.Thread(target=work, name="worker-1")
        thread.start()
        thread.join(10)
        qtbot.waitUntil(lambda: len(crash_dialogs(window)) == 1)
    finally:
        restore()
    [report] = (state_dir / "crashes").glob("crash-*.txt")
    text = report.read_text(encoding="utf-8")
    assert "RuntimeError: lost in a thread" in text and "worker-1" in text


def test_export_diagram_writes_svg_and_png_of_the_pipeline(window, tmp_path):
    svg, png = tmp_path / "net.svg", tmp_path / "net.png"
    assert window.exports.export_diagram(str(svg))
    assert window.exports.export_diagram(str(png))
    root = ET.parse(svg).getroot()
    text = "".join(root.itertext())
    for block in ("conv1", "pool2", "dense3", "6 x 28 x 28", "48,120 params"):
        assert block in text, block
    image = QImage(str(png))
    assert not image.isNull() and image.height() > image.width() > 300  # a tall stack of cards


def test_a_diagram_shows_the_reason_on_a_red_card(tmp_path, qapp):
    project = load_project(example_path("lenet5"))
    project.blocks[2]["kernel_size"] = 40
    out = write_pipeline(project, tmp_path / "bad.svg")
    text = "".join(ET.parse(out).getroot().itertext())
    assert "shape unknown" in text and "larger than its 14x14 input" in text


def test_diagram_refuses_other_suffixes_and_keeps_what_was_there(tmp_path, qapp):
    old = tmp_path / "net.svg"
    old.write_text("old")
    with pytest.raises(ValueError, match=".svg or .png"):
        write_pipeline(load_project(example_path("lenet5")), tmp_path / "net.pdf")
    assert old.read_text() == "old"


def test_the_diagram_command_draws_a_bundled_example_headless(tmp_path, capsys, qapp):
    out = tmp_path / "lenet.svg"
    assert cli.main(["diagram", "lenet5", "-o", str(out)]) == 0
    stdout, stderr = capsys.readouterr()
    assert "written to" in stdout and "bundled example 'lenet5'" in stderr
    assert "conv1" in "".join(ET.parse(out).getroot().itertext())
    assert cli.main(["diagram", "lenet5", "-o", str(tmp_path / "x.gif")]) == 2
    assert ".svg or .png" in capsys.readouterr().err
