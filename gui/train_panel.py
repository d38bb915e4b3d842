"""The train panel: Train / Pause / Resume / Stop, the run's progress and status, and the training settings.

The settings are the project's ``training`` fields: every change goes to
``ProjectDocument.set_value("training.<field>", value)`` (one undo step) and the widgets show the
document's values again on every change. While a run goes on only the learning rate stays
editable: the controller hands it to the trainer at once. The panel owns the run actions (with
their shortcuts); the main window puts them in its Train menu and toolbar.
"""
from __future__ import annotations

import math

from PySide6.QtCore import QSettings, QSignalBlocker, QSize, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QScrollArea,
    QSpinBox,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from netbuilder.core.project import LOSSES, OPTIMIZERS
from netbuilder.core.run_events import BatchesDone, EpochsDone, RunBegan
from netbuilder.core.trainer import RunEnded
from netbuilder.gui import theme
from netbuilder.gui.class_weights_editor import ClassWeightsEditor
from netbuilder.gui.document import ProjectDocument
from netbuilder.gui.early_stopping_editor import EarlyStoppingEditor
from netbuilder.gui.engine_picker import EnginePicker
from netbuilder.gui.live_label import LiveLabel
from netbuilder.gui.schedule_editor import ScheduleEditor
from netbuilder.gui.throttle import Throttle
from netbuilder.gui.training.controller import IDLE, LOADING, PAUSED, RUNNING, STOPPING, TrainingController

# The progress bar, speed and status are redrawn at most every PROGRESS_MS (a bit under the
# worker's FLUSH_INTERVAL, so each send of batches updates them at once, with the curves, in the
# same repaint of the window); a text is set only when it changed: every new text of a wrapped
# label lays the whole panel out again.
PROGRESS_MS = 450
SHORTCUTS = {"train": "F5", "continue": "Ctrl+F5", "pause": "F6", "resume": "F6", "step": "F10", "stop": "Shift+F5"}
LOSS_TIPS = {
    "cross_entropy": "softmax + cross-entropy: the usual choice for classifying into classes",
    "squared_error": "half the squared difference to the one-hot target",
    "binary_cross_entropy": "for one sigmoid output (two classes)",
}
OPTIMIZER_TIPS = {
    "sgd": "plain stochastic gradient descent",
    "momentum": "SGD with momentum (PyTorch's rule)",
    "nesterov": "SGD with Nesterov momentum",
    "adam": "Adam (beta1 0.9, beta2 0.999): works well with its default rate 0.001",
}


