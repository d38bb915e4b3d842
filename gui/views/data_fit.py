"""The Data tab's fit box: why the dataset does not fit the network, and one click that fits it.

``FitBox`` shows the problems ``core.datasets.preview.fit_problems`` finds between the project
and a dataset's preview (in red when they stop training, as a note when an image folder is only
resized), and its button gives the network the data's input shape and class count in one undo
step.
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QLabel, QPushButton, QVBoxLayout, QWidget

from netbuilder.core.datasets.preview import Preview, match_project
from netbuilder.core.datasets.preview import fit_problems as dataset_fit_problems
from netbuilder.gui import theme


def dims_text(shape) -> str:
    """A shape as the Data tab writes it: 3×28×28."""
    return "×".join(str(int(d)) for d in shape)


class FitBox(QFrame):
    """The problems between ``doc``'s network and a previewed dataset, and the button that fits it."""

    def __init__(self, doc, parent: QWidget | None = None):
        super().__init__(parent)
        self.doc = doc
        self.preview: Preview | None = None
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.button = QPushButton()
        self.button.clicked.connect(self.fit_network)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.label)
        layout.addWidget(self.button, 0, Qt.AlignmentFlag.AlignLeft)

    def problems(self, preview: Preview | None) -> list[str]:
        """Why ``preview``'s dataset does not fit the project's network (empty: it fits)."""
        if preview is None:
            return []
        return dataset_fit_problems(self.doc.project, preview.input_shape, preview.num_classes)

    def update_for(self, preview: Preview | None, resized: bool) -> None:
        """Show what keeps ``preview``'s data from the network, or hide; ``resized``: an image
        folder without its own input_shape, resized to the network's input when loaded."""
        self.preview = preview
        problems = self.problems(preview)
        if not problems:
            self.hide()
            return
        lines, blocking = [], False
        for problem in problems:
            if resized and problem.startswith("the project takes"):  # worth knowing; training goes on
                lines.append(f"the images ({dims_text(preview.input_shape)}) will be resized to the network's input "
                             f"({dims_text(self.doc.project.input_shape)}) when loading; fitting the network to them "
                             "keeps their size")
            else:
                lines.append(problem)
                blocking = True
        intro = "This dataset does not fit the network:" if blocking else "Note:"
        colour, fill = ("ERROR", "ERROR_FILL") if blocking else ("WARNING_TEXT", "WARNING_FILL")
        self.label.setText(intro + "<br>" + "<br>".join(f"• {s}" for s in lines))
        theme.style(self.label, f"color: {{{colour}}};")
        theme.style(self, f"QFrame {{ background: {{{fill}}}; }}")
        shape, classes = dims_text(preview.input_shape), preview.num_classes
        self.button.setText(f"Set the input to {shape} and the classes to {classes}")
        self.show()

    def fit_network(self) -> None:
        """Give the network the dataset's input shape and class count: one undo step."""
        p, doc = self.preview, self.doc
        if p is None or doc.locked:
            return
        before = doc.project
        target = match_project(before, p.input_shape, p.num_classes)
        old_blocks = [dict(b) for b in before.blocks]
        doc.undo_stack.beginMacro("Fit the network to the dataset")
        try:
            if tuple(target.input_shape) != tuple(before.input_shape):
                doc.set_value("input_shape", tuple(target.input_shape))
            if target.num_classes != before.num_classes:
                doc.set_value("num_classes", target.num_classes)
            for i, (old, new) in enumerate(zip(old_blocks, target.blocks)):
                for field, value in new.items():
                    if old.get(field) != value:
                        doc.set_block_field(i, field, value)
        finally:
            doc.undo_stack.endMacro()
