"""The main window: creates the builder and training views and wires menus to them.

Behaviour lives in the pieces (``ProjectDocument``, ``ProjectFiles``, ``TrainingController``, the
views); this module only places them, builds the menus, toolbar and status bar, and connects
signals. The window has two modes sharing one document: Build (the pipeline canvas with the
block palette, inspector and summary docks) and Train (the train panel and data panel, the live
curves, feature maps, filters, confusion matrix and gradient norms). Starting a run switches to
Train; closing the window stops a run and waits for its worker.
"""
from __future__ import annotations

import re
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, QSize, Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QIcon, QKeySequence, QShowEvent
from PySide6.QtWidgets import (QDockWidget, QFileDialog, QLabel, QMainWindow, QMessageBox, QScrollArea,
                               QSplitter, QStackedWidget, QStyle, QTabWidget, QToolBar, QToolButton, QWidget)

from netbuilder.core.inference import Inference
from netbuilder.gui.canvas import PipelineCanvas
from netbuilder.gui.curves import CurvesView, curve_icon
from netbuilder.gui.document import ProjectDocument
from netbuilder.gui.export_dialog import ExportDialog
from netbuilder.gui.export_runner import RUNTIMES, ExportRunner
from netbuilder.gui.inspector import Inspector
from netbuilder.gui.palette import Palette
from netbuilder.gui.project_files import ProjectFiles, app_settings
from netbuilder.gui.summary_panel import SummaryPanel
from netbuilder.gui.train_panel import TrainPanel
from netbuilder.gui.training import TrainingController
from netbuilder.gui.training.controller import LOADING
from netbuilder.gui.views.confusion import ConfusionView
from netbuilder.gui.views.data_panel import DataPanel
from netbuilder.gui.views.feature_maps import FeatureMapView
from netbuilder.gui.views.filters import FilterView
from netbuilder.gui.views.gradients import GradientView
from netbuilder.gui import theme

