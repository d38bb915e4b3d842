"""New, Open, Save, Save As, the recent-files list and the "save changes?" prompt.

Every question to the user goes through a small method (``ask_open_path``, ``ask_save_path``,
``ask_save_changes``, ``show_error``) so tests can replace it; the rest is plain logic on the
document, which keeps the project unchanged whenever a file cannot be read.
"""
from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QObject, QSettings, QStandardPaths, Signal
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from netbuilder.core.errors import ERROR, ProjectError
from netbuilder.core.project import load_project
from netbuilder.gui.document import ProjectDocument

ORGANIZATION = "netbuilder"
APPLICATION = "netbuilder"
MAX_RECENT = 8
RECENT_KEY = "recent_files"
FILE_FILTER = "netbuilder projects (*.json);;All files (*)"
MAX_LISTED_PROBLEMS = 12  # more go to the message box's details only

SAVE, DISCARD, CANCEL = "save", "discard", "cancel"


def app_settings() -> QSettings:
    """The user's netbuilder settings (an INI file, so tests can redirect it with QSettings.setPath)."""
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope,
                     QCoreApplication.organizationName() or ORGANIZATION,
                     QCoreApplication.applicationName() or APPLICATION)


class ProjectFiles(QObject):
    """The file operations of the main window, on one document; each returns True if it happened."""

    # The recent-files list changed (a file opened or saved, a missing one pruned, the list cleared).
    recentChanged = Signal()
    # A short message for the status bar ("Saved lenet.json").
    message = Signal(str)

    def __init__(self, doc: ProjectDocument, parent_widget: QWidget | None = None,
                 settings: QSettings | None = None):
        super().__init__(parent_widget)
        self.doc = doc
        self.parent_widget = parent_widget
        self.settings = settings if settings is not None else app_settings()

    # --- naming -------------------------------------------------------------------------------
    def display_name(self) -> str:
        """The file name of the project, or before its first save the project's name."""
        if self.doc.path is not None:
            return self.doc.path.name
        return self.doc.project.name.strip() or "Untitled"

    # --- operations -------------------------------------------------------------------------
    def new(self, template: str | None = None) -> bool:
        """Replace the project with a template (file stem such as "lenet5") or an empty one."""
        if not self._replaceable() or not self.maybe_save():
            return False
        self.doc.new_project(template)
        self.message.emit(f"New project from {template}" if template else "New empty project")
        return True

    def open(self, path: str | os.PathLike | None = None) -> bool:
        """Open ``path`` (or one the user picks); a bad file is reported and changes nothing."""
        if not self._replaceable():
            return False
        path = path if path is not None else self.ask_open_path()
        if not path:
            return False
        path = Path(path)
        try:
            load_project(path)  # read it first: a bad file should not cost a "save changes?" question
        except ProjectError as exc:
            if not path.exists():
                self._forget(path)
            self._show_problems(f"Cannot open {path.name}", exc)
            return False
        if not self.maybe_save():
            return False
        try:
            self.doc.open(path)
        except ProjectError as exc:  # changed between the two reads
            self._show_problems(f"Cannot open {path.name}", exc)
            return False
        self._remember(path)
        self.message.emit(f"Opened {path}")
        return True

    def save(self) -> bool:
        """Save to the project's file; asks where first if it has none yet."""
        if self.doc.path is None:
            return self.save_as()
        return self._write(None)

    def save_as(self, path: str | os.PathLike | None = None) -> bool:
        """Save to ``path`` (or one the user picks); the project then belongs to that file."""
        path = path if path is not None else self.ask_save_path()
        if not path:
            return False
        path = Path(path)
        if not path.suffix:
            path = path.with_suffix(".json")
        return self._write(path)

    def maybe_save(self) -> bool:
        """Before unsaved changes would be lost: ask, and save if asked to. False means stop."""
        if not self.doc.modified:
            return True
        answer = self.ask_save_changes(self.display_name())
        if answer == SAVE:
            return self.save()
        return answer == DISCARD

    # --- recent files -------------------------------------------------------------------------
    def recent_files(self) -> list[str]:
        """Recently opened or saved files, most recent first; files that no longer exist are dropped."""
        stored = self._stored_recent()
        existing = [p for p in stored if Path(p).is_file()]
        if existing != stored:
            self._store_recent(existing)
        return existing

    def clear_recent(self) -> None:
        self._store_recent([])

    def _remember(self, path: Path) -> None:
        entry = _recent_key(path)
        self._store_recent(([entry] + [p for p in self._stored_recent() if p != entry])[:MAX_RECENT])

    def _forget(self, path: Path) -> None:
        entry = _recent_key(path)
        stored = self._stored_recent()
        if entry in stored:
            self._store_recent([p for p in stored if p != entry])

    def _stored_recent(self) -> list[str]:
        value = self.settings.value(RECENT_KEY, [])
        if isinstance(value, str):  # an INI file gives back a one-item list as a plain string
            value = [value]
        return [str(v) for v in value or [] if v]

    def _store_recent(self, paths: list[str]) -> None:
        self.settings.setValue(RECENT_KEY, list(paths))
        self.settings.sync()
        self.recentChanged.emit()

    # --- dialogs (tests replace these) ------------------------------------------------------
    def ask_open_path(self) -> str | None:
        path, _ = QFileDialog.getOpenFileName(self.parent_widget, "Open project", self._start_folder(),
                                              FILE_FILTER)
        return path or None

    def ask_save_path(self) -> str | None:
        if self.doc.path is not None:
            start = str(self.doc.path)
        else:
            start = str(Path(self._start_folder()) / f"{_file_stem(self.doc.project.name)}.json")
        path, _ = QFileDialog.getSaveFileName(self.parent_widget, "Save project as", start, FILE_FILTER)
        return path or None

    def ask_save_changes(self, name: str) -> str:
        """SAVE, DISCARD or CANCEL."""
        box = QMessageBox(QMessageBox.Icon.Warning, "Unsaved changes", f"Save changes to {name}?",
                          QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                          | QMessageBox.StandardButton.Cancel, self.parent_widget)
        box.setInformativeText("Your changes will be lost if you don't save them.")
        box.setDefaultButton(QMessageBox.StandardButton.Save)
        answer = box.exec()
        return {QMessageBox.StandardButton.Save: SAVE,
                QMessageBox.StandardButton.Discard: DISCARD}.get(QMessageBox.StandardButton(answer), CANCEL)

    def show_error(self, title: str, text: str, details: str = "") -> None:
        box = QMessageBox(QMessageBox.Icon.Critical, title, text, QMessageBox.StandardButton.Ok,
                          self.parent_widget)
        if details:
            box.setDetailedText(details)
        box.exec()

    # --- internals --------------------------------------------------------------------------
    def _replaceable(self) -> bool:
        """False (with a status message) while the project is locked, e.g. during training."""
        if self.doc.locked:
            self.message.emit(f"Cannot replace the project now: {self.doc.lock_reason}")
        return not self.doc.locked

    def _write(self, path: Path | None) -> bool:
        try:
            saved = self.doc.save(path)
        except (ProjectError, OSError) as exc:
            target = path or self.doc.path
            self.show_error("Cannot save", f"The project was not saved to {target}.\n\n{_reason(exc)}\n\n"
                            "It is still open: choose File > Save As… to save it elsewhere.", str(exc))
            return False
        self._remember(saved)
        self.message.emit(f"Saved {saved}")
        return True

    def _show_problems(self, title: str, exc: ProjectError) -> None:
        problems = exc.problems
        errors = [p for p in problems if p.severity == ERROR] or problems
        listed = "\n".join(f"• {p.message}" for p in errors[:MAX_LISTED_PROBLEMS])
        more = len(errors) - MAX_LISTED_PROBLEMS
        if more > 0:
            listed += f"\n… and {more} more (see Show Details)"
        count = f"{len(errors)} problem{'s' if len(errors) != 1 else ''}"
        text = (f"{exc.source or 'The file'} is not a project netbuilder can open ({count}):\n\n{listed}\n\n"
                "The current project is still open, unchanged.")
        details = "\n".join(f"{p.severity}: {p.message}" for p in problems)
        self.show_error(title, text, details)

    def _start_folder(self) -> str:
        recent = self._stored_recent()
        if recent:
            return str(Path(recent[0]).parent)
        return QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation) or str(Path.home())


def _reason(exc: Exception) -> str:
    if isinstance(exc, ProjectError):
        return "; ".join(p.message for p in exc.problems)
    return str(exc)


def _file_stem(name: str) -> str:
    """A file name from a project name: "LeNet-5" -> "LeNet-5", "a/b: c" -> "a_b_ c"."""
    stem = "".join("_" if ch in '/\\:*?"<>|' else ch for ch in name).strip(" .")
    return stem or "Untitled"


def _recent_key(path: Path) -> str:
    """The absolute path a recent-files entry is kept under (a symbolic link that loops, which
    ``resolve`` refuses, is kept as it is named)."""
    try:
        return str(path.resolve())
    except (OSError, RuntimeError):
        return os.path.abspath(path)
