"""Start the app: ``netbuilder`` opens the LeNet-5 example, ``netbuilder PROJECT.json`` that file.

Set ``NETBUILDER_AUTOTRAIN=1`` to start training as soon as the window shows (in the training
view): for screenshots and demos, e.g.
``NETBUILDER_AUTOTRAIN=1 ../shared/tools/screenshot -o run.png -w 12 -- netbuilder``.
"""
from __future__ import annotations

import os
import signal
import sys

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

from netbuilder.gui import theme
from netbuilder.gui.document import ProjectDocument
from netbuilder.gui.main_window import MainWindow
from netbuilder.gui.project_files import APPLICATION, ORGANIZATION

DEFAULT_TEMPLATE = "lenet5"  # LeNet-5 on the built-in "shapes" dataset: ready to train offline
AUTOTRAIN = "NETBUILDER_AUTOTRAIN"


def create_window(project_path: str | None = None, settings: QSettings | None = None) -> MainWindow:
    """The main window on LeNet-5, then on ``project_path`` if given and valid (errors are shown)."""
    doc = ProjectDocument()
    doc.new_project(DEFAULT_TEMPLATE)
    window = MainWindow(doc, settings)
    if project_path:
        window.files.open(project_path)  # a bad file is reported; LeNet-5 stays open
    return window


def main(project_path: str | None = None) -> int:
    """Run the app until its window closes; returns the exit code."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName("netbuilder")
    app.setWindowIcon(theme.block_icon("conv"))
    _use_light_look(app)
    window = create_window()
    window.show()
    if project_path:
        # After show(), so an error box about a bad file appears over the window.
        window.files.open(project_path)
    if os.environ.get(AUTOTRAIN, "") not in ("", "0"):
        QTimer.singleShot(0, window.start_training)
    previous = _quit_on_ctrl_c(window)
    try:
        return app.exec()
    finally:
        signal.signal(signal.SIGINT, previous)
        # Qt's exit handlers would delete clipboard data Python already finalised (a crash at
        # exit); the clipboard's content leaves with this process anyway.
        app.clipboard().clear()


def _use_light_look(app: QApplication) -> None:
    """Fusion with a light palette: the canvas colours are made for it, whatever the desktop theme."""
    app.setStyle("Fusion")
    palette = QPalette()
    colours = {
        QPalette.ColorRole.Window: theme.BACKGROUND,
        QPalette.ColorRole.Base: theme.SURFACE,
        QPalette.ColorRole.AlternateBase: theme.BACKGROUND,
        QPalette.ColorRole.Button: theme.BACKGROUND,
        QPalette.ColorRole.WindowText: theme.TEXT,
        QPalette.ColorRole.Text: theme.TEXT,
        QPalette.ColorRole.ButtonText: theme.TEXT,
        QPalette.ColorRole.ToolTipBase: theme.SURFACE,
        QPalette.ColorRole.ToolTipText: theme.TEXT,
        QPalette.ColorRole.PlaceholderText: theme.MUTED,
        QPalette.ColorRole.Highlight: theme.SELECTION,
        QPalette.ColorRole.HighlightedText: theme.SURFACE,
        QPalette.ColorRole.Link: theme.SELECTION,
    }
    for role, colour in colours.items():
        palette.setColor(role, QColor(colour))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor(theme.FAINT))
    app.setPalette(palette)


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
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None))
