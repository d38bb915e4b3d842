"""The data panel: choose the dataset, see samples and class counts, fit the network to it.

The choice is the project's ``dataset`` spec (``netbuilder.core.datasets.registry``), set through the
document (one undo step; paths relative to the project file where possible). The panel shows
what the spec describes, read by ``netbuilder.core.datasets.preview`` on a background thread, and says
when the images or classes do not fit the network, with a button that fits the network to the
data (input shape, class count and the last dense block's units) as one undo step.
Fashion-MNIST and MNIST are found on disk or downloaded, again off the GUI thread, with a
progress bar and a Cancel button. Work starts only while the panel is visible. A set too large
for memory also shows how training reads it and its cache's progress and size (``CacheBox``).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from netbuilder.core.datasets import download
from netbuilder.core.datasets.base import DatasetError
from netbuilder.core.datasets.preview import Preview, preview_dataset
from netbuilder.core.datasets.registry import make_spec, resolve_path
from netbuilder.core.run_events import DataReady
from netbuilder.gui import theme
from netbuilder.gui.background import Jobs
from netbuilder.gui.document import ProjectDocument
from netbuilder.gui.views.augment_box import AugmentBox
from netbuilder.gui.views.data_cache_box import CacheBox
from netbuilder.gui.views.data_download import BUILTIN, DownloadBox
from netbuilder.gui.views.data_fit import FitBox, dims_text
from netbuilder.gui.views.tiles import GREY, TileGrid

PER_CLASS = 8  # sample images previewed per class

# (combo label, spec kind); kinds with a path ask for a file or folder when chosen.
SOURCES = (
    ("Built-in shapes", "shapes"),
    ("Fashion-MNIST", "fashion-mnist"),
    ("MNIST", "mnist"),
    ("Folder of IDX files…", "idx"),
    ("Image folder…", "folder"),
    (".npz file…", "npz"),
    ("CSV file…", "csv"),
)
FOLDER_KINDS = ("idx", "folder")
FILE_FILTERS = {"npz": "NumPy archives (*.npz);;All files (*)", "csv": "CSV files (*.csv *.txt);;All files (*)"}


def source_of(spec: Any) -> dict:
    """The part of a dataset spec that names the data (the normalisation describes its use)."""
    return {k: v for k, v in spec.items() if k != "normalization"} if isinstance(spec, dict) else {}


def _failure_text(exc: BaseException) -> str:
    """What the panel says of a failed preview."""
    if isinstance(exc, DatasetError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class _ClassRow(QWidget):
    """One class of the preview: a line with its name and counts over one row of sample images
    (as many as fit the width: the panel may be a narrow column)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.grid = TileGrid(tile_size=52, max_rows=1)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 3, 0, 3)
        box.setSpacing(2)
        box.addWidget(self.label)
        box.addWidget(self.grid)


