"""The main window's actions, menus, toolbar and status bar: built here, wired to the pieces
that do the work (the document, the files, the export controller, the training controller)."""
from __future__ import annotations

from PySide6.QtCore import QEvent, QLocale, QObject, Qt
from PySide6.QtGui import QAction, QActionGroup, QIcon, QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QDoubleSpinBox,
    QLabel,
    QStyle,
    QToolBar,
    QToolButton,
    QToolTip,
    QWidget,
)

from netbuilder.gui import theme
from netbuilder.gui.curves import curve_icon

BUILD, TRAIN = "build", "train"  # the window's two modes
TRY = "try"  # and the Try view: the trained network on an image of one's own
# View > Appearance: (setting, menu text)
APPEARANCES = (("auto", "Follow the Desktop"), ("light", "Light"), ("dark", "Dark"))


def add_action(w, text: str, slot, shortcut=None, icon: QIcon | None = None, tip: str = "") -> QAction:
    action = QAction(text, w)
    if shortcut is not None:
        action.setShortcuts(QKeySequence.keyBindings(shortcut) if isinstance(shortcut, QKeySequence.StandardKey)
                            else [QKeySequence(shortcut)])
    if icon is not None:
        action.setIcon(icon)
    if tip:
        action.setStatusTip(tip)
        action.setToolTip(tip)
    action.triggered.connect(slot)
    w.addAction(action)  # shortcuts work even with the menu bar hidden
    return action

