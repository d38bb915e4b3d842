"""File > Export Model…: choose a format (ONNX, PyTorch, numpy, a PyTorch training script) and where to write it."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QButtonGroup,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

FORMATS = (
    ("onnx", "ONNX", "One .onnx file for onnxruntime, OpenCV, TensorRT and most inference tools."),
    ("torch", "PyTorch", "A folder with a readable model.py (an nn.Module) and weights.pt, its state_dict."),
    ("numpy", "numpy", "A folder with weights.npz and predict.py, a forward pass that needs only numpy."),
    ("torch-train", "PyTorch training script",
     "A folder with train.py beside model.py, the seed's initial weights and the data: trains the project "
     "from scratch with only torch and numpy, as the app does."),
)


class ExportDialog(QDialog):
    """Returns (format, path) through ``choice()`` after ``exec()`` is accepted.

    ``start`` is the suggested destination without suffix (e.g. ``~/lenet5``); an ONNX export
    gets ``.onnx`` appended, the others use it as a folder.
    """

    def __init__(self, parent: QWidget | None = None, start: str | Path | None = None, fmt: str = "onnx"):
        super().__init__(parent)
        self.setWindowTitle("Export Model")
        self._stem = str(start) if start else str(Path.home() / "network")
        self._edited = False

        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Export the trained network; it is verified against the app's own "
                                "predictions before it counts."))
        self.format_group = QButtonGroup(self)
        self.format_buttons: dict[str, QRadioButton] = {}
        for key, title, text in FORMATS:
            button = QRadioButton(title)
            button.setProperty("format", key)
            note = QLabel(text)
            note.setWordWrap(True)
            note.setIndent(24)
            note.setEnabled(False)  # greyed: an explanation, not a control
            self.format_group.addButton(button)
            self.format_buttons[key] = button
            layout.addWidget(button)
            layout.addWidget(note)

        row = QHBoxLayout()
        self.path_edit = QLineEdit()
        self.path_edit.textEdited.connect(self._mark_edited)
        self.browse_button = QPushButton("Browse…")
        self.browse_button.clicked.connect(self.browse)
        row.addWidget(self.path_edit, 1)
        row.addWidget(self.browse_button)
        form = QFormLayout()
        self.path_label = QLabel()
        form.addRow(self.path_label, row)
        layout.addLayout(form)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Export")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)

        self.format_group.buttonToggled.connect(self._format_changed)
        self.format_buttons.get(fmt, self.format_buttons["onnx"]).setChecked(True)
        self._format_changed()

    # --- the choice ---------------------------------------------------------------------------
    @property
    def format(self) -> str:
        button = self.format_group.checkedButton()
        return button.property("format") if button else "onnx"

    def set_format(self, fmt: str) -> None:
        self.format_buttons[fmt].setChecked(True)

    @property
    def path(self) -> str:
        return self.path_edit.text().strip()

    def choice(self) -> tuple[str, str] | None:
        """(format, path), or None without a destination."""
        return (self.format, self.path) if self.path else None

    # --- browsing -----------------------------------------------------------------------------
    def browse(self) -> None:
        chosen = self.ask_destination(self.format, self.path or self._default_path())
        if chosen:
            self.path_edit.setText(chosen)
            self._edited = True
            self._update_ok()

    def ask_destination(self, fmt: str, start: str) -> str | None:
        """A file (ONNX) or folder (PyTorch, numpy) chosen in a dialog; None if cancelled. Tests replace it."""
        if fmt == "onnx":
            path, _ = QFileDialog.getSaveFileName(self, "Export ONNX Model", start,
                                                  "ONNX models (*.onnx);;All files (*)")
        else:
            path = QFileDialog.getExistingDirectory(self, "Export Into Folder", str(Path(start).parent))
        return path or None

    # --- internals ----------------------------------------------------------------------------
    def _default_path(self) -> str:
        return self._stem + ".onnx" if self.format == "onnx" else self._stem + f"_{self.format}"

    def _format_changed(self, *_) -> None:
        onnx = self.format == "onnx"
        self.path_label.setText("File:" if onnx else "Folder:")
        self.path_edit.setToolTip("The .onnx file to write" if onnx
                                  else "The folder to write into (created if missing)")
        if not self._edited:
            self.path_edit.setText(self._default_path())
        self._update_ok()

    def _mark_edited(self, *_) -> None:
        self._edited = True
        self._update_ok()

    def _update_ok(self) -> None:
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(bool(self.path))