class DataPanel(QWidget):
    """Dataset choice, preview grid with class counts, and the network-fit check for ``doc``."""

    def __init__(self, doc: ProjectDocument, controller, parent: QWidget | None = None):
        super().__init__(parent)
        self.doc = doc
        self.controller = controller
        self.preview: Preview | None = None
        self._shown_key: Any = None  # (source spec, base dir) the panel shows or is loading
        self._job = 0
        self._preview_job = 0  # the preview being read; results of older ones are dropped
        # Reading runs as background jobs; what arrives after the panel is gone is dropped.
        self._jobs = Jobs(self)
        self._rows: list[_ClassRow] = []

        # --- source
        self.source_combo = QComboBox()
        for label, kind in SOURCES:
            self.source_combo.addItem(label, kind)
        self.source_combo.setToolTip("Where the training images come from")
        self.source_combo.activated.connect(self._source_activated)
        self.choose_button = QPushButton("Choose…")
        self.choose_button.setToolTip("Pick another file or folder of this kind")
        self.choose_button.clicked.connect(lambda: self._choose(self._current_kind()))
        self.source_label = QLabel()
        self.source_label.setWordWrap(True)
        self.source_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        theme.style(self.source_label, "color: {MUTED};")
        top = QHBoxLayout()
        top.addWidget(QLabel("Dataset"))
        top.addWidget(self.source_combo, 1)
        top.addWidget(self.choose_button)

        # --- download (of the built-in datasets, when they are not on this computer)
        self.download_box = DownloadBox()
        self.download_box.finished.connect(self._downloaded)
        self.download_label, self.download_button = self.download_box.label, self.download_box.button
        self.cancel_button, self.download_bar = self.download_box.cancel_button, self.download_box.bar

        # --- status, summary, notes, fit
        self.busy_bar = QProgressBar()
        self.busy_bar.setRange(0, 0)  # indeterminate: the reader gives no fraction
        self.busy_bar.setFormat("")
        self.busy_bar.setMaximumHeight(8)
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        theme.style(self.error_label, "color: {ERROR}; background: {ERROR_FILL}; padding: 6px;")
        self.summary_label = QLabel()
        self.summary_label.setWordWrap(True)
        self.notes_label = QLabel()
        self.notes_label.setWordWrap(True)
        theme.style(self.notes_label, "color: {WARNING_TEXT}; background: {WARNING_FILL}; padding: 6px;")
        self.fit_box = FitBox(doc)  # what keeps the data from the network, and the button that fits it
        self.fit_label, self.fit_button = self.fit_box.label, self.fit_box.button
        self.run_label = QLabel()
        self.run_label.setWordWrap(True)  # a narrow column wraps it instead of scrolling sideways
        theme.style(self.run_label, "color: {MUTED};")

        # --- preview grid
        self.rows_box = QWidget()
        self.rows_layout = QVBoxLayout(self.rows_box)
        self.rows_layout.setContentsMargins(0, 0, 0, 0)
        self.rows_layout.setSpacing(2)
        self.rows_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(self.rows_box)

        box = QVBoxLayout(self)
        box.setContentsMargins(6, 6, 6, 6)
        box.addLayout(top)
        box.addWidget(self.source_label)
        box.addWidget(self.download_box)
        box.addWidget(self.busy_bar)
        box.addWidget(self.error_label)
        box.addWidget(self.summary_label)
        self.cache_box = CacheBox()
        box.addWidget(self.cache_box)
        box.addWidget(self.fit_box)
        box.addWidget(self.notes_label)
        self.augment_box = AugmentBox(doc)  # the training settings' augmentation, shown on this data
        box.addWidget(self.augment_box)
        box.addWidget(scroll, 1)
        box.addWidget(self.run_label)
        for w in (self.download_box, self.busy_bar, self.error_label, self.notes_label, self.fit_box, self.run_label):
            w.hide()

        doc.valueChanged.connect(self._value_changed)
        doc.projectReplaced.connect(self.refresh)
        doc.pathChanged.connect(self.refresh)
        doc.lockChanged.connect(self._update_enabled)
        controller.datasetReady.connect(self._dataset_ready)
        self._sync_combo()
        self._update_enabled()

    # --- file dialogs (tests replace these) -------------------------------------------------------
    def choose_folder(self, title: str) -> str | None:
        path = QFileDialog.getExistingDirectory(self, title, str(self._start_dir()))
        return path or None

    def choose_file(self, title: str, filters: str) -> str | None:
        path, _ = QFileDialog.getOpenFileName(self, title, str(self._start_dir()), filters)
        return path or None

    # --- reading the document ---------------------------------------------------------------------
    def base_dir(self) -> Path | None:
        """The folder relative dataset paths start from: the project file's, if it has one."""
        return self.doc.path.parent if self.doc.path is not None else None

    def _spec(self) -> dict:
        spec = self.doc.project.dataset
        return spec if isinstance(spec, dict) else {}

    def _current_kind(self) -> str:
        return self._spec().get("kind", "shapes")

    def _start_dir(self) -> Path:
        spec, base = self._spec(), self.base_dir()
        if "path" in spec:
            where = resolve_path(spec["path"], base)
            return where if where.is_dir() else where.parent
        return base or Path.home()

    # --- choosing ---------------------------------------------------------------------------------
    def _source_activated(self, index: int) -> None:
        kind = self.source_combo.itemData(index)
        if kind == self._current_kind() and kind not in FOLDER_KINDS + tuple(FILE_FILTERS):
            return
        if kind == "shapes":
            self._set_spec({"kind": "shapes"})
        elif kind in BUILTIN:
            self._set_spec(make_spec(kind, None))
        else:
            self._choose(kind)
        self._sync_combo()  # a cancelled dialog leaves the old choice showing

    def _choose(self, kind: str) -> None:
        label = dict((k, l) for l, k in SOURCES)[kind].rstrip("…")
        if kind in FOLDER_KINDS:
            path = self.choose_folder(f"Choose the {label.lower()}")
        elif kind in FILE_FILTERS:
            path = self.choose_file(f"Choose the {label}", FILE_FILTERS[kind])
        else:
            return
        if not path:
            return
        try:
            spec = make_spec(kind, path, self.base_dir())
        except DatasetError as exc:
            self._show_error(str(exc))
            return
        self._set_spec(spec)

    def _set_spec(self, spec: dict) -> None:
        """One undo step of its own; the preview follows through the document's valueChanged."""
        if source_of(spec) == source_of(self._spec()) or self.doc.locked:
            return
        what = spec.get("path") or dict((k, l) for l, k in SOURCES)[spec["kind"]]
        # In a macro: consecutive project-value edits of one key merge into one undo step (made for
        # typing), but two dataset choices are two decisions, each undone on its own.
        stack = self.doc.undo_stack
        stack.beginMacro(f"Choose dataset {what}")
        try:
            self.doc.set_value("dataset", spec)
        finally:
            stack.endMacro()

    # --- document and controller signals -----------------------------------------------------------
    def _value_changed(self, key: str) -> None:
        if key == "dataset":
            self.refresh()
        elif key in ("input_shape", "num_classes"):
            self._update_fit()

    def _dataset_ready(self, info: DataReady) -> None:
        self.run_label.setText(f"This run trains on {info.train_size:,} images and validates on {info.val_size:,}.")
        self.run_label.show()

    def _update_enabled(self, *_args) -> None:
        editable = not self.doc.locked
        for w in (self.source_combo, self.choose_button, self.fit_button):
            w.setEnabled(editable)
        self.choose_button.setVisible(self._current_kind() in FOLDER_KINDS + tuple(FILE_FILTERS))
        tip = "" if editable else f"Locked: {self.doc.lock_reason}"
        self.source_combo.setToolTip(tip or "Where the training images come from")

    def _sync_combo(self) -> None:
        kind = self._current_kind()
        i = self.source_combo.findData(kind)
        self.source_combo.setCurrentIndex(max(i, 0))
        self._update_enabled()
        spec = self._spec()
        if "path" in spec:
            where = resolve_path(spec["path"], self.base_dir())
            self.source_label.setText(f"{spec['path']}" + ("" if where.exists() else "  (not found)"))
            self.source_label.show()
        elif kind in BUILTIN:
            found = download.locate(kind)
            self.source_label.setText(f"found in {found}" if found else "not on this computer yet")
            self.source_label.show()
        else:
            self.source_label.hide()

    # --- preview ----------------------------------------------------------------------------------
    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.refresh()

    def refresh(self, *_args) -> None:
        """Show what the project's dataset spec describes (read in the background if needed)."""
        self._sync_combo()
        if not self.isVisible():
            self._shown_key = None  # look again when shown
            return
        spec = source_of(self._spec())
        key = (repr(sorted(spec.items())), str(self.base_dir()))
        if key == self._shown_key:
            self._update_fit()
            return
        self._shown_key = key
        kind = spec.get("kind", "shapes")
        self._clear_preview()
        if kind in BUILTIN and download.locate(kind) is None:
            self._offer_download(kind)
            return
        self.download_box.setVisible(self.downloading)
        base = self.base_dir()
        self._preview_job = self._next_job()
        self._start(self._preview_job, lambda _report: preview_dataset(spec, base, PER_CLASS), self._preview_done,
                    self._preview_failed)
        self.busy_bar.show()
        theme.set_text(self.summary_label, "<span style='color:{MUTED}'>Reading the dataset…</span>")

    def _next_job(self) -> int:
        self._job += 1
        return self._job

    def _start(self, job: int, work: Callable[[Callable[[Any], None]], Any], on_done: Callable[[Any], None],
               on_fail: Callable[[str], None]) -> None:
        """Run ``work(report)`` in the background as job ``job``; what an older preview reports once
        a newer one has started is dropped."""
        def current() -> bool:
            return job == self._preview_job

        self._jobs.start(work, done=lambda result: on_done(result) if current() else None,
                         failed=lambda exc: on_fail(_failure_text(exc)) if current() else None, name="data")

    def _preview_failed(self, message: str) -> None:
        self.busy_bar.hide()
        self.summary_label.setText("")
        self._show_error(f"Cannot read this dataset: {message}")

    def _preview_done(self, preview: Preview) -> None:
        self.busy_bar.hide()
        self.preview = preview
        self.augment_box.set_sample(next((s[0] for s in preview.samples if len(s)), None))
        self.error_label.hide()
        k = preview.num_classes
        total = sum(preview.counts)
        test = f" · {sum(preview.test_counts):,} test images" if preview.test_counts else " · no test split"
        self.summary_label.setText(
            f"<b>{preview.name}</b> · {k} classes · {total:,} training images{test} · "
            f"images {dims_text(preview.input_shape)} (channels × height × width)")
        if preview.notes:
            self.notes_label.setText("⚠ " + "<br>⚠ ".join(preview.notes))
            self.notes_label.show()
        self.cache_box.show_plan(self._spec(), [*preview.counts, *(preview.test_counts or ())], preview.input_shape,
                                 self.doc.project.input_shape)
        top = max(preview.counts) if preview.counts else 0
        for i, name in enumerate(preview.class_names):
            row = _ClassRow()
            count = preview.counts[i]
            small = count == 0 or count * 2 <= top
            colour = "WARNING_TEXT" if small else "MUTED"
            tests = f" · {preview.test_counts[i]:,} test" if preview.test_counts else ""
            theme.set_text(row.label, f"<b>{name}</b> <span style='color:{{{colour}}}'>· {count:,} images</span>"
                                      f"<span style='color:{{MUTED}}'>{tests}</span>")
            samples = preview.samples[i]
            if len(samples):
                if samples.shape[1] == 3:
                    row.grid.set_tiles(samples.transpose(0, 2, 3, 1))
                else:
                    row.grid.set_tiles(samples[:, 0] if samples.shape[1] == 1 else samples.mean(axis=1), GREY)
            self.rows_layout.insertWidget(i, row)
            self._rows.append(row)
        self._update_fit()

    def _clear_preview(self) -> None:
        self.preview = None
        self.augment_box.set_sample(None)
        for row in self._rows:
            self.rows_layout.removeWidget(row)
            row.deleteLater()
        self._rows = []
        for w in (self.error_label, self.notes_label, self.fit_box, self.busy_bar):
            w.hide()
        self.cache_box.clear()
        self.summary_label.setText("")

    def _show_error(self, text: str) -> None:
        self.error_label.setText(text)
        self.error_label.show()

    # --- for tests and callers ------------------------------------------------------------------------
    def class_rows(self) -> list[str]:
        """The preview's class labels as plain text, e.g. "circle · 1,200 images · 200 test"."""
        out = []
        for row in self._rows:
            text = row.label.text()
            for tag in ("<b>", "</b>", "</span>"):
                text = text.replace(tag, "")
            while "<span" in text:
                start = text.index("<span")
                text = text[:start] + text[text.index(">", start) + 1:]
            out.append(text)
        return out

    def sample_count(self, class_index: int) -> int:
        """Sample images of a class read for the preview (the row draws as many as fit)."""
        return self._rows[class_index].grid.count

    @property
    def fit_problems(self) -> list[str]:
        """Why the previewed dataset does not fit the project's network (empty: it fits)."""
        return self.fit_box.problems(self.preview)

    # --- fitting the network to the data --------------------------------------------------------------
    def _update_fit(self) -> None:
        # An image folder without its own input_shape is resized to the network's input when loaded.
        resized = self._current_kind() == "folder" and "input_shape" not in self._spec()
        self.fit_box.update_for(self.preview, resized)

    def fit_network(self) -> None:
        """Give the network the dataset's input shape and class count: one undo step."""
        self.fit_box.fit_network()

    # --- download ---------------------------------------------------------------------------------
    def _offer_download(self, kind: str) -> None:
        self.download_box.offer(kind)

    def start_download(self) -> None:
        self.download_box.start()

    def cancel_download(self) -> None:
        self.download_box.cancel()

    def _downloaded(self, ok: bool) -> None:
        if ok:
            self._shown_key = None
            self.refresh()

    @property
    def downloading(self) -> bool:
        return self.download_box.downloading

    @property
    def fetch_function(self) -> Callable[..., Path]:
        return self.download_box.fetch_function

    @fetch_function.setter
    def fetch_function(self, fetch: Callable[..., Path]) -> None:
        self.download_box.fetch_function = fetch