def create_actions(w) -> None:
    files = w.files
    w.empty_action = add_action(w, "Empty project", lambda: files.new(None), QKeySequence.StandardKey.New,
                                tip="Start a new project with an empty pipeline")
    w.template_actions: list[QAction] = []
    for stem, name in w.doc.templates():
        action = add_action(w, name, lambda checked=False, s=stem: files.new(s),
                            tip=f"Start a new project from the {name} example")
        w.template_actions.append(action)
    w.open_action = add_action(w, "Open…", lambda: files.open(), QKeySequence.StandardKey.Open,
                               _icon(w, "document-open", QStyle.StandardPixmap.SP_DialogOpenButton),
                               "Open a project file (.json)")
    w.save_action = add_action(w, "Save", lambda: files.save(), QKeySequence.StandardKey.Save,
                               _icon(w, "document-save", QStyle.StandardPixmap.SP_DialogSaveButton),
                               "Save the project (Ctrl+S)")
    w.save_as_action = add_action(w, "Save As…", lambda: files.save_as(), "Ctrl+Shift+S",
                                  tip="Save the project to a new file")
    w.quit_action = add_action(w, "Quit", w.close, "Ctrl+Q", tip="Close netbuilder")

    stack = w.doc.undo_stack
    w.undo_action = stack.createUndoAction(w, "Undo")
    w.undo_action.setShortcuts(QKeySequence.keyBindings(QKeySequence.StandardKey.Undo))
    w.redo_action = stack.createRedoAction(w, "Redo")
    redo_keys = QKeySequence.keyBindings(QKeySequence.StandardKey.Redo)
    if QKeySequence("Ctrl+Shift+Z") not in redo_keys:  # the issue promises Ctrl+Shift+Z everywhere
        redo_keys.append(QKeySequence("Ctrl+Shift+Z"))
    w.redo_action.setShortcuts(redo_keys)
    for action, word, name, pixmap in (
            (w.undo_action, "Undo", "edit-undo", QStyle.StandardPixmap.SP_ArrowBack),
            (w.redo_action, "Redo", "edit-redo", QStyle.StandardPixmap.SP_ArrowForward)):
        action.setIcon(_icon(w, name, pixmap))
        action.setIconText(word)  # the toolbar keeps a short, steady label; the menu says what
        w.addAction(action)
    stack.undoTextChanged.connect(w._set_undo_tip)  # methods: disconnected when the window goes
    stack.redoTextChanged.connect(w._set_redo_tip)
    w._tips_connected = True
    w._set_undo_tip(stack.undoText())
    w._set_redo_tip(stack.redoText())

    canvas = w.canvas
    w.edit_actions = [canvas.delete_action, canvas.duplicate_action, canvas.copy_action, canvas.paste_action,
                      canvas.move_up_action, canvas.move_down_action]
    if canvas.delete_action.icon().isNull():
        canvas.delete_action.setIcon(_icon(w, "edit-delete", QStyle.StandardPixmap.SP_TrashIcon))
    w.zoom_actions = [canvas.zoom_in_action, canvas.zoom_out_action, canvas.zoom_fit_action]

    panel = w.train_panel
    w.train_actions = [panel.train_action, panel.continue_action, panel.pause_action, panel.resume_action,
                       panel.step_action, panel.stop_action]
    for action in w.train_actions:
        w.addAction(action)  # their shortcuts work in both modes
    w.export_action = add_action(w, "Export Weights…", lambda: w.exports.export_weights(), "Ctrl+E",
                                 tip="Save the trained weights with the project as a .npz file")
    w.export_model_action = add_action(
        w, "Export Model…", lambda: w.exports.export_model(), "Ctrl+Shift+E",
        tip="Export the trained network as ONNX, PyTorch or numpy, verified against the app's predictions")
    w.export_diagram_action = add_action(
        w, "Export Diagram…", lambda: w.exports.export_diagram(),
        tip="Save the pipeline as the canvas draws it, as an SVG drawing or a PNG image, for slides and papers")
    w.appearance_group = QActionGroup(w)
    w.appearance_actions = {}
    for key, text in APPEARANCES:
        tip = "The window's colours: " + ("the desktop's light or dark scheme" if key == "auto" else text.lower())
        a = add_action(w, text, lambda checked=False, k=key: w.set_appearance(k), tip=tip)
        a.setCheckable(True)
        w.appearance_group.addAction(a)
        w.appearance_actions[key] = a
    w.save_checkpoint_action = add_action(
        w, "Save Checkpoint…", lambda: w.exports.save_checkpoint(),
        tip="Save the training state at the last completed epoch, to continue training later")
    w.resume_checkpoint_action = add_action(
        w, "Train from Checkpoint…", lambda: w.train_from_checkpoint(),
        tip="Continue training from a saved checkpoint for the project's number of epochs")
    w.mode_group = QActionGroup(w)
    w.build_mode_action = add_action(w, "Build View", lambda: w.set_mode(BUILD), "Ctrl+1",
                                     theme.block_icon("conv"), "Edit the network (Ctrl+1)")
    w.train_mode_action = add_action(w, "Training View", lambda: w.set_mode(TRAIN), "Ctrl+2",
                                     curve_icon(), "Train it and watch it learn (Ctrl+2)")
    w.try_mode_action = add_action(w, "Try View", lambda: w.set_mode(TRY), "Ctrl+4",
                                   _icon(w, "image-x-generic", QStyle.StandardPixmap.SP_FileDialogContentsView),
                                   "Show the trained network an image of your own: file, drop, paste or draw (Ctrl+4)")
    for action, short in ((w.build_mode_action, "Build"), (w.train_mode_action, "Training"),
                          (w.try_mode_action, "Try")):
        action.setIconText(short)  # the toolbar's label
        action.setCheckable(True)
        w.mode_group.addAction(action)
    w.build_mode_action.setChecked(True)

    w.data_action = add_action(w, "Choose Data…", w.show_data, "Ctrl+3",
                               tip="The Data tab: choose the dataset, preview it, fit the network to it (Ctrl+3)")
    w.reset_layout_action = add_action(w, "Reset Layout", w.reset_layout,
                                       tip="Put the panels back where they started")
    w.how_to_action = add_action(w, "How to Build a Network", w.show_how_to,
                                 QKeySequence.StandardKey.HelpContents, tip="A short guide to the window")
    w.about_action = add_action(w, "About netbuilder", w.show_about)


def create_menus(w) -> None:
    bar = w.menuBar()
    file_menu = bar.addMenu("&File")
    w.new_menu = file_menu.addMenu("New")
    w.new_menu.setToolTipsVisible(True)
    w.new_menu.addActions(w.template_actions)
    w.new_menu.addSeparator()
    w.new_menu.addAction(w.empty_action)
    file_menu.addAction(w.open_action)
    w.recent_menu = file_menu.addMenu("Open Recent")
    w.recent_menu.aboutToShow.connect(lambda: rebuild_recent_menu(w))
    w.files.recentChanged.connect(lambda *_: rebuild_recent_menu(w))
    rebuild_recent_menu(w)
    file_menu.addSeparator()
    file_menu.addActions([w.save_action, w.save_as_action])
    file_menu.addSeparator()
    file_menu.addAction(w.export_action)
    file_menu.addAction(w.export_model_action)
    file_menu.addAction(w.export_diagram_action)
    file_menu.addSeparator()
    file_menu.addAction(w.quit_action)

    edit_menu = bar.addMenu("&Edit")
    edit_menu.addActions([w.undo_action, w.redo_action])
    edit_menu.addSeparator()
    edit_menu.addActions(w.edit_actions[:4])
    edit_menu.addSeparator()
    edit_menu.addActions(w.edit_actions[4:])

    view_menu = bar.addMenu("&View")
    view_menu.addActions([w.build_mode_action, w.train_mode_action, w.try_mode_action, w.data_action])
    view_menu.addSeparator()
    view_menu.addActions(w.zoom_actions)
    view_menu.addSeparator()
    for dock in (w.palette_dock, w.inspector_dock, w.summary_dock):
        view_menu.addAction(dock.toggleViewAction())
    appearance = view_menu.addMenu("Appearance")
    appearance.addActions(list(w.appearance_actions.values()))
    w.view_menu = view_menu

    train_menu = bar.addMenu("&Train")
    train_menu.setToolTipsVisible(True)
    train_menu.addActions(w.train_actions)
    train_menu.addSeparator()
    train_menu.addActions([w.save_checkpoint_action, w.resume_checkpoint_action])
    from netbuilder.gui.gradcheck_dialog import verify_gradients

    w.verify_gradients_action = add_action(
        w, "Verify Gradients…", lambda: verify_gradients(w),
        tip="Check backpropagation on this network and a batch of its data against finite differences")
    train_menu.addSeparator()
    train_menu.addAction(w.verify_gradients_action)
    w.train_menu = train_menu

    help_menu = bar.addMenu("&Help")
    help_menu.addActions([w.how_to_action, w.about_action])

