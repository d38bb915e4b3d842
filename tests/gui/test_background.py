"""Jobs: the window's one way of working off the GUI thread (training, exports, data loading)."""
import threading

from PySide6.QtCore import QObject

from netbuilder.gui.background import Jobs


def test_progress_then_the_result_arrive_on_the_gui_thread_in_order(qtbot):
    jobs = Jobs()
    gui = threading.current_thread()
    seen = []

    def work(report):
        assert threading.current_thread() is not gui
        for i in range(3):
            report(i)
        return "done"

    jobs.start(work, progress=lambda e: seen.append((e, threading.current_thread() is gui)),
               done=lambda r: seen.append((r, threading.current_thread() is gui)))
    qtbot.waitUntil(lambda: len(seen) == 4)
    assert seen == [(0, True), (1, True), (2, True), ("done", True)]
    jobs.wait()
    assert not jobs.busy


def test_a_failure_is_handed_over_as_the_exception(qtbot):
    jobs = Jobs()
    failures = []

    def work(report):
        raise ValueError("no such file")

    jobs.start(work, failed=failures.append, done=lambda r: failures.append("not this"))
    qtbot.waitUntil(lambda: bool(failures))
    assert isinstance(failures[0], ValueError) and str(failures[0]) == "no such file"


def test_what_a_job_reports_after_its_owner_is_gone_is_dropped(qtbot):
    owner = QObject()
    jobs = Jobs(owner)
    release = threading.Event()
    seen = []

    def work(report):
        release.wait(5)
        report("late")
        return "late too"

    jobs.start(work, progress=seen.append, done=seen.append)
    owner.deleteLater()
    qtbot.waitUntil(lambda: not _alive(jobs))
    release.set()
    qtbot.wait(100)
    assert seen == []


def _alive(obj) -> bool:
    try:
        obj.objectName()
    except RuntimeError:
        return False
    return True
