"""The main window: creates the canvas, palette, inspector and summary, and wires menus to them.

Behaviour lives in the pieces (``ProjectDocument``, ``ProjectFiles``, the views); this module
only places them, builds the menus, toolbar and status bar, and connects signals.
"""
from __future__ import annotations

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QIcon, QKeySequence, QShowEvent
from PySide6.QtWidgets import (QDockWidget, QLabel, QMainWindow, QMessageBox, QStyle, QToolBar,
                               QToolButton, QWidget)

from core.inference import Inference
from gui.canvas import PipelineCanvas
from gui.document import ProjectDocument
from gui.inspector import Inspector
from gui.palette import Palette
from gui.project_files import ProjectFiles, app_settings
from gui.summary_panel import SummaryPanel
from gui import theme

APP_TITLE = "netbuilder"

HOW_TO = """\
<h3>How to build a network</h3>
<ol>
<li><b>Add blocks.</b> Drag a block from <i>Blocks</i> (left) into the pipeline; a marker shows
where it will land. Double-click a block in the list to append it at the end.</li>
<li><b>Edit them.</b> Click a card to select it; its settings appear in the <i>Inspector</i>
(right). Every card shows its output shape and parameter count, updated as you type.</li>
<li><b>Fix what is red.</b> A red card has a setting that cannot work (for example a kernel larger
than its input). Hover it or read the Inspector for the reason; the cards after it show an
unknown shape until it is fixed.</li>
<li><b>Rearrange.</b> Drag cards to reorder them. Delete removes the selected block, Ctrl+D
duplicates it, Ctrl+C / Ctrl+V copy and paste. Ctrl+Z undoes any edit, Ctrl+Shift+Z redoes it.</li>
<li><b>Check the totals.</b> The <i>Summary</i> (bottom) lists each block's parameters,
multiply-adds and memory, and warns about choices that train badly.</li>
<li><b>Save</b> with Ctrl+S. File &gt; New starts from a template or from an empty pipeline.</li>
</ol>
"""


