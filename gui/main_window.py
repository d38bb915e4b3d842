"""The main window: creates the builder and training views and wires menus to them.

Behaviour lives in the pieces (``ProjectDocument``, ``ProjectFiles``, ``TrainingController``, the
views); this module only places them, builds the menus, toolbar and status bar, and connects
signals. The window has two modes sharing one document: Build (the pipeline canvas with the
block palette, inspector and summary docks) and Train (the train panel and data panel, the live
curves, feature maps, filters, confusion matrix and gradient norms). Starting a run switches to
Train; closing the window stops a run and waits for its worker.
"""
from __future__ import annotations

from PySide6.QtCore import QByteArray, QSettings, QSize, Qt, QTimer
from PySide6.QtGui import QCloseEvent, QShowEvent
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QWidget,
)

from netbuilder.core.inference import Inference
from netbuilder.gui import theme, window_actions
from netbuilder.gui.canvas import PipelineCanvas
from netbuilder.gui.curves import CurvesView
from netbuilder.gui.document import ProjectDocument
from netbuilder.gui.export_controller import ExportController
from netbuilder.gui.inspector import Inspector
from netbuilder.gui.palette import Palette
from netbuilder.gui.project_files import ProjectFiles, app_settings
from netbuilder.gui.summary_panel import SummaryPanel
from netbuilder.gui.train_panel import TrainPanel
from netbuilder.gui.training import TrainingController
from netbuilder.gui.training.controller import LOADING
from netbuilder.gui.try_view import TryView
from netbuilder.gui.views.block_preview import BlockPreviewView
from netbuilder.gui.views.confusion import ConfusionView
from netbuilder.gui.views.data_panel import DataPanel
from netbuilder.gui.views.evaluation import EvaluationView
from netbuilder.gui.views.feature_maps import FeatureMapView
from netbuilder.gui.views.filters import FilterView
from netbuilder.gui.views.gradients import GradientView
from netbuilder.gui.views.runs_panel import RunsPanel
from netbuilder.gui.views.step_view import StepView
from netbuilder.gui.window_actions import BUILD, TRAIN, TRY

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
        self.block_preview = BlockPreviewView(doc, self._trained_weights)  # the selected block on a sample
        self.inspector.add_section(self.block_preview)
        self.exports = ExportController(self, doc, self.controller, self.files)  # File > Export…
        self.train_page = self._create_training_page()
        self.pages = _Pages(self)
        self.pages.addWidget(self.canvas)
        self.pages.addWidget(self.train_page)
        self.try_view = TryView(self.controller, self)
        self.pages.addWidget(self.try_view)
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

        window_actions.create_actions(self)
        window_actions.create_menus(self)
        window_actions.create_toolbar(self)
        window_actions.create_status_bar(self)
        self._undo_router = window_actions.UndoRouter(self)
        self._clamp_notice = window_actions.ClampNotice(self)
        self._box_filters = window_actions.FocusedBoxFilters(self, [self._undo_router, self._clamp_notice])
        self._show_appearance()

        doc.pathChanged.connect(self._update_title)
        doc.projectReplaced.connect(self._update_title)
        doc.valueChanged.connect(lambda key: self._update_title() if key == "name" else None)
        doc.modifiedChanged.connect(self.setWindowModified)
        doc.inferenceChanged.connect(self._update_status)
        doc.lockChanged.connect(self._update_lock)
        self.files.message.connect(lambda text: self.statusBar().showMessage(text, 5000))
        self.controller.stateChanged.connect(self._training_state_changed)
        self.controller.trainedChanged.connect(lambda *_: self._update_training_actions())
        self.controller.epochEnded.connect(lambda *_: self._update_training_actions())
        self.controller.error.connect(lambda text: self.statusBar().showMessage(text, 10000))
        self.exports.busyChanged.connect(self._update_training_actions)
        self.controller.cannotTrain.connect(self.show_why_not_trainable)
        self.canvas.dataRequested.connect(self.show_data)
        QApplication.styleHints().colorSchemeChanged.connect(self.desktop_scheme_changed)

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
        self.train_panel = TrainPanel(self.doc, controller, self, settings=self.settings)
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
        self.evaluation = EvaluationView(controller, self._open_in_try, self)  # after each run
        self.epoch_tabs.addTab(self.evaluation, "Evaluation")
        self.step_view = StepView(controller, self)  # scrolls itself; shown after each Step (F10)
        self.epoch_tabs.addTab(self.step_view, "Step inspector")
        self.runs_panel = RunsPanel(self.doc, controller, self.curves, self)  # the project's recorded runs
        self.epoch_tabs.addTab(self.runs_panel, "Runs")
        controller.stepTraced.connect(lambda _event: self.epoch_tabs.setCurrentWidget(self.step_view))
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
            text, colour = "Empty pipeline: drag blocks in from the Blocks list", "MUTED"
        elif errors:
            n = len(errors)
            text = f"✗ {n} problem{'s' if n != 1 else ''}: {_clip(errors[0].message, 70)}"
            colour = "ERROR"
        elif warnings:
            n = len(warnings)
            text = f"✓ Ready to train · {n} warning{'s' if n != 1 else ''} (see Summary)"
            colour = "WARNING_TEXT"
        else:
            text, colour = "✓ Ready to train", "TEXT"
        self.validity_label.setText(text)
        theme.style(self.validity_label, f"color: {{{colour}}}; font-weight: 600;")
        self.validity_label.setToolTip("\n".join(f"{p.severity}: {p.message}" for p in inference.problems))

    def _update_lock(self, reason: str) -> None:
        self.lock_label.setText(f"🔒 {reason}" if reason else "")
        self.lock_label.setVisible(bool(reason))
        # While locked (training) the project cannot be replaced; saving it stays possible.
        for item in (self.new_button, self.new_menu.menuAction(), self.open_action, self.recent_menu.menuAction(),
                     self.empty_action, *self.template_actions):
            item.setEnabled(not reason)

    def _set_undo_tip(self, text: str) -> None:
        self.undo_action.setToolTip(window_actions.edit_tip("Undo", text, "Ctrl+Z"))

    def _set_redo_tip(self, text: str) -> None:
        self.redo_action.setToolTip(window_actions.edit_tip("Redo", text, "Ctrl+Shift+Z"))

    # --- modes and training -------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return self._mode

    def _open_in_try(self, image, label: str) -> None:
        """Show ``image`` (C, H, W) in the Try view: the evaluation gallery's misclassified images."""
        self.set_mode(TRY)
        self.try_view.submit(image, label)

    def _trained_weights(self) -> dict | None:
        """The last run's trained weights (for the block preview), or None before any."""
        network = self.controller.trained_network()
        return network.state_dict() if network is not None else None

    def set_mode(self, mode: str) -> None:
        """Show the builder ("build": canvas and its docks), the training views ("train") or the Try view ("try")."""
        if mode == self._mode:
            return
        docks = (self.palette_dock, self.inspector_dock, self.summary_dock)
        if mode in (TRAIN, TRY):
            if self._mode == BUILD:
                self._builder_docks_shown = {dock: dock.isVisible() for dock in docks}
            for dock in docks:
                dock.hide()
            self.pages.setCurrentWidget(self.train_page if mode == TRAIN else self.try_view)
            self.pages.updateGeometry()
            if mode == TRAIN and not self._page_sized:
                QTimer.singleShot(0, self._size_training_page)  # once the page is laid out
            (self.train_mode_action if mode == TRAIN else self.try_mode_action).setChecked(True)
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

    def show_data(self) -> None:
        """The Data tab, where the dataset is chosen (from the input card or View > Data)."""
        self.set_mode(TRAIN)
        self.setup_tabs.setCurrentIndex(1)

    def show_why_not_trainable(self, problems: list) -> None:
        """Train on a network with errors: back to the pipeline, the first red card selected and in
        view, and every problem in full (the status bar would clip it)."""
        self.set_mode(BUILD)
        first = next((p.address for p in problems if p.block is not None), None)
        if first is not None:
            self.doc.select_path(first)  # the canvas scrolls the card into view
        n = len(problems)
        text = "\n".join(f"• {p.message}" for p in problems)
        self.tell(f"Cannot train yet: {n} problem{'s' if n != 1 else ''}",
                  f"Fix {'this' if n == 1 else 'these'} first (the red cards show where):\n\n{text}")

    def tell(self, title: str, text: str) -> None:
        """A message that does not block the window (tests replace it)."""
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, self)
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        box.open()

    def train_from_checkpoint(self, path: str | None = None) -> bool:
        """Continue the run saved in a checkpoint file, on the project's data and settings."""
        path = path or self.exports.ask_path("Train from Checkpoint", "checkpoint.npz", save=False)
        if not path:
            return False
        self.set_mode(TRAIN)
        return self.controller.start("checkpoint", path)

    def _training_state_changed(self, state: str) -> None:
        if state == LOADING:
            self.set_mode(TRAIN)
        self._update_training_actions()

    def _update_training_actions(self) -> None:
        controller = self.controller
        idle = not controller.is_running
        self.export_action.setEnabled(controller.has_trained)
        self.export_model_action.setEnabled(controller.has_trained and not self.exports.runner.is_running)
        self.save_checkpoint_action.setEnabled(controller.checkpoint_epoch is not None)
        self.resume_checkpoint_action.setEnabled(idle)

    # --- appearance -----------------------------------------------------------------------------
    def appearance(self) -> str:
        """View > Appearance: "auto" (the desktop's colour scheme), "light" or "dark"."""
        value = self.settings.value("appearance", "auto")
        return value if value in ("auto", "light", "dark") else "auto"

    def set_appearance(self, value: str) -> None:
        """Remember the appearance and apply it now."""
        self.settings.setValue("appearance", value)
        self._show_appearance()

    def _show_appearance(self) -> None:
        value = self.appearance()
        self.appearance_actions[value].setChecked(True)
        desktop = QApplication.styleHints().colorScheme()
        wanted = theme.scheme_for(desktop) if value == "auto" else value
        if wanted != theme.SCHEME:
            theme.apply_scheme(wanted)

    def desktop_scheme_changed(self, scheme: Qt.ColorScheme) -> None:
        """The desktop switched between light and dark: follow it unless the user chose one."""
        if self.appearance() == "auto":
            theme.apply_scheme(theme.scheme_for(scheme))

    # --- help -------------------------------------------------------------------------------
    def show_how_to(self) -> None:
        QMessageBox.information(self, "How to build a network", HOW_TO)

    def show_about(self) -> None:
        QMessageBox.about(self, "About netbuilder",
                          "<b>netbuilder</b><p>Build convolutional neural networks visually, train them "
                          "live, and export what they learned.</p>")

    # --- closing ----------------------------------------------------------------------------
    def ask_stop_training(self) -> bool:
        """Whether to stop the run in progress and close (tests replace it)."""
        batch = self.controller.last_batch
        where = f" (epoch {batch.epoch}, batch {batch.batch} of {batch.batches_per_epoch})" if batch else ""
        box = QMessageBox(QMessageBox.Icon.Question, "Training in progress",
                          f"A training run is in progress{where}. Stop it and close netbuilder?\n\n"
                          "The weights trained so far are lost unless you export them or save a checkpoint "
                          "first (Train > Save Checkpoint keeps the last completed epoch).",
                          QMessageBox.StandardButton.Cancel, self)
        stop = box.addButton("Stop Training and Close", QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        return box.clickedButton() is stop

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.controller.is_running and not self.ask_stop_training():
            event.ignore()  # the run goes on
            return
        if self.files.maybe_save():
            self.controller.shutdown()  # stops a run within a batch and waits for the worker
            self.try_view.shutdown()  # a classification in progress: a fraction of a second
            self.exports.runner.wait()  # an export in progress finishes (seconds at most); nothing half-written
            self.set_mode(BUILD)  # the saved layout is the builder's docks
            self._save_layout()
            # The document may outlive the window (until the interpreter exits, whose teardown
            # order is arbitrary): its undo stack must not call into deleted actions then.
            if self._tips_connected:
                self._tips_connected = False
                self.doc.undo_stack.undoTextChanged.disconnect(self._set_undo_tip)
                self.doc.undo_stack.redoTextChanged.disconnect(self._set_redo_tip)
            for helper in (self._undo_router, self._clamp_notice):
                QApplication.instance().removeEventFilter(helper)
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


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
