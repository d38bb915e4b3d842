"""New / Open / Save / Save As, recent files and the unsaved-changes prompt (dialogs replaced)."""
import json

import pytest
from PySide6.QtCore import QSettings

from netbuilder.core.project import load_project
from netbuilder.gui.project_files import CANCEL, DISCARD, MAX_RECENT, SAVE, ProjectFiles


class Dialogs:
    """Stands in for the user: answers the questions ProjectFiles asks and records them."""

    def __init__(self, files: ProjectFiles):
        self.open_path = None
        self.save_path = None
        self.answer = CANCEL
        self.asked = []  # names given to "Save changes to X?"
        self.errors = []  # (title, text, details)
        files.ask_open_path = lambda: self.open_path
        files.ask_save_path = lambda: self.save_path
        files.ask_save_changes = self._ask
        files.show_error = lambda title, text, details="": self.errors.append((title, text, details))

    def _ask(self, name):
        self.asked.append(name)
        return self.answer


@pytest.fixture
def settings(tmp_path):
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def files(doc, settings):
    return ProjectFiles(doc, None, settings)


@pytest.fixture
def dialogs(files):
    return Dialogs(files)


def snapshot(doc):
    return doc.project.to_dict(), doc.path, doc.modified, doc.undo_stack.count()


def test_save_as_then_open_gives_the_identical_project(doc, files, dialogs, tmp_path):
    doc.set_block_field(0, "filters", 12)
    doc.add_block("dropout", 2)
    dialogs.save_path = str(tmp_path / "mine.json")
    assert files.save()  # no file yet: asks where
    assert doc.path == tmp_path / "mine.json" and not doc.modified
    saved = doc.project.to_dict()

    doc.new_project("mlp")
    assert files.open(tmp_path / "mine.json")
    assert doc.project.to_dict() == saved
    assert doc.path == tmp_path / "mine.json" and not doc.modified
    assert dialogs.errors == []


def test_save_writes_to_the_current_file_without_asking(doc, files, dialogs, tmp_path):
    path = tmp_path / "net.json"
    assert files.save_as(path)
    doc.set_value("name", "Renamed")
    dialogs.save_path = None  # asking would cancel the save
    assert files.save()
    assert load_project(path).name == "Renamed"
    assert not doc.modified


def test_save_as_adds_the_json_suffix(doc, files, tmp_path):
    assert files.save_as(tmp_path / "plain")
    assert doc.path == tmp_path / "plain.json" and (tmp_path / "plain.json").is_file()


def test_cancelled_save_dialog_saves_nothing(doc, files, dialogs, tmp_path):
    doc.add_block("flatten")
    assert not files.save()
    assert doc.modified and doc.path is None
    assert list(tmp_path.iterdir()) == []


def test_corrupt_json_is_reported_and_the_project_is_unchanged(doc, files, dialogs, tmp_path):
    doc.set_block_field(0, "filters", 7)  # unsaved work that must survive
    before = snapshot(doc)
    bad = tmp_path / "broken.json"
    bad.write_text('{"format": 1, "name": "x", "blocks": [', encoding="utf-8")

    assert not files.open(bad)

    assert snapshot(doc) == before
    assert dialogs.asked == []  # a file that cannot be opened costs no "save changes?" question
    [(title, text, details)] = dialogs.errors
    assert "broken.json" in title
    assert "invalid JSON at line 1" in text and "unchanged" in text
    assert "invalid JSON at line 1" in details


def test_invalid_project_shows_every_problem(doc, files, dialogs, tmp_path):
    before = snapshot(doc)
    bad = tmp_path / "invalid.json"
    bad.write_text(json.dumps({"format": 1, "name": 5, "input_shape": [1, 28],
                               "blocks": [{"filters": 3}], "training": {"lr": 0.1}}), encoding="utf-8")

    assert not files.open(bad)

    assert snapshot(doc) == before
    [(_, text, details)] = dialogs.errors
    assert "4 problems" in text
    for fragment in ("name must be a string", "input_shape must be", 'no "kind" field', "unknown training field"):
        assert fragment in text and fragment in details


def test_unwritable_path_is_reported_and_nothing_is_lost(doc, files, dialogs, tmp_path):
    doc.add_block("dropout")
    before = snapshot(doc)
    assert not files.save_as(tmp_path / "no such folder" / "net.json")
    assert snapshot(doc) == before  # still modified, still without a file
    [(title, text, details)] = dialogs.errors
    assert title == "Cannot save" and "no such folder" in text and "Save As" in text


def test_a_failed_save_keeps_the_old_file(doc, files, dialogs, tmp_path):
    good = tmp_path / "net.json"
    files.save_as(good)
    original = good.read_text(encoding="utf-8")
    doc.set_value("name", float("nan"))  # cannot be written as JSON
    assert not files.save()
    assert good.read_text(encoding="utf-8") == original
    assert doc.modified and len(dialogs.errors) == 1