class MainWindow(QMainWindow):
    """The builder window of one document; closing it asks before unsaved changes are lost."""

    def __init__(self, doc: ProjectDocument, settings: QSettings | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.doc = doc
        self.settings = settings if settings is not None else app_settings()
        self.files = ProjectFiles(doc, self, self.settings)
        self._laid_out = False

        self.canvas = PipelineCanvas(doc, self)
        self.palette = Palette(doc, self)
        self.inspector = Inspector(doc, self)
        self.summary = SummaryPanel(doc, self)
        self.setCentralWidget(self.canvas)
        # The palette runs the full height (every block in view); the summary table gets the width
        # under the canvas and the inspector.
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.palette_dock = self._dock("Blocks", "palette_dock", self.palette, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.inspector_dock = self._dock("Inspector", "inspector_dock", self.inspector,
                                         Qt.DockWidgetArea.RightDockWidgetArea)
        self.summary_dock = self._dock("Summary", "summary_dock", self.summary, Qt.DockWidgetArea.BottomDockWidgetArea)

        self._create_actions()
        self._create_menus()
        self._create_toolbar()
        self._create_status_bar()

        doc.pathChanged.connect(self._update_title)
        doc.projectReplaced.connect(self._update_title)
        doc.modifiedChanged.connect(self.setWindowModified)
        doc.inferenceChanged.connect(self._update_status)
        doc.lockChanged.connect(self._update_lock)
        self.files.message.connect(lambda text: self.statusBar().showMessage(text, 5000))
        self.files.recentChanged.connect(self._rebuild_recent_menu)

        self._update_title()
        self.setWindowModified(doc.modified)
        self._update_status(doc.inference)
        self._update_lock(doc.lock_reason)
        self._fit_to_screen()
        self._restore_layout()

    # --- construction -----------------------------------------------------------------------
    def _dock(self, title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)  # saveState/restoreState find docks by name
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _action(self, text: str, slot, shortcut=None, icon: QIcon | None = None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcuts(QKeySequence.keyBindings(shortcut) if isinstance(shortcut, QKeySequence.StandardKey)
                                else [QKeySequence(shortcut)])
        if icon is not None:
            action.setIcon(icon)
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(tip)
        action.triggered.connect(slot)
        self.addAction(action)  # shortcuts work even with the menu bar hidden
        return action

    def _create_actions(self) -> None:
        files = self.files
        self.empty_action = self._action("Empty project", lambda: files.new(None), QKeySequence.StandardKey.New,
                                         tip="Start a new project with an empty pipeline")
        self.template_actions: list[QAction] = []
        for stem, name in self.doc.templates():
            action = self._action(name, lambda checked=False, s=stem: files.new(s),
                                  tip=f"Start a new project from the {name} example")
            self.template_actions.append(action)
        self.open_action = self._action("Open…", lambda: files.open(), QKeySequence.StandardKey.Open,
                                        _icon(self, "document-open", QStyle.StandardPixmap.SP_DialogOpenButton),
                                        "Open a project file (.json)")
        self.save_action = self._action("Save", lambda: files.save(), QKeySequence.StandardKey.Save,
                                        _icon(self, "document-save", QStyle.StandardPixmap.SP_DialogSaveButton),
                                        "Save the project (Ctrl+S)")
        self.save_as_action = self._action("Save As…", lambda: files.save_as(), "Ctrl+Shift+S",
                                           tip="Save the project to a new file")
        self.quit_action = self._action("Quit", self.close, "Ctrl+Q", tip="Close netbuilder")

        stack = self.doc.undo_stack
        self.undo_action = stack.createUndoAction(self, "Undo")
        self.undo_action.setShortcuts(QKeySequence.keyBindings(QKeySequence.StandardKey.Undo))
        self.redo_action = stack.createRedoAction(self, "Redo")
        redo_keys = QKeySequence.keyBindings(QKeySequence.StandardKey.Redo)
        if QKeySequence("Ctrl+Shift+Z") not in redo_keys:  # the issue promises Ctrl+Shift+Z everywhere
            redo_keys.append(QKeySequence("Ctrl+Shift+Z"))
        self.redo_action.setShortcuts(redo_keys)
        for action, word, name, pixmap in (
                (self.undo_action, "Undo", "edit-undo", QStyle.StandardPixmap.SP_ArrowBack),
                (self.redo_action, "Redo", "edit-redo", QStyle.StandardPixmap.SP_ArrowForward)):
            action.setIcon(_icon(self, name, pixmap))
            action.setIconText(word)  # the toolbar keeps a short, steady label; the menu says what
            self.addAction(action)
        stack.undoTextChanged.connect(self._set_undo_tip)  # methods: disconnected when the window goes
        stack.redoTextChanged.connect(self._set_redo_tip)
        self._set_undo_tip(stack.undoText())
        self._set_redo_tip(stack.redoText())

        canvas = self.canvas
        self.edit_actions = [canvas.delete_action, canvas.duplicate_action, canvas.copy_action, canvas.paste_action,
                             canvas.move_up_action, canvas.move_down_action]
        if canvas.delete_action.icon().isNull():
            canvas.delete_action.setIcon(_icon(self, "edit-delete", QStyle.StandardPixmap.SP_TrashIcon))
        self.zoom_actions = [canvas.zoom_in_action, canvas.zoom_out_action, canvas.zoom_fit_action]

        self.reset_layout_action = self._action("Reset Layout", self.reset_layout,
                                                tip="Put the panels back where they started")
        self.how_to_action = self._action("How to Build a Network", self.show_how_to,
                                          QKeySequence.StandardKey.HelpContents, tip="A short guide to the window")
        self.about_action = self._action("About netbuilder", self.show_about)

    def _create_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self.new_menu = file_menu.addMenu("New")
        self.new_menu.setToolTipsVisible(True)
        self.new_menu.addActions(self.template_actions)
        self.new_menu.addSeparator()
        self.new_menu.addAction(self.empty_action)
        file_menu.addAction(self.open_action)
        self.recent_menu = file_menu.addMenu("Open Recent")
        self.recent_menu.aboutToShow.connect(self._rebuild_recent_menu)
        self._rebuild_recent_menu()
        file_menu.addSeparator()
        file_menu.addActions([self.save_action, self.save_as_action])
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)

        edit_menu = bar.addMenu("&Edit")
        edit_menu.addActions([self.undo_action, self.redo_action])
        edit_menu.addSeparator()
        edit_menu.addActions(self.edit_actions[:4])
        edit_menu.addSeparator()
        edit_menu.addActions(self.edit_actions[4:])

        view_menu = bar.addMenu("&View")
        view_menu.addActions(self.zoom_actions)
        view_menu.addSeparator()
        for dock in (self.palette_dock, self.inspector_dock, self.summary_dock):
            view_menu.addAction(dock.toggleViewAction())
        self.view_menu = view_menu

        help_menu = bar.addMenu("&Help")
        help_menu.addActions([self.how_to_action, self.about_action])

    def _create_toolbar(self) -> None:
        bar = QToolBar("Main toolbar", self)
        bar.setObjectName("main_toolbar")
        bar.setMovable(False)
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        new_button = QToolButton(bar)
        new_button.setText("New")
        new_button.setIcon(_icon(self, "document-new", QStyle.StandardPixmap.SP_FileIcon))
        new_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        new_button.setToolTip("Start a new project from a template or an empty pipeline")
        new_button.setMenu(self.new_menu)
        new_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        bar.addWidget(new_button)
        self.new_button = new_button
        bar.addActions([self.open_action, self.save_action])
        bar.addSeparator()
        bar.addActions([self.undo_action, self.redo_action])
        bar.addSeparator()
        bar.addActions(self.edit_actions[:2])  # delete, duplicate: copy/paste live in the menu
        bar.addSeparator()
        bar.addAction(self.canvas.zoom_fit_action)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)
        self.toolbar = bar
        self.view_menu.addAction(bar.toggleViewAction())
        self.view_menu.addSeparator()
        self.view_menu.addAction(self.reset_layout_action)

    def _create_status_bar(self) -> None:
        status = self.statusBar()
        self.lock_label = QLabel(self)
        self.params_label = QLabel(self)
        self.validity_label = QLabel(self)
        for label in (self.lock_label, self.params_label, self.validity_label):
            label.setContentsMargins(6, 0, 6, 0)
            status.addPermanentWidget(label)

    # --- layout -----------------------------------------------------------------------------
    def _restore_layout(self) -> None:
        geometry = self.settings.value("window/geometry")
        state = self.settings.value("window/state")
        if isinstance(geometry, QByteArray) and isinstance(state, QByteArray):
            self._laid_out = self.restoreGeometry(geometry) and self.restoreState(state)

    def _save_layout(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.sync()

    def reset_layout(self) -> None:
        """Show every panel, docked where it started, with sizes fitted to the window."""
        for dock, area in ((self.palette_dock, Qt.DockWidgetArea.LeftDockWidgetArea),
                           (self.inspector_dock, Qt.DockWidgetArea.RightDockWidgetArea),
                           (self.summary_dock, Qt.DockWidgetArea.BottomDockWidgetArea)):
            dock.setFloating(False)
            self.addDockWidget(area, dock)
            dock.show()
        self.toolbar.show()
        self._fit_docks()

    def _fit_to_screen(self) -> None:
        """A generous default size, never larger than the screen's free area (1024x640 must work)."""
        available = self.screen().availableGeometry()
        self.resize(min(1320, available.width()), min(860, available.height()))

    def _fit_docks(self) -> None:
        """Side panels as wide as their content asks, but the pipeline keeps at least half the width."""
        width, height = self.width(), self.height()
        palette = min(max(200, self.palette.sizeHint().width()), int(width * 0.22))
        inspector = min(max(260, self.inspector.sizeHint().width()), int(width * 0.28))
        self.resizeDocks([self.palette_dock, self.inspector_dock], [palette, inspector], Qt.Orientation.Horizontal)
        self.resizeDocks([self.summary_dock], [max(150, min(240, height * 3 // 10))], Qt.Orientation.Vertical)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._laid_out:  # resizeDocks needs the laid-out window: once the event loop has run
            self._laid_out = True
            QTimer.singleShot(0, self._fit_docks)

    # --- updates from the document ------------------------------------------------------------
    def _update_title(self, *_) -> None:
        self.setWindowTitle(f"{self.files.display_name()}[*] — {APP_TITLE}")

    def _update_status(self, inference: Inference) -> None:
        self.params_label.setText(f"{inference.total_params:,} parameters")
        errors, warnings = inference.errors, inference.warnings
        if not inference.blocks:  # the core counts this as an error; say what to do instead
            text, colour = "Empty pipeline: drag blocks in from the Blocks list", theme.MUTED
        elif errors:
            n = len(errors)
            text = f"✗ {n} problem{'s' if n != 1 else ''}: {_clip(errors[0].message, 70)}"
            colour = theme.ERROR
        elif warnings:
            n = len(warnings)
            text = f"✓ Ready to train · {n} warning{'s' if n != 1 else ''} (see Summary)"
            colour = theme.WARNING_TEXT
        else:
            text, colour = "✓ Ready to train", theme.TEXT
        self.validity_label.setText(text)
        self.validity_label.setStyleSheet(f"color: {colour}; font-weight: 600;")
        self.validity_label.setToolTip("\n".join(f"{p.severity}: {p.message}" for p in inference.problems))

    def _update_lock(self, reason: str) -> None:
        self.lock_label.setText(f"🔒 {reason}" if reason else "")
        self.lock_label.setVisible(bool(reason))
        # While locked (training) the project cannot be replaced; saving it stays possible.
        for item in (self.new_button, self.new_menu.menuAction(), self.open_action, self.recent_menu.menuAction(),
                     self.empty_action, *self.template_actions):
            item.setEnabled(not reason)

    def _set_undo_tip(self, text: str) -> None:
        self.undo_action.setToolTip(_edit_tip("Undo", text, "Ctrl+Z"))

    def _set_redo_tip(self, text: str) -> None:
        self.redo_action.setToolTip(_edit_tip("Redo", text, "Ctrl+Shift+Z"))

    def _rebuild_recent_menu(self) -> None:
        recent = self.files.recent_files()  # first: pruning a missing file re-enters this method
        menu = self.recent_menu
        menu.clear()
        for i, path in enumerate(recent):
            shown = path.replace("&", "&&")  # a lone & would mark a mnemonic
            action = menu.addAction(f"&{i + 1}  {shown}")
            action.triggered.connect(lambda checked=False, p=path: self.files.open(p))
        if recent:
            menu.addSeparator()
            menu.addAction("Clear Menu", self.files.clear_recent)
        else:
            menu.addAction("No recent files").setEnabled(False)

    # --- help -------------------------------------------------------------------------------
    def show_how_to(self) -> None:
        QMessageBox.information(self, "How to build a network", HOW_TO)

    def show_about(self) -> None:
        QMessageBox.about(self, "About netbuilder",
                          "<b>netbuilder</b><p>Build convolutional neural networks visually, train them "
                          "live, and export what they learned.</p>")

    # --- closing ----------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:
        if self.files.maybe_save():
            self._save_layout()
            event.accept()
        else:
            event.ignore()


def _icon(widget: QWidget, theme_name: str, fallback: QStyle.StandardPixmap) -> QIcon:
    """The desktop theme's icon if there is one, else Qt's built-in one."""
    return QIcon.fromTheme(theme_name, widget.style().standardIcon(fallback))


def _edit_tip(word: str, text: str, keys: str) -> str:
    return f"{word} {text} ({keys})" if text else f"Nothing to {word.lower()}"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