class LearningRateBox(QDoubleSpinBox):
    """A rate spin box: shows 0.001 not 0.00100000, and steps along 1, 2, 5, 10, 20..."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setDecimals(8)
        self.setRange(1e-7, 100.0)

    def textFromValue(self, value: float) -> str:
        return f"{value:.6g}"

    def stepBy(self, steps: int) -> None:
        ladder = (1.0, 2.0, 5.0)
        value = self.value()
        exponent = math.floor(math.log10(value))
        mantissa = value / 10 ** exponent
        # The ladder position at or just below the value, then ``steps`` rungs up or down.
        position = exponent * 3 + max(i for i, m in enumerate(ladder) if m <= mantissa + 1e-9)
        if steps < 0 and mantissa > ladder[position % 3] + 1e-9:
            position += 1  # between rungs: the first step down lands on the rung below the value
        position += steps
        self.setValue(ladder[position % 3] * 10 ** (position // 3))


class TrainPanel(QWidget):
    """Run controls, progress and training settings of ``doc``, driving ``controller``."""

    def __init__(self, doc: ProjectDocument, controller: TrainingController, parent: QWidget | None = None,
                 settings: QSettings | None = None):
        super().__init__(parent)
        self.doc = doc
        self.controller = controller
        self._run_start = None  # RunStarted of the current run
        self._engine_text = ""  # what computes it ("torch on cuda:0 (...)")
        self._error = ""
        self._ended: RunEnded | None = None
        self._last_epoch = None
        self._pending_batch = None  # the latest BatchEnd not shown yet
        self._error_shown = False
        self.progress_updates = Throttle(self, PROGRESS_MS, self._show_progress)
        self._make_actions()

        # --- run controls and progress ---
        buttons = QHBoxLayout()
        buttons.setSpacing(4)
        self.buttons = {}
        for name in ("train", "pause", "resume", "step", "stop"):
            button = QToolButton()
            button.setDefaultAction(self.actions[name])
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            button.setObjectName(f"{name}_button")
            buttons.addWidget(button)
            self.buttons[name] = button
        self.buttons["train"].setFont(theme.font(bold=True))
        self.buttons["step"].setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)  # the row stays narrow
        buttons.addStretch(1)
        self.continue_button = QToolButton()
        self.continue_button.setDefaultAction(self.continue_action)
        self.continue_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("not started")
        # "images/s · time left · engine on device", wrapped in a narrow column; a new text each
        # update, which a QLabel would answer by laying out the whole panel
        self.speed_label = LiveLabel(lambda: theme.MUTED)
        self.metrics_label = QLabel()
        self.metrics_label.setWordWrap(True)
        run_box = QGroupBox("Run")
        run_layout = QVBoxLayout(run_box)
        run_layout.addLayout(buttons)
        run_layout.addWidget(self.continue_button, 0, Qt.AlignmentFlag.AlignLeft)
        run_layout.addWidget(self.progress)
        run_layout.addWidget(self.speed_label)
        run_layout.addWidget(self.status_label)
        run_layout.addWidget(self.metrics_label)

        # --- settings ---
        self.editors: dict[str, QWidget] = {}
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self._combo("loss", "Loss", LOSSES, LOSS_TIPS, form)
        self._combo("optimizer", "Optimiser", OPTIMIZERS, OPTIMIZER_TIPS, form)
        rate = LearningRateBox()
        self._number("learning_rate", "Learning rate", rate, form,
                     "step size of each update; can be changed while training (from the next batch on)")
        momentum = QDoubleSpinBox()
        momentum.setRange(0.0, 0.999)
        momentum.setDecimals(3)
        momentum.setSingleStep(0.05)
        self._number("momentum", "Momentum", momentum, form, "share of the previous update kept (momentum, nesterov)")
        decay = QDoubleSpinBox()
        decay.setRange(0.0, 1.0)
        decay.setDecimals(6)
        decay.setSingleStep(0.0001)
        self._number("weight_decay", "Weight decay", decay, form, "L2 penalty on the weights (0: none)")
        batch = QSpinBox()
        batch.setRange(1, 65536)
        self._number("batch_size", "Batch size", batch, form, "images per update")
        epochs = QSpinBox()
        epochs.setRange(1, 100000)
        self._number("epochs", "Epochs", epochs, form, "passes over the training images per run")
        fraction = QDoubleSpinBox()
        fraction.setRange(0.0, 0.95)
        fraction.setDecimals(2)
        fraction.setSingleStep(0.05)
        self._number("validation_fraction", "Validation", fraction, form,
                     "share of the training images held out to measure validation loss and accuracy")
        seed = QSpinBox()
        seed.setRange(0, 2**31 - 1)
        self._number("seed", "Seed", seed, form, "the same seed gives the same weights, split and order")
        self.schedule = ScheduleEditor(doc, form, self)  # its rows go into this form
        self.early_stopping = EarlyStoppingEditor(doc, form, self)
        self.class_weights = ClassWeightsEditor(doc, form, self)
        settings_box = QGroupBox("Settings")
        settings_box.setLayout(form)
        self.engine = EnginePicker(controller, settings)
        engine_box = QGroupBox("Engine")
        QVBoxLayout(engine_box).addWidget(self.engine)
        self.live_hint = QLabel("While training only the learning rate can change; with a schedule, the rate "
                                "set becomes the rate now and the schedule goes on from it.")
        self.live_hint.setWordWrap(True)
        theme.style(self.live_hint, "color: {MUTED};")
        form.addRow(self.live_hint)

        content = QWidget()
        column = QVBoxLayout(content)
        column.setContentsMargins(6, 6, 6, 6)
        column.addWidget(run_box)
        column.addWidget(settings_box)
        column.addWidget(engine_box)
        column.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(content)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._scroll = scroll
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)

        doc.valueChanged.connect(self._value_changed)
        doc.projectReplaced.connect(self._project_replaced)
        doc.inferenceChanged.connect(lambda *_: self._update_actions())
        controller.stateChanged.connect(self._state_changed)
        controller.runStarted.connect(self._run_started)
        controller.batchEnded.connect(self._batch)
        controller.epochEnded.connect(self._epoch)
        controller.runEnded.connect(self._run_ended)
        controller.error.connect(self._show_error)
        controller.trainedChanged.connect(lambda *_: self._update_actions())
        self.refresh()
        self._state_changed(controller.state)

    def minimumSizeHint(self) -> QSize:
        """As wide as the settings need beside the scroll bar: the scroll area scrolls only down,
        so a narrower panel would cut its fields and the Run box off on the right."""
        hint = super().minimumSizeHint()
        need = self._scroll.widget().minimumSizeHint().width() + self._scroll.verticalScrollBar().sizeHint().width()
        return QSize(max(hint.width(), need), hint.height())

    # --- construction --------------------------------------------------------------------------
    def _make_actions(self) -> None:
        style = self.style()
        specs = {
            "train": ("Train", QStyle.StandardPixmap.SP_MediaPlay, self._train,
                      "Train the network from fresh weights"),
            "continue": ("Continue Training", QStyle.StandardPixmap.SP_MediaSeekForward,
                         lambda: self.controller.start("continue"),
                         "Train the last run's weights for the project's number of epochs more"),
            "pause": ("Pause", QStyle.StandardPixmap.SP_MediaPause, self.controller.pause,
                      "Hold training after the batch in progress"),
            "resume": ("Resume", QStyle.StandardPixmap.SP_MediaPlay, self.controller.resume,
                       "Go on training from where it was paused"),
            "step": ("Step", QStyle.StandardPixmap.SP_MediaSkipForward, self.controller.step,
                     "Train exactly one batch, then pause; the Step inspector shows every block's values"),
            "stop": ("Stop", QStyle.StandardPixmap.SP_MediaStop, self.controller.stop,
                     "End the run after the batch in progress; the weights trained so far are kept"),
        }
        self.actions: dict[str, QAction] = {}
        for name, (text, pixmap, slot, tip) in specs.items():
            action = QAction(style.standardIcon(pixmap), text, self)
            key = SHORTCUTS[name]
            action.setShortcut(QKeySequence(key))
            action.setToolTip(f"{tip} ({key})")
            action.setStatusTip(tip)
            action.triggered.connect(slot)
            self.actions[name] = action
        self.train_action = self.actions["train"]
        self.continue_action = self.actions["continue"]
        self.pause_action = self.actions["pause"]
        self.resume_action = self.actions["resume"]
        self.step_action = self.actions["step"]
        self.stop_action = self.actions["stop"]

    def _combo(self, field: str, label: str, choices, tips: dict, form: QFormLayout) -> None:
        combo = QComboBox()
        combo.setObjectName(field)
        for i, choice in enumerate(choices):
            combo.addItem(choice.replace("_", " "), choice)
            combo.setItemData(i, tips.get(choice, ""), Qt.ItemDataRole.ToolTipRole)
        combo.activated.connect(lambda i, c=combo: self._commit(field, c.itemData(i)))
        self.editors[field] = combo
        form.addRow(label, combo)

    def _number(self, field: str, label: str, spin, form: QFormLayout, tip: str) -> None:
        spin.setObjectName(field)
        spin.setToolTip(tip)
        spin.setKeyboardTracking(False)  # one edit (and undo step) per value, not per keystroke
        spin.valueChanged.connect(lambda v: self._commit(field, v))
        self.editors[field] = spin
        form.addRow(label, spin)

    # --- settings <-> document ---------------------------------------------------------------
    def _commit(self, field: str, value) -> None:
        if isinstance(self.editors[field], QDoubleSpinBox):
            value = float(value)
        self.doc.set_value(f"training.{field}", value)

    def refresh(self) -> None:
        """Show the document's training settings (signals blocked)."""
        settings = self.doc.project.training
        for field, widget in self.editors.items():
            value = getattr(settings, field)
            with QSignalBlocker(widget):
                if isinstance(widget, QComboBox):
                    index = widget.findData(value)
                    if index < 0:  # a value the file had that is not a choice: show it as it is
                        widget.addItem(str(value), value)
                        index = widget.count() - 1
                    widget.setCurrentIndex(index)
                elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                    if widget.value() != value:
                        widget.setValue(value)
        self._update_enabled()

    def _project_replaced(self) -> None:
        """Another project: its settings, and no run to report (New/Open are refused while training)."""
        if not self.controller.is_running:
            self._run_start = self._ended = self._last_epoch = None
            self._error = ""
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
            self.progress.setFormat("not started")
            self.speed_label.clear()
            self.metrics_label.clear()
            self._update_status()
        self.refresh()

    def _value_changed(self, key: str) -> None:
        if key.startswith("training."):
            self.refresh()

    # --- controller --------------------------------------------------------------------------
    def _train(self) -> None:
        self.controller.start("new")

    def _state_changed(self, state: str) -> None:
        self._show_progress()  # paused or ended: show exactly where
        if state == LOADING:
            self._error = ""
            self._ended = None
            self._last_epoch = None
            self._run_start = None  # until this request's run starts
            self.metrics_label.clear()
            self.speed_label.clear()
            # Not a busy bar: Fusion animates that at 60 frames a second, which the GUI thread
            # paints while the worker loads the data; the status line says what goes on.
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
            self.progress.setFormat("loading the data…")
        self._update_actions()
        self._update_enabled()
        self._update_status()

    def _run_started(self, began: RunBegan) -> None:
        event = began.event
        self._run_start = event
        self._engine_text = began.engine
        self.progress.setRange(0, max(event.epochs * event.batches_per_epoch, 1))
        self.progress.setValue(0)
        self.progress.setFormat(f"epoch {event.start_epoch + 1}/{event.start_epoch + event.epochs} · batch 0/"
                                f"{event.batches_per_epoch}")
        self._update_status()

    def _batch(self, done: BatchesDone) -> None:
        """The latest batch: shown now, or when PROGRESS_MS have passed since the last one shown."""
        self._pending_batch = done.event
        self.progress_updates.request()

    def _show_progress(self) -> None:
        start, event = self._run_start, self._pending_batch
        self._pending_batch = None
        if start is None or event is None:
            return
        self.progress_updates.ran()
        bpe = event.batches_per_epoch
        done = (event.epoch - start.start_epoch - 1) * bpe + event.batch
        left_batches = self.progress.maximum() - done
        per_batch = start.train_size / max(bpe, 1)
        seconds = left_batches * per_batch / event.images_per_sec if event.images_per_sec > 0 else float("nan")
        engine = f" · {self._engine_text}" if self._engine_text else ""
        _set_text(self.speed_label, f"{event.images_per_sec:,.0f} images/s · {_duration(seconds)} left{engine}")
        if self.controller.state == RUNNING:
            self._update_status(event)
        # QProgressBar.setValue repaints at once; with updates held it is painted with the rest of
        # the window (the labels, the curves redrawn for the same batches) in one repaint.
        text = f"epoch {event.epoch}/{start.start_epoch + start.epochs} · batch {event.batch}/{bpe}"
        self.progress.setUpdatesEnabled(False)
        if self.progress.format() != text:
            self.progress.setFormat(text)
        self.progress.setValue(done)
        self.progress.setUpdatesEnabled(True)  # and update(): painted with the next repaint

    def _epoch(self, done: EpochsDone) -> None:
        e = done.event
        self._last_epoch = e
        parts = [f"epoch {e.epoch}: loss {e.train_loss:.4g}", f"accuracy {100 * e.train_accuracy:.1f}%"]
        if e.val_loss is not None:
            parts += [f"validation loss {e.val_loss:.4g}", f"validation accuracy {100 * e.val_accuracy:.1f}%"]
        _set_text(self.metrics_label, " · ".join(parts))

    def _run_ended(self, event: RunEnded) -> None:
        self._show_progress()
        self._ended = event
        if event.status == "finished":
            self.progress.setValue(self.progress.maximum())
        if self._run_start is None:  # ended while loading
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
            self.progress.setFormat("not started")
        speed = self.speed_label.text().split(" · ")[0]  # the speed and the engine, no time left
        _set_text(self.speed_label, f"{speed} · {self._engine_text}" if speed and self._engine_text else speed)
        self._update_status()

    def _show_error(self, message: str) -> None:
        self._error = message
        self._update_status()

    # --- display -------------------------------------------------------------------------------
    def _update_status(self, batch=None) -> None:
        state = self.controller.state
        error = False
        if self._error and state in (IDLE, STOPPING):
            text, error = self._error, True
        elif state == LOADING:
            text = "Loading the data…"
        elif state == RUNNING:
            start = self._run_start
            if batch is not None and start is not None:
                text = f"Training: epoch {batch.epoch} of {start.start_epoch + start.epochs}"
            else:
                text = "Training…"
        elif state == PAUSED:
            text = f"Paused — {SHORTCUTS['resume']} or Resume goes on, {SHORTCUTS['step']} or Step trains one batch"
        elif state == STOPPING:
            text = "Stopping after the batch in progress…"
        elif self._ended is not None:
            text = self._ended.message[:1].upper() + self._ended.message[1:]
            if self._last_epoch is not None and self._last_epoch.val_accuracy is not None:
                text += f" · validation accuracy {100 * self._last_epoch.val_accuracy:.1f}%"
        else:
            text = f"Ready: press Train ({SHORTCUTS['train']}) to train {self.doc.project.name}"
        _set_text(self.status_label, text)
        if error != self._error_shown:  # a style sheet is re-applied even when it is the same
            self._error_shown = error
            theme.style(self.status_label, "color: {ERROR}; background: {ERROR_FILL}; padding: 4px; "
                                           "border-radius: 3px;" if error else "")

    def _update_actions(self) -> None:
        state = self.controller.state
        idle = state == IDLE
        self.train_action.setEnabled(idle)
        errors = self.doc.inference.errors
        self.train_action.setToolTip(
            f"Train the network from fresh weights ({SHORTCUTS['train']})" if not errors else
            f"Cannot train yet: {errors[0].message}" + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")
            + f"; {SHORTCUTS['train']} shows where")
        self.continue_action.setEnabled(idle and self.controller.has_trained)
        self.pause_action.setEnabled(state in (LOADING, RUNNING))
        self.resume_action.setEnabled(state == PAUSED)
        self.step_action.setEnabled(state in (IDLE, LOADING, RUNNING, PAUSED))
        self.stop_action.setEnabled(state in (LOADING, RUNNING, PAUSED))
        paused = state == PAUSED
        self.buttons["pause"].setVisible(not paused)
        self.buttons["resume"].setVisible(paused)

    def _update_enabled(self) -> None:
        running = self.controller.is_running
        for field, widget in self.editors.items():
            widget.setEnabled(not running or field == "learning_rate")
        optimizer = self.doc.project.training.optimizer
        if not running:
            self.editors["momentum"].setEnabled(optimizer in ("momentum", "nesterov"))
        self.live_hint.setVisible(running)
        self.schedule.set_enabled(not running)
        self.early_stopping.set_enabled(not running)
        self.class_weights.set_enabled(not running)
        self.engine.set_running(running)


def _set_text(label: QLabel | LiveLabel, text: str) -> None:
    """``label.setText(text)`` unless it shows ``text`` already (a new text lays its parent out again)."""
    if label.text() != text:
        label.setText(text)


def _duration(seconds: float) -> str:
    """"12 s", "1 min 20 s", "2 h 05 min"."""
    if not math.isfinite(seconds):
        return "time"
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
