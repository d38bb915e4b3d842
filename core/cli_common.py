"""What every ``netbuilder`` command shares: exit codes, one-line errors, and finding a project
(a file, or a bundled example by name)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from netbuilder.core.errors import ProjectError

EXIT_OK, EXIT_ERROR, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130


def error(message: str) -> None:
    print(f"netbuilder: {message}", file=sys.stderr)


def resolve_project(name: str) -> tuple[Path, bool] | None:
    """(path, is_bundled) of the project ``name``: a file if there is one, else a bundled example
    of that name (said on stderr); None after saying what is wrong."""
    from netbuilder.core.resources import example_path
    from netbuilder.core.untrusted import PROJECT_FILE_LIMIT, check_regular_file

    p = Path(name)
    if p.exists() and not p.is_dir():
        try:  # a FIFO, a device or a huge file is bad input (exit 1), not an invalid project (2)
            check_regular_file(p, ProjectError, "project file", PROJECT_FILE_LIMIT)
        except ProjectError as exc:
            error(str(exc))
            return None
        return p, False
    if p.is_dir():
        error(f"{p}: is a folder, not a project file")
        return None
    if os.path.lexists(p):
        error(f"{p}: is a symbolic link that leads nowhere (its target is missing, or it loops)")
        return None
    bare = p.name == name  # "lenet5", not "some/folder/lenet5.json"
    example = example_path(name) if bare else None
    if example is not None:
        print(f"netbuilder: no file {name!r} here; using the bundled example {example.stem!r} ({example})",
              file=sys.stderr)
        return example, True
    hint = " (nor a bundled example of that name: 'netbuilder examples' lists them)" if bare else ""
    error(f"{p}: no such file{hint}")
    return None


def open_valid_project(name: str):
    """(path, project, inference) of the valid project ``name`` (a file or a bundled example), or the
    exit code after saying what is wrong: ``resolve_project`` then ``load_valid_project``."""
    found = resolve_project(name)
    if found is None:
        return EXIT_ERROR
    loaded = load_valid_project(found[0])
    if isinstance(loaded, int):
        return loaded
    return (found[0], *loaded)


def load_valid_project(path):
    """(project, inference) of a valid project file, or the exit code after saying what is wrong."""
    from netbuilder.core.inference import validate
    from netbuilder.core.project import load_project

    try:
        project = load_project(path)
        return project, validate(project)
    except ProjectError as exc:
        report_problems(exc, str(path))
        return EXIT_INVALID


def report_problems(exc: ProjectError, path: str) -> None:
    """One line for one error (``netbuilder: FILE: block 1 (conv): ...``), else a count and a list.

    Only the errors: they are what stops the command (the warnings show in a valid project's summary).
    """
    problems = [p for p in exc.problems if p.severity == "error"] or exc.problems
    if len(problems) == 1:
        print(f"netbuilder: {path}: {problems[0].message}", file=sys.stderr)
        return
    errors = sum(p.severity == "error" for p in problems)
    print(f"netbuilder: {path}: {errors} error{'s' if errors != 1 else ''}:", file=sys.stderr)
    for p in problems:
        print(f"  {p.severity}: {p.message}", file=sys.stderr)


class ReaderMayLeave:
    """stdout for the commands: when its reader goes away (``netbuilder train ... | head -1``),
    the output stops quietly and the command goes on (training still saves its weights)."""

    def __init__(self, stream):
        self._stream = stream
        self.reader_left = False

    def write(self, text: str) -> int:
        if not self.reader_left:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._left()
        return len(text)

    def flush(self) -> None:
        if not self.reader_left:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._left()

    def _left(self) -> None:
        self.reader_left = True
        try:  # the interpreter flushes stdout once more at exit: let that go nowhere (Python's docs)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
        except (OSError, ValueError, AttributeError):  # not a real file (a test's capture)
            pass

    def __getattr__(self, name):
        return getattr(self._stream, name)


def read_trained_weights(project, weights: str | os.PathLike):
    """The ``{name: array}`` of a weights file (or checkpoint) for ``project``, which takes the input
    normalisation and class names training stored in the file's own project (the project file has
    neither); None after saying what is wrong with the file."""
    from netbuilder.core.export import read_weights_file
    from netbuilder.core.untrusted import check_regular_file
    from netbuilder.core.weights import WeightsError

    try:
        check_regular_file(Path(weights), WeightsError, "weights file")
        state, embedded = read_weights_file(weights)
    except (WeightsError, ProjectError, ValueError, OSError) as exc:
        error(str(exc))
        return None
    ours, theirs = project.dataset, embedded.dataset if embedded is not None else {}
    if isinstance(ours, dict) and isinstance(theirs, dict):
        for key in ("normalization", "class_names"):
            if key not in ours and key in theirs:
                ours[key] = theirs[key]
    return state
