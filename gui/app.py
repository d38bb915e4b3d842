"""Start the app: ``netbuilder`` opens the LeNet-5 example, ``netbuilder PROJECT.json`` that file.

Set ``NETBUILDER_AUTOTRAIN=1`` to start training as soon as the window shows (in the training
view): for screenshots and demos, e.g.
``NETBUILDER_AUTOTRAIN=1 ../shared/tools/screenshot -o run.png -w 12 -- netbuilder``.
"""
from __future__ import annotations

import os
import signal
import sys
import threading

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from netbuilder.gui import theme
from netbuilder.gui.document import ProjectDocument
from netbuilder.gui.main_window import MainWindow
from netbuilder.gui.project_files import APPLICATION, ORGANIZATION

DEFAULT_TEMPLATE = "lenet5"  # LeNet-5 on the built-in "shapes" dataset: ready to train offline
AUTOTRAIN = "NETBUILDER_AUTOTRAIN"
DESKTOP_FILE = "netbuilder"  # resources/netbuilder.desktop: the name desktops match the window to


def create_window(project_path: str | None = None, settings=None) -> MainWindow:
    """The main window on LeNet-5, then on ``project_path`` if given and valid (errors are shown)."""
    doc = ProjectDocument()
    doc.new_project(DEFAULT_TEMPLATE)
    window = MainWindow(doc, settings)
    if project_path:
        window.files.open(project_path)  # a bad file is reported; LeNet-5 stays open
    return window


def run() -> int:
    """The ``netbuilder-gui`` entry point (no console on Windows): the window, on sys.argv's project."""
    from netbuilder.core.cli import prepare_process
    from netbuilder.core.crash import enable_faulthandler

    enable_faulthandler(to_file=True)  # there may be no console to print a crash on
    prepare_process()
    return main(sys.argv[1] if len(sys.argv) > 1 else None)


def _bundled_example(name: str) -> str | None:
    """The bundled example a bare name means when no file of that name exists, else None."""
    from pathlib import Path

    from netbuilder.core.resources import example_path

    if Path(name).exists() or Path(name).name != name:
        return None
    found = example_path(name)
    return found.stem if found is not None else None


def main(project_path: str | None = None) -> int:
    """Run the app until its window closes; returns the exit code."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName("netbuilder")
    app.setDesktopFileName(DESKTOP_FILE)
    app.setWindowIcon(theme.app_icon())
    app.setStyle("Fusion")  # the palettes in theme are made for Fusion, on every desktop
    app.setPalette(theme.palette())
    window = create_window()
    restore_hooks = install_crash_handler(window)
    window.show()
    if project_path:
        # After show(), so an error box about a bad file appears over the window.
        example = _bundled_example(project_path)
        if example is not None:  # as the command line does: "netbuilder-gui lenet5"
            window.doc.new_project(example)
            window.statusBar().showMessage(f"No file {project_path!r} here: opened the bundled example "
                                           f"{example!r} as a new project", 8000)
        else:
            window.files.open(project_path)
    if os.environ.get(AUTOTRAIN, "") not in ("", "0"):
        QTimer.singleShot(0, window.start_training)
    previous = _quit_on_ctrl_c(window)
    try:
        return app.exec()
    finally:
        signal.signal(signal.SIGINT, previous)
        restore_hooks()
        # Qt's exit handlers would delete clipboard data Python already finalised (a crash at
        # exit); the clipboard's content leaves with this process anyway.
        app.clipboard().clear()


def install_crash_handler(window: QWidget):
    """Report an unexpected exception (in a slot, an event handler or a thread) instead of losing it:
    the traceback goes to a crash file in the user's state folder and a dialog names the file. The
    window stays up. Returns a function that puts the previous hooks back."""
    from netbuilder.core.crash import write_crash_report

    previous_hook, previous_thread_hook = sys.excepthook, threading.excepthook
    shown = []  # one dialog at a time: an error in every paint must not stack up hundreds

    def report(exc_type, exc, tb, where: str = "") -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            previous_hook(exc_type, exc, tb)
            return
        path = write_crash_report(exc_type, exc, tb, where)
        previous_hook(exc_type, exc, tb)  # still printed for whoever runs it from a terminal
        if shown:
            return
        saved = f"The details were saved to {path}." if path else "The details could not be saved."
        box = QMessageBox(QMessageBox.Icon.Critical, "netbuilder: unexpected error",
                          f"Something went wrong that netbuilder did not expect: {exc_type.__name__}: {exc}\n\n"
                          f"{saved} Please include that file when you report it. Your project is still open; "
                          "save it under a new name if in doubt.", QMessageBox.StandardButton.Ok, window)
        box.setObjectName("crash_dialog")
        box.finished.connect(lambda *_: shown.clear())
        shown.append(box)
        box.open()

    bridge = _CrashBridge(window)  # lives on the GUI thread: its signal arrives there, queued
    bridge.crashed.connect(report)

    def thread_hook(args) -> None:
        name = args.thread.name if args.thread is not None else "a thread"
        bridge.crashed.emit(args.exc_type, args.exc_value, args.exc_traceback, f"in {name}")

    sys.excepthook = report
    threading.excepthook = thread_hook

    def restore() -> None:
        sys.excepthook, threading.excepthook = previous_hook, previous_thread_hook

    return restore


class _CrashBridge(QObject):
    # An exception escaped a worker thread: (type, value, traceback, where).
    crashed = Signal(object, object, object, str)


def _quit_on_ctrl_c(window: MainWindow):
    """Ctrl+C in the terminal closes the window (asking about unsaved changes) instead of being
    ignored; returns the handler to restore."""
    previous = signal.signal(signal.SIGINT, lambda *_: window.close())
    # Python runs signal handlers only between bytecodes: wake the interpreter now and then.
    timer = QTimer(window)
    timer.timeout.connect(lambda: None)
    timer.start(250)
    return previous


if __name__ == "__main__":
    sys.exit(run())
