"""The hostile corpus (tests/hostile.py) through the window's open path: every project file is
either refused in one error box naming it, with the open project untouched, or opened with its
problem shown on the block; the window never raises and nothing on disk changes."""
from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings

from netbuilder.core import memory
from netbuilder.gui.project_files import DISCARD, ProjectFiles
from tests.core.test_hostile_corpus import disk_state
from tests.gui.test_project_files import Dialogs, snapshot
from tests.hostile import FLAGGED, MEMORY, OPENS, REFUSED, make_corpus


@pytest.fixture
def corpus(tmp_path, monkeypatch):
    monkeypatch.setenv("NETBUILDER_MEMORY_BYTES", str(MEMORY))
    memory.machine_memory.cache_clear()
    entries = make_corpus(tmp_path / "corpus")
    yield tmp_path / "corpus", [e for e in entries if e.project is not None]
    memory.machine_memory.cache_clear()


@pytest.mark.slow
def test_every_project_of_the_corpus_opens_with_its_problem_or_is_refused(qtbot, doc, corpus, tmp_path):
    root, entries = corpus
    files = ProjectFiles(doc, None, QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    dialogs = Dialogs(files)
    dialogs.answer = DISCARD  # "save changes?" before a file that opens: no
    assert len(entries) >= 25
    failures = []
    for entry in entries:
        doc.new_project("lenet5")
        doc.set_block_field(0, "filters", 7)  # unsaved work that a refused file must not cost
        before, on_disk = snapshot(doc), disk_state(root)
        dialogs.errors.clear()
        dialogs.asked.clear()
        opened = files.open(entry.project)
        if entry.window == REFUSED:
            if opened or len(dialogs.errors) != 1 or snapshot(doc) != before or dialogs.asked:
                failures.append(f"{entry.name}: not refused in one error box (opened={opened}, "
                                f"{len(dialogs.errors)} errors)")
            elif entry.project.name not in dialogs.errors[0][0] + dialogs.errors[0][1]:
                failures.append(f"{entry.name}: the error does not name the file: {dialogs.errors[0][:2]}")
        elif not opened or dialogs.errors:
            failures.append(f"{entry.name}: not opened: {dialogs.errors[:1]}")
        elif entry.window == FLAGGED:
            shown = " ".join(p.message for p in doc.inference.problems)
            missing = [f for f in entry.says if f not in shown]
            if missing:
                failures.append(f"{entry.name}: opened but the problem {missing} is not shown: {shown[:200]!r}")
        elif entry.window == OPENS and not doc.inference.ok and "dataset" not in entry.name:
            failures.append(f"{entry.name}: opened with errors {doc.inference.errors[:1]}")
        if disk_state(root) != on_disk:
            failures.append(f"{entry.name}: something on disk changed")
    assert not failures, f"{len(failures)} of {len(entries)} entries misbehaved:\n" + "\n".join(failures)