BUILD, TRAIN = "build", "train"

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
<li><b>Train</b> with F5: the window switches to the training view (Ctrl+2; Ctrl+1 goes back
to building). Pick the data in the <i>Data</i> tab, watch the loss, the feature maps and the
filters change, pause with F6 and stop with Shift+F5. File &gt; Export Weights saves what was
learned, File &gt; Export Model writes it as ONNX, PyTorch or numpy (verified); Train &gt; Save
Checkpoint keeps the run to continue it later.</li>
</ol>
"""


class MainWindow(QMainWindow):
    """The builder and training window of one document; closing it asks before unsaved changes are lost."""

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
        self.controller = TrainingController(doc, self)
        self.exporter = ExportRunner(self)  # File > Export Model…, off the GUI thread
        self._dataset_payload: dict | None = None  # the last run's data: its validation images verify exports
        self._export_title = ""
        self.train_page = self._create_training_page()
        self.pages = _Pages(self)
        self.pages.addWidget(self.canvas)
        self.pages.addWidget(self.train_page)
        self.setCentralWidget(self.pages)
        self._mode = BUILD
        self._builder_docks_shown: dict[QDockWidget, bool] = {}
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
        self.controller.stateChanged.connect(self._training_state_changed)
        self.controller.trainedChanged.connect(lambda *_: self._update_training_actions())
        self.controller.epochEnded.connect(lambda *_: self._update_training_actions())
        self.controller.error.connect(lambda text: self.statusBar().showMessage(text, 10000))
        self.controller.datasetReady.connect(self._remember_dataset)
        self.exporter.finished.connect(self._export_finished)
        self.exporter.failed.connect(self._export_failed)

        self._update_title()
        self.setWindowModified(doc.modified)
        self._update_status(doc.inference)
        self._update_lock(doc.lock_reason)
        self._update_training_actions()
        self._fit_to_screen()
        self._restore_layout()

    # --- construction -----------------------------------------------------------------------
    def _create_training_page(self) -> QWidget:
        """The training view: run controls and data on the left, curves in the middle with the
        epoch views under them, what the network sees on the right (feature maps over filters)."""
        controller = self.controller
        self.train_panel = TrainPanel(self.doc, controller, self)
        self.data_panel = DataPanel(self.doc, controller, self)
        self.curves = CurvesView(controller, self)
        self.feature_maps = FeatureMapView(controller, self)
        self.filters = FilterView(controller, self)
        self.confusion = ConfusionView(controller, self)
        self.gradients = GradientView(controller, self)

        self.setup_tabs = QTabWidget(self)
        self.setup_tabs.setObjectName("setup_tabs")
        self.setup_tabs.addTab(self.train_panel, "Train")
        self.setup_tabs.addTab(_scrolled(self.data_panel), "Data")
        self.epoch_tabs = QTabWidget(self)
        self.epoch_tabs.setObjectName("epoch_tabs")
        self.epoch_tabs.addTab(_scrolled(self.confusion), "Confusion matrix")
        self.epoch_tabs.addTab(_scrolled(self.gradients), "Gradients")
        middle = self.curves_splitter = QSplitter(Qt.Orientation.Vertical, self)
        middle.addWidget(self.curves)
        middle.addWidget(self.epoch_tabs)
        middle.setStretchFactor(0, 3)
        middle.setStretchFactor(1, 2)
        right = QSplitter(Qt.Orientation.Vertical, self)
        right.addWidget(_scrolled(self.feature_maps))
        right.addWidget(self.filters)
        right.setStretchFactor(0, 3)
        right.setStretchFactor(1, 1)
        page = QSplitter(Qt.Orientation.Horizontal, self)
        page.setObjectName("train_page")
        for i, widget in enumerate((self.setup_tabs, middle, right)):
            page.addWidget(widget)
            page.setCollapsible(i, False)
        page.setStretchFactor(0, 0)
        page.setStretchFactor(1, 1)
        page.setStretchFactor(2, 1)
        self._page_sized = False
        return page

    def _size_training_page(self) -> None:
        """Once, at the first switch to training: the panel as narrow as it reads well, the curves
        and the feature maps sharing the rest (the splitter cannot know before it is shown)."""
        if self._page_sized:
            return
        self._page_sized = True
        page = self.train_page
        width = page.width()
        left = min(max(280, self.setup_tabs.minimumSizeHint().width()), 320)
        middle = (width - left) * 40 // 100
        page.setSizes([left, middle, width - left - middle])
        height = self.curves_splitter.height()
        self.curves_splitter.setSizes([height * 11 // 20, height - height * 11 // 20])

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
        self._tips_connected = True
        self._set_undo_tip(stack.undoText())
        self._set_redo_tip(stack.redoText())

        canvas = self.canvas
        self.edit_actions = [canvas.delete_action, canvas.duplicate_action, canvas.copy_action, canvas.paste_action,
                             canvas.move_up_action, canvas.move_down_action]
        if canvas.delete_action.icon().isNull():
            canvas.delete_action.setIcon(_icon(self, "edit-delete", QStyle.StandardPixmap.SP_TrashIcon))
        self.zoom_actions = [canvas.zoom_in_action, canvas.zoom_out_action, canvas.zoom_fit_action]

        panel = self.train_panel
        self.train_actions = [panel.train_action, panel.continue_action, panel.pause_action, panel.resume_action,
                              panel.stop_action]
        for action in self.train_actions:
            self.addAction(action)  # their shortcuts work in both modes
        self.export_action = self._action("Export Weights…", lambda: self.export_weights(), "Ctrl+E",
                                          tip="Save the trained weights with the project as a .npz file")
        self.export_model_action = self._action(
            "Export Model…", lambda: self.export_model(), "Ctrl+Shift+E",
            tip="Export the trained network as ONNX, PyTorch or numpy, verified against the app's predictions")
        self.save_checkpoint_action = self._action(
            "Save Checkpoint…", lambda: self.save_checkpoint(),
            tip="Save the training state at the last completed epoch, to continue training later")
        self.resume_checkpoint_action = self._action(
            "Train from Checkpoint…", lambda: self.train_from_checkpoint(),
            tip="Continue training from a saved checkpoint for the project's number of epochs")
        self.mode_group = QActionGroup(self)
        self.build_mode_action = self._action("Build View", lambda: self.set_mode(BUILD), "Ctrl+1",
                                              theme.block_icon("conv"), "Edit the network (Ctrl+1)")
        self.train_mode_action = self._action("Training View", lambda: self.set_mode(TRAIN), "Ctrl+2",
                                              curve_icon(), "Train it and watch it learn (Ctrl+2)")
        for action, short in ((self.build_mode_action, "Build"), (self.train_mode_action, "Training")):
            action.setIconText(short)  # the toolbar's label
            action.setCheckable(True)
            self.mode_group.addAction(action)
        self.build_mode_action.setChecked(True)

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
        file_menu.addAction(self.export_action)
        file_menu.addAction(self.export_model_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)

        edit_menu = bar.addMenu("&Edit")
        edit_menu.addActions([self.undo_action, self.redo_action])
        edit_menu.addSeparator()
        edit_menu.addActions(self.edit_actions[:4])
        edit_menu.addSeparator()
        edit_menu.addActions(self.edit_actions[4:])

        view_menu = bar.addMenu("&View")
        view_menu.addActions([self.build_mode_action, self.train_mode_action])
        view_menu.addSeparator()
        view_menu.addActions(self.zoom_actions)
        view_menu.addSeparator()
        for dock in (self.palette_dock, self.inspector_dock, self.summary_dock):
            view_menu.addAction(dock.toggleViewAction())
        self.view_menu = view_menu

        train_menu = bar.addMenu("&Train")
        train_menu.setToolTipsVisible(True)
        train_menu.addActions(self.train_actions)
        train_menu.addSeparator()
        train_menu.addActions([self.save_checkpoint_action, self.resume_checkpoint_action])
        self.train_menu = train_menu

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
        bar.addSeparator()
        bar.addActions([self.build_mode_action, self.train_mode_action])
        bar.addSeparator()
        panel = self.train_panel
        bar.addActions([panel.train_action, panel.pause_action, panel.resume_action, panel.stop_action])
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
        self.set_mode(BUILD)
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

    # --- modes and training -------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return self._mode

    def set_mode(self, mode: str) -> None:
        """Show the builder ("build": canvas and its docks) or the training views ("train")."""
        if mode == self._mode:
            return
        docks = (self.palette_dock, self.inspector_dock, self.summary_dock)
        if mode == TRAIN:
            self._builder_docks_shown = {dock: dock.isVisible() for dock in docks}
            for dock in docks:
                dock.hide()
            self.pages.setCurrentWidget(self.train_page)
            self.pages.updateGeometry()
            if not self._page_sized:
                QTimer.singleShot(0, self._size_training_page)  # once the page is laid out
            self.train_mode_action.setChecked(True)
        else:
            self.pages.setCurrentWidget(self.canvas)
            self.pages.updateGeometry()
            for dock in docks:
                dock.setVisible(self._builder_docks_shown.get(dock, True))
            self.build_mode_action.setChecked(True)
        self._mode = mode

    def start_training(self) -> bool:
        """Switch to the training views and start a run from fresh weights."""
        self.set_mode(TRAIN)
        return self.controller.start()

    def export_weights(self, path: str | None = None) -> bool:
        """Write the trained weights (.npz, with the project inside); the status bar says where."""
        path = path or self.ask_path("Export Weights", "weights.npz", save=True)
        if not path:
            return False
        try:
            written = self.controller.export_weights(path)
        except (ValueError, RuntimeError, OSError) as exc:  # WeightsError, TrainingError
            self.files.show_error("Export Weights", f"The weights were not exported: {exc}")
            return False
        self.statusBar().showMessage(f"Weights saved to {written}", 10000)
        return True

    def export_model(self, fmt: str | None = None, path: str | None = None) -> bool:
        """Export the trained network as ``fmt`` ("onnx", "torch", "numpy") to ``path``, off the GUI thread.

        Without both, the Export dialog asks. The export is verified by its own runtime on the
        validation samples of the last run; the figures are shown when it ends. Returns whether
        an export started.
        """
        if self.exporter.is_running:
            self.statusBar().showMessage("An export is already running", 5000)
            return False
        if fmt is None or path is None:
            choice = self.ask_export(fmt, path)
            if choice is None:
                return False
            fmt, path = choice
        network = self.controller.trained_network()
        if network is None:
            self.files.show_error("Export Model", "The model was not exported: there is no trained network "
                                  "yet: train it first")
            return False
        samples, source = self._export_samples(network)
        self._export_title = {"onnx": "ONNX", "torch": "PyTorch", "numpy": "numpy"}.get(fmt, fmt)
        self.exporter.start(network, str(path), fmt, samples, source)
        self._update_training_actions()
        self.statusBar().showMessage(f"Exporting… verifying with {RUNTIMES.get(fmt, fmt)}")
        return True

    def ask_export(self, fmt: str | None = None, path: str | None = None) -> tuple[str, str] | None:
        """(format, path) from the Export dialog, or None if cancelled. Tests replace it."""
        folder = self.doc.path.parent if self.doc.path else Path.home()
        stem = self.doc.path.stem if self.doc.path else re.sub(r"[^\w.-]+", "_", self.doc.project.name).strip("_")
        dialog = ExportDialog(self, folder / (stem or "network"), fmt or "onnx")
        if path:
            dialog.path_edit.setText(str(path))
            dialog._edited = True
        if dialog.exec() != ExportDialog.DialogCode.Accepted:
            return None
        return dialog.choice()

    def _export_samples(self, network):
        """The last run's validation images to verify with, when they fit the network, else (None, None)."""
        payload = self._dataset_payload
        if not payload:
            return None, None
        x = payload.get("val_x")
        want = tuple(int(v) for v in network.project.input_shape)
        if x is None or len(x) == 0 or tuple(x.shape[1:]) != want:
            return None, None
        kind = "training" if payload.get("val_is_train") else "validation"
        return x[:64], f"{kind} samples of {payload.get('name', 'the data')}"

    def _remember_dataset(self, payload: dict) -> None:
        self._dataset_payload = payload

    def _export_finished(self, report) -> None:
        self._update_training_actions()
        where = ", ".join(report.paths) if getattr(report, "paths", None) else ""
        self.statusBar().showMessage(f"{self._export_title} model {report.status}"
                                     + (f", written to {where}" if where else ""), 15000)
        self._show_report(f"Export Model — {report.status}", str(report))

    def _export_failed(self, message: str) -> None:
        self._update_training_actions()
        self.statusBar().showMessage("Export failed", 10000)
        report = self.exporter.error_report
        self.files.show_error("Export Model", f"The model was not exported: {message}",
                              str(report) if report is not None else "")

    def _show_report(self, title: str, text: str) -> None:
        """Show an export's verification figures (tests replace it)."""
        box = QMessageBox(QMessageBox.Icon.Information, title, text, QMessageBox.StandardButton.Ok, self)
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        box.open()  # not exec(): the window goes on

    def save_checkpoint(self, path: str | None = None) -> bool:
        """Write the training state at the last completed epoch, to continue from later."""
        path = path or self.ask_path("Save Checkpoint", "checkpoint.npz", save=True)
        if not path:
            return False
        try:
            epoch = self.controller.save_checkpoint(path)
        except (ValueError, RuntimeError, OSError) as exc:  # CheckpointError, TrainingError
            self.files.show_error("Save Checkpoint", f"The checkpoint was not saved: {exc}")
            return False
        self.statusBar().showMessage(f"Checkpoint after epoch {epoch} saved to {path}", 10000)
        return True

    def train_from_checkpoint(self, path: str | None = None) -> bool:
        """Continue the run saved in a checkpoint file, on the project's data and settings."""
        path = path or self.ask_path("Train from Checkpoint", "checkpoint.npz", save=False)
        if not path:
            return False
        self.set_mode(TRAIN)
        return self.controller.start("checkpoint", path)

    def ask_path(self, title: str, suffix: str, save: bool) -> str | None:
        """A file chosen in a dialog (None if cancelled); the default name is the project's + ``suffix``."""
        folder = self.doc.path.parent if self.doc.path else Path.home()
        stem = self.doc.path.stem if self.doc.path else re.sub(r"[^\w.-]+", "_", self.doc.project.name).strip("_")
        start = str(folder / f"{stem or 'network'}.{suffix}")
        filters = "NumPy archives (*.npz);;All files (*)"
        if save:
            path, _ = QFileDialog.getSaveFileName(self, title, start, filters)
        else:
            path, _ = QFileDialog.getOpenFileName(self, title, str(folder), filters)
        return path or None

    def _training_state_changed(self, state: str) -> None:
        if state == LOADING:
            self.set_mode(TRAIN)
        self._update_training_actions()

    def _update_training_actions(self) -> None:
        controller = self.controller
        idle = not controller.is_running
        self.export_action.setEnabled(controller.has_trained)
        self.export_model_action.setEnabled(controller.has_trained and not self.exporter.is_running)
        self.save_checkpoint_action.setEnabled(controller.checkpoint_epoch is not None)
        self.resume_checkpoint_action.setEnabled(idle)

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
            self.controller.shutdown()  # stops a run within a batch and waits for the worker
            self.exporter.wait()  # an export in progress finishes (seconds at most); nothing half-written
            self.set_mode(BUILD)  # the saved layout is the builder's docks
            self._save_layout()
            # The document may outlive the window (until the interpreter exits, whose teardown
            # order is arbitrary): its undo stack must not call into deleted actions then.
            if self._tips_connected:
                self._tips_connected = False
                self.doc.undo_stack.undoTextChanged.disconnect(self._set_undo_tip)
                self.doc.undo_stack.redoTextChanged.disconnect(self._set_redo_tip)
            event.accept()
        else:
            event.ignore()


class _Pages(QStackedWidget):
    """The central pages, sized by the page shown: the training views' minimum size must not
    make the builder's window larger (1024x640 must fit), nor the other way round."""

    def minimumSizeHint(self) -> QSize:
        page = self.currentWidget()
        return page.minimumSizeHint() if page is not None else super().minimumSizeHint()

    def sizeHint(self) -> QSize:
        page = self.currentWidget()
        return page.sizeHint() if page is not None else super().sizeHint()


def _scrolled(widget: QWidget) -> QScrollArea:
    """``widget`` in a frameless scroll area: it keeps its own minimum size (which may grow with
    what it shows), and the splitter around it does not have to."""
    area = QScrollArea()
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QScrollArea.Shape.NoFrame)
    return area


def _icon(widget: QWidget, theme_name: str, fallback: QStyle.StandardPixmap) -> QIcon:
    """The desktop theme's icon if there is one, else Qt's built-in one."""
    return QIcon.fromTheme(theme_name, widget.style().standardIcon(fallback))


def _edit_tip(word: str, text: str, keys: str) -> str:
    return f"{word} {text} ({keys})" if text else f"Nothing to {word.lower()}"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