def create_toolbar(w) -> None:
    bar = QToolBar("Main toolbar", w)
    bar.setObjectName("main_toolbar")
    bar.setMovable(False)
    bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    new_button = QToolButton(bar)
    new_button.setText("New")
    new_button.setIcon(_icon(w, "document-new", QStyle.StandardPixmap.SP_FileIcon))
    new_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    new_button.setToolTip("Start a new project from a template or an empty pipeline")
    new_button.setMenu(w.new_menu)
    new_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
    bar.addWidget(new_button)
    w.new_button = new_button
    bar.addActions([w.open_action, w.save_action])
    bar.addSeparator()
    bar.addActions([w.undo_action, w.redo_action])
    bar.addSeparator()
    bar.addActions(w.edit_actions[:2])  # delete, duplicate: copy/paste live in the menu
    bar.addSeparator()
    bar.addAction(w.canvas.zoom_fit_action)
    bar.addSeparator()
    bar.addActions([w.build_mode_action, w.train_mode_action, w.try_mode_action])
    bar.addSeparator()
    panel = w.train_panel
    bar.addActions([panel.train_action, panel.pause_action, panel.resume_action, panel.stop_action])
    # Words for the modes and the run controls; icons (with tooltips) for the file and edit
    # actions (and the Try view's, with its tooltip), so that at 1024 pixels Pause and Stop are not hidden
    # behind the overflow arrow.
    for action in (w.open_action, w.save_action, w.undo_action, w.redo_action, *w.edit_actions[:2],
                   w.canvas.zoom_fit_action, w.try_mode_action):
        button = bar.widgetForAction(action)
        if isinstance(button, QToolButton) and not action.icon().isNull():
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
    w.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)
    w.toolbar = bar
    w.view_menu.addAction(bar.toggleViewAction())
    w.view_menu.addSeparator()
    w.view_menu.addAction(w.reset_layout_action)


def create_status_bar(w) -> None:
    status = w.statusBar()
    w.lock_label = QLabel(w)
    w.params_label = QLabel(w)
    w.validity_label = QLabel(w)
    for label in (w.lock_label, w.params_label, w.validity_label):
        label.setContentsMargins(6, 0, 6, 0)
        status.addPermanentWidget(label)

def rebuild_recent_menu(w) -> None:
    recent = w.files.recent_files()  # first: pruning a missing file re-enters this method
    menu = w.recent_menu
    menu.clear()
    for i, path in enumerate(recent):
        shown = path.replace("&", "&&")  # a lone & would mark a mnemonic
        action = menu.addAction(f"&{i + 1}  {shown}")
        action.triggered.connect(lambda checked=False, p=path: w.files.open(p))
    if recent:
        menu.addSeparator()
        menu.addAction("Clear Menu", w.files.clear_recent)
    else:
        menu.addAction("No recent files").setEnabled(False)


def _icon(widget: QWidget, theme_name: str, fallback: QStyle.StandardPixmap) -> QIcon:
    """The desktop theme's icon if there is one, else Qt's built-in one."""
    return QIcon.fromTheme(theme_name, widget.style().standardIcon(fallback))


def edit_tip(word: str, text: str, keys: str) -> str:
    return f"{word} {text} ({keys})" if text else f"Nothing to {word.lower()}"