@pytest.mark.parametrize("answer, proceeds", [(CANCEL, False), (DISCARD, True)])
def test_maybe_save_follows_the_answer(doc, files, dialogs, answer, proceeds):
    assert files.maybe_save()  # nothing to lose: no question
    assert dialogs.asked == []
    doc.add_block("flatten")
    dialogs.answer = answer
    assert files.maybe_save() is proceeds
    assert dialogs.asked == ["LeNet-5"]
    assert doc.modified  # neither answer saves


def test_maybe_save_with_save_writes_the_file(doc, files, dialogs, tmp_path):
    doc.add_block("flatten")
    dialogs.answer = SAVE
    dialogs.save_path = str(tmp_path / "kept.json")
    assert files.maybe_save()
    assert not doc.modified
    assert load_project(tmp_path / "kept.json").to_dict() == doc.project.to_dict()


def test_maybe_save_stops_when_the_save_is_cancelled(doc, files, dialogs):
    doc.add_block("flatten")
    dialogs.answer = SAVE
    dialogs.save_path = None  # the user closes the Save As dialog
    assert not files.maybe_save()


def test_new_asks_before_replacing_unsaved_work(doc, files, dialogs):
    doc.add_block("dropout")
    before = snapshot(doc)
    dialogs.answer = CANCEL
    assert not files.new("mlp")
    assert snapshot(doc) == before

    dialogs.answer = DISCARD
    assert files.new("mlp")
    assert doc.project.name == "MLP" and not doc.modified
    assert files.new(None)
    assert doc.project.blocks == [] and doc.path is None


def test_open_asks_before_replacing_unsaved_work(doc, files, dialogs, tmp_path):
    other = tmp_path / "other.json"
    files.save_as(other)
    doc.add_block("dropout")
    before = snapshot(doc)
    dialogs.open_path = str(other)
    dialogs.answer = CANCEL
    assert not files.open()
    assert snapshot(doc) == before and dialogs.asked == ["other.json"]

    dialogs.answer = DISCARD
    assert files.open()
    assert not doc.modified and len(doc.project.blocks) == len(before[0]["blocks"]) - 1


def test_cancelled_open_dialog_changes_nothing(doc, files, dialogs):
    before = snapshot(doc)
    assert not files.open()
    assert snapshot(doc) == before and dialogs.errors == []


def test_recent_files_most_recent_first_without_duplicates(doc, files, tmp_path, qtbot):
    paths = [tmp_path / f"p{i}.json" for i in range(3)]
    for p in paths:
        files.save_as(p)
    with qtbot.waitSignal(files.recentChanged):
        files.open(paths[0])
    assert files.recent_files() == [str(paths[0]), str(paths[2]), str(paths[1])]


def test_recent_files_keep_at_most_eight_and_persist(doc, files, settings, tmp_path):
    paths = [tmp_path / f"p{i}.json" for i in range(MAX_RECENT + 2)]
    for p in paths:
        files.save_as(p)
    expected = [str(p) for p in reversed(paths)][:MAX_RECENT]
    assert files.recent_files() == expected
    assert ProjectFiles(doc, None, settings).recent_files() == expected  # read back from the settings


def test_recent_files_drop_missing_files(doc, files, dialogs, tmp_path):
    kept, gone = tmp_path / "kept.json", tmp_path / "gone.json"
    files.save_as(gone)
    files.save_as(kept)
    gone.unlink()
    assert files.recent_files() == [str(kept)]

    files.save_as(gone)
    gone.unlink()
    assert not files.open(gone)  # opening a vanished recent file reports it and forgets it
    assert "no such file" in dialogs.errors[0][1]
    assert files._stored_recent() == [str(kept)]


def test_clear_recent(doc, files, tmp_path):
    files.save_as(tmp_path / "a.json")
    files.clear_recent()
    assert files.recent_files() == []


def test_display_name(doc, files, tmp_path):
    assert files.display_name() == "LeNet-5"  # the project's name until it has a file
    files.save_as(tmp_path / "lenet.json")
    assert files.display_name() == "lenet.json"


def test_a_locked_project_is_not_replaced(doc, files, dialogs, tmp_path, qtbot):
    other = tmp_path / "other.json"
    files.save_as(other)
    doc.set_locked("training in progress")
    before = snapshot(doc)
    with qtbot.waitSignal(files.message) as said:
        assert not files.new("mlp")
    assert "training in progress" in said.args[0]
    assert not files.open(other)
    assert snapshot(doc) == before
    assert files.save()  # saving stays possible


@pytest.mark.parametrize("make", ["fifo", "device", "huge"])
def test_a_pipe_a_device_or_a_huge_file_is_refused_and_the_project_stays(doc, files, dialogs, tmp_path, make):
    import os

    if make == "fifo":
        path = tmp_path / "pipe.json"
        os.mkfifo(path)
        expected = "named pipe"
    elif make == "device":
        path, expected = "/dev/zero", "is a device"
    else:
        path = tmp_path / "huge.json"
        with open(path, "wb") as f:
            f.truncate(100 << 20)
        expected = "too large for a project file"
    before = snapshot(doc)
    assert not files.open(path)  # returns at once: nothing waits on the pipe or reads the device
    assert snapshot(doc) == before
    assert len(dialogs.errors) == 1 and expected in dialogs.errors[0][1]