def number_box(widget, window: QWidget) -> QAbstractSpinBox | None:
    """The number box of ``window`` that ``widget`` is (or whose line edit it is), else None."""
    box = widget if isinstance(widget, QAbstractSpinBox) else widget.parent() if isinstance(widget, QWidget) else None
    return box if isinstance(box, QAbstractSpinBox) and box.window() is window else None


class UndoRouter(QObject):
    """Ctrl+Z / Ctrl+Shift+Z in a number box undo the document's last edit, as the Edit menu says,
    instead of the box's own typing history (which a committed value has already left behind).

    A spin box's line edit claims those keys (ShortcutOverride); swallowing that claim lets the
    window's Undo and Redo actions have them."""

    def __init__(self, window: QWidget):
        super().__init__(window)
        self._window = window

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() != QEvent.Type.ShortcutOverride or not isinstance(event, QKeyEvent):
            return False
        if not (event.matches(QKeySequence.StandardKey.Undo) or event.matches(QKeySequence.StandardKey.Redo)
                or (event.key() == Qt.Key.Key_Z and event.modifiers() == (Qt.KeyboardModifier.ControlModifier
                                                                          | Qt.KeyboardModifier.ShiftModifier))):
            return False
        return number_box(obj, self._window) is not None


_WATCHED = (QEvent.Type.KeyPress, QEvent.Type.FocusOut)  # the events ClampNotice looks at


class FocusedBoxFilters(QObject):
    """Puts ``filters`` on the number box of ``window`` that has the keyboard focus (the box and its
    line edit), and on nothing else. An application-wide filter would run Python for every event
    of the application (each paint, each timer: hundreds a second while training), each time
    taking the GIL from the training thread. Qt sends the box that loses the focus its FocusOut
    before it says the focus changed, so the filters still see it."""

    def __init__(self, window: QWidget, filters: list[QObject]):
        super().__init__(window)
        self._window = window
        self._filters = filters
        self._watched: list[QWidget] = []
        app = QApplication.instance()
        app.focusChanged.connect(self._focus_changed)
        self._focus_changed(None, app.focusWidget())

    def _focus_changed(self, _old, new) -> None:
        for widget in self._watched:
            for f in self._filters:
                try:
                    widget.removeEventFilter(f)
                except RuntimeError:  # the box was deleted meanwhile
                    break
        self._watched = []
        box = number_box(new, self._window)
        if box is not None:
            self._watched = [box, box.lineEdit()]
            for widget in self._watched:
                for f in self._filters:
                    widget.installEventFilter(f)


class ClampNotice(QObject):
    """A number box refuses a digit that would take it beyond its range, and clamps a value left
    out of range; both silently. This says so at the field ("10000 would be more than 4096, the
    most filters can be here") instead of leaving the user to notice."""

    NOTICE_PROPERTY = "clampNotice"  # the last notice, on the box (tests and screen readers)

    def __init__(self, window: QWidget):
        super().__init__(window)
        self._window = window

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind not in _WATCHED:  # every event of the focused box passes here: paints, timers, ...
            return False
        box = number_box(obj, self._window)
        if box is None:
            return False
        if kind == QEvent.Type.KeyPress and isinstance(event, QKeyEvent) and event.text().isdigit():
            # The box refuses a digit that would take it out of range, without a word: say why.
            edit = box.lineEdit()
            start, end = (edit.selectionStart(), edit.selectionEnd()) if edit.hasSelectedText() else \
                (edit.cursorPosition(), edit.cursorPosition())
            self._check(box, edit.text()[:start] + event.text() + edit.text()[end:], refused=True)
        elif kind == QEvent.Type.FocusOut or (kind == QEvent.Type.KeyPress and isinstance(event, QKeyEvent)
                                              and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)):
            self._check(box, box.cleanText())
        return False

    def _check(self, box, text: str, refused: bool = False) -> None:
        text = text.strip()
        for affix in (box.prefix(), box.suffix()) if hasattr(box, "prefix") else ():
            text = text.replace(affix, "") if affix else text
        typed, ok = QLocale().toDouble(text)
        if not ok or not hasattr(box, "maximum"):
            return
        low, high = box.minimum(), box.maximum()
        if low <= typed <= high:
            return
        limit = high if typed > high else low
        shown = f"{limit:g}" if isinstance(box, QDoubleSpinBox) else f"{int(limit)}"
        field = (box.objectName() or "this field").replace("_", " ")
        notice = (f"{text} {'would be' if refused else 'is'} {'more' if typed > high else 'less'} than {shown}, "
                  f"the {'most' if typed > high else 'least'} {field} can be here"
                  + ("" if refused else f": set to {shown}"))
        box.setProperty(self.NOTICE_PROPERTY, notice)
        QToolTip.showText(box.mapToGlobal(box.rect().bottomLeft()), notice, box)
