"""The main window: docks, menus, title, status bar, keyboard undo/redo and closing with unsaved work."""
import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QApplication

from netbuilder.core.project import load_project
from netbuilder.gui.canvas import PipelineCanvas
from netbuilder.gui.inspector import Inspector
from netbuilder.gui.main_window import MainWindow
from netbuilder.gui.palette import Palette
from netbuilder.gui.project_files import CANCEL, DISCARD, SAVE
from netbuilder.gui.summary_panel import SummaryPanel


class Dialogs:
    """Stands in for the user in the window's file dialogs and message boxes."""

    def __init__(self, files):
        self.open_path = None
        self.save_path = None
        self.answer = CANCEL
        self.asked = []
        self.errors = []
        files.ask_open_path = lambda: self.open_path
        files.ask_save_path = lambda: self.save_path
        files.ask_save_changes = lambda name: self.asked.append(name) or self.answer
        files.show_error = lambda title, text, details="": self.errors.append((title, text, details))


@pytest.fixture
def window(doc, qtbot, tmp_path):
    w = MainWindow(doc, QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    w.dialogs = Dialogs(w.files)
    w.dialogs.answer = DISCARD  # so that closing at teardown never waits for a person
    return w


@pytest.fixture
def shown(window, qtbot):
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window)
    return window


def shown_title(window):
    """The title as the window system gets it: "[*]" replaced by "*" or nothing."""
    return window.windowHandle().title()


def test_window_builds_with_lenet5_and_every_panel(window, doc):
    assert window.pages.currentWidget() is window.canvas and isinstance(window.canvas, PipelineCanvas)
    docks = {type(d.widget()): window.dockWidgetArea(d)
             for d in (window.palette_dock, window.inspector_dock, window.summary_dock)}
    assert docks == {Palette: Qt.DockWidgetArea.LeftDockWidgetArea,
                     Inspector: Qt.DockWidgetArea.RightDockWidgetArea,
                     SummaryPanel: Qt.DockWidgetArea.BottomDockWidgetArea}
    assert doc.project.name == "LeNet-5"
    assert window.windowTitle() == "LeNet-5[*] — netbuilder"  # not saved yet: the project's name
    doc.set_value("name", "My LeNet")
    assert window.windowTitle() == "My LeNet[*] — netbuilder"
    doc.undo_stack.undo()
    assert window.params_label.text() == f"{doc.inference.total_params:,} parameters"
    assert window.validity_label.text().startswith("✓")


def test_menus_hold_the_actions(window):
    menus = {a.text(): a.menu() for a in window.menuBar().actions()}
    assert list(menus) == ["&File", "&Edit", "&View", "&Train", "&Help"]
    edit = [a.text() for a in menus["&Edit"].actions() if not a.isSeparator()]
    assert edit[:2] == ["Undo", "Redo"]
    assert window.canvas.delete_action in menus["&Edit"].actions()
    assert window.canvas.zoom_fit_action in menus["&View"].actions()
    new = [a.text() for a in window.new_menu.actions() if not a.isSeparator()]
    assert {"LeNet-5", "MLP", "Small VGG", "Empty project"} <= set(new)


def test_title_shows_the_file_and_the_modified_mark(shown, doc, tmp_path):
    assert shown_title(shown) == "LeNet-5 — netbuilder"
    doc.add_block("dropout")
    assert shown.isWindowModified() and shown_title(shown) == "LeNet-5* — netbuilder"
    shown.files.save_as(tmp_path / "net.json")
    assert shown_title(shown) == "net.json — netbuilder"
    doc.undo_stack.undo()  # back before the save: modified again
    assert shown_title(shown) == "net.json* — netbuilder"


def test_undo_and_redo_by_keyboard(shown, doc, qtbot):
    before = doc.project.to_dict()
    doc.add_block("dropout")
    after = doc.project.to_dict()
    assert shown.undo_action.text() == "Undo Add dropout1"

    qtbot.keyClick(shown, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert doc.project.to_dict() == before
    assert shown.redo_action.text() == "Redo Add dropout1"

    qtbot.keyClick(shown, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert doc.project.to_dict() == after


def test_status_bar_follows_the_network(window, doc):
    doc.set_block_field(2, "kernel_size", 99)  # larger than its 14 x 14 input, without padding
    assert window.validity_label.text().startswith("✗")
    assert "kernel" in window.validity_label.toolTip()
    doc.undo_stack.undo()
    assert window.validity_label.text().startswith("✓")
    doc.set_block_field(0, "filters", 12)
    assert window.params_label.text() == f"{doc.inference.total_params:,} parameters"
    doc.new_project(None)
    assert window.params_label.text() == "0 parameters"
    assert "Empty pipeline" in window.validity_label.text()


def test_new_from_a_template_menu_entry(window, doc):
    [mlp] = [a for a in window.new_menu.actions() if a.text() == "MLP"]
    mlp.trigger()
    assert doc.project.name == "MLP" and not doc.modified


def test_recent_menu_opens_a_saved_file(window, doc, tmp_path):
    window.files.save_as(tmp_path / "a.json")
    saved = doc.project.to_dict()
    doc.new_project("mlp")
    window.recent_menu.aboutToShow.emit()
    entries = [a for a in window.recent_menu.actions() if str(tmp_path / "a.json") in a.text()]
    assert len(entries) == 1
    entries[0].trigger()
    assert doc.project.to_dict() == saved and doc.path == tmp_path / "a.json"


def test_close_with_unsaved_changes_cancel_keeps_the_window(shown, doc, qtbot):
    doc.add_block("dropout")
    shown.dialogs.answer = CANCEL
    assert not shown.close()
    assert shown.isVisible() and shown.dialogs.asked == ["LeNet-5"]
    assert doc.modified


def test_close_with_unsaved_changes_discard_closes(shown, doc):
    doc.add_block("dropout")
    shown.dialogs.answer = DISCARD
    assert shown.close()
    assert not shown.isVisible()


def test_close_with_unsaved_changes_save_saves_then_closes(shown, doc, tmp_path):
    doc.add_block("dropout")
    shown.dialogs.answer = SAVE
    shown.dialogs.save_path = str(tmp_path / "closing.json")
    assert shown.close()
    assert load_project(tmp_path / "closing.json").to_dict() == doc.project.to_dict()


def test_close_without_changes_does_not_ask(shown):
    assert shown.close()
    assert shown.dialogs.asked == []


def test_save_close_reopen_in_a_new_window_gives_the_identical_project(window, doc, qtbot, tmp_path):
    doc.set_block_field(2, "filters", 20)
    doc.move_block(0, 1)
    window.files.save_as(tmp_path / "round.json")
    saved = doc.project.to_dict()
    assert window.close()

    from netbuilder.gui.document import ProjectDocument
    other = ProjectDocument()
    second = MainWindow(other, window.settings)
    qtbot.addWidget(second)
    assert second.files.open(tmp_path / "round.json")
    assert other.project.to_dict() == saved


@pytest.mark.parametrize("size", [(1280, 800), (1024, 640)])
def test_panels_get_room_on_small_and_usual_screens(window, qtbot, size):
    hint = window.minimumSizeHint()
    assert hint.width() <= 1024 and hint.height() <= 640
    window.resize(*size)
    window.show()
    qtbot.waitExposed(window)
    assert (window.width(), window.height()) == size

    def roomy():
        # The dock sizes are set once the window is laid out, after the first event-loop turn.
        assert window.palette_dock.width() >= 190 and window.inspector_dock.width() >= 260
        assert window.canvas.width() >= 420 and window.canvas.height() >= 250  # the pipeline keeps the most room
        assert window.summary_dock.height() >= 150

    qtbot.waitUntil(roomy)
    for dock in (window.palette_dock, window.inspector_dock, window.summary_dock):
        assert dock.isVisible()


@pytest.mark.parametrize("size", [(1280, 800), (1024, 640)])
def test_the_train_panel_is_never_cut_off_on_the_right(window, qtbot, size):
    """Its scroll area scrolls only down: the panel gets at least the width its fields need."""
    from PySide6.QtWidgets import QScrollArea

    window.resize(*size)
    window.show()
    qtbot.waitExposed(window)
    window.set_mode("train")
    qtbot.wait(300)  # the splitters share the room out over a few event-loop turns
    scroll = window.train_panel.findChild(QScrollArea)
    assert scroll.viewport().width() >= scroll.widget().minimumSizeHint().width()


def test_panel_layout_is_remembered_and_can_be_reset(window, qtbot):
    window.show()
    qtbot.waitExposed(window)
    window.summary_dock.close()
    assert window.close()

    from netbuilder.gui.document import ProjectDocument
    again = MainWindow(ProjectDocument(), window.settings)
    qtbot.addWidget(again)
    again.show()
    qtbot.waitExposed(again)
    assert again.summary_dock.isHidden() and again.palette_dock.isVisible()
    again.reset_layout_action.trigger()
    assert again.summary_dock.isVisible()
    assert again.dockWidgetArea(again.summary_dock) == Qt.DockWidgetArea.BottomDockWidgetArea


def test_locking_disables_new_and_open(window, doc):
    doc.set_locked("training")
    assert not window.open_action.isEnabled() and not window.new_menu.menuAction().isEnabled()
    assert window.save_action.isEnabled() and window.lock_label.text() == "🔒 training"
    doc.set_locked("")
    assert window.open_action.isEnabled() and window.new_menu.menuAction().isEnabled()


def test_recent_menu_drops_a_deleted_file_once(window, tmp_path):
    for name in ("a.json", "b.json"):
        window.files.save_as(tmp_path / name)
    (tmp_path / "a.json").unlink()
    window.recent_menu.aboutToShow.emit()
    texts = [a.text() for a in window.recent_menu.actions() if not a.isSeparator()]
    assert texts == [f"&1  {tmp_path / 'b.json'}", "Clear Menu"]


def focused_filters_box(window, qtbot):
    """The first conv's filters box in the Inspector of a shown, active window, with the focus."""
    from PySide6.QtWidgets import QSpinBox

    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    window.doc.select(0)
    box = window.inspector.findChild(QSpinBox, "filters")
    box.setFocus()
    qtbot.waitUntil(lambda: QApplication.focusWidget() in (box, box.lineEdit()))
    return box


def test_ctrl_z_in_a_focused_number_box_undoes_the_document_edit(qtbot, window, doc):
    doc.set_block_field(0, "filters", 12)
    box = focused_filters_box(window, qtbot)
    assert box.value() == 12
    qtbot.keyClick(box.lineEdit(), Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert doc.project.blocks[0]["filters"] == 6 and box.value() == 6
    redo = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
    qtbot.keyClick(box.lineEdit(), Qt.Key.Key_Z, redo)
    assert doc.project.blocks[0]["filters"] == 12


def test_a_number_box_says_so_when_it_clamps_a_value(qtbot, window, doc):
    box = focused_filters_box(window, qtbot)
    box.lineEdit().selectAll()
    qtbot.keyClicks(box.lineEdit(), "100000")
    qtbot.keyClick(box.lineEdit(), Qt.Key.Key_Return)
    notice = box.property("clampNotice")
    assert notice == f"10000 would be more than {box.maximum()}, the most filters can be here"
    assert doc.project.blocks[0]["filters"] == 1000  # what the box took: the digit after was refused
    doc.undo_stack.undo()


def test_a_number_box_left_out_of_range_says_so_as_the_focus_leaves_it(qtbot, window, doc):
    box = focused_filters_box(window, qtbot)
    box.lineEdit().selectAll()
    qtbot.keyClicks(box.lineEdit(), "0")  # below the least: the box takes it while typing
    window.canvas.setFocus()  # the window's filters follow the focus: the box still gets its say
    qtbot.waitUntil(lambda: box.property("clampNotice") is not None)
    assert box.property("clampNotice") == "0 is less than 1, the least filters can be here: set to 1"


def test_the_data_tab_is_reachable_from_the_build_view(window):
    window.canvas.dataRequested.emit()  # the input card double-clicked
    assert window.mode == "train" and window.setup_tabs.currentIndex() == 1
    window.set_mode("build")
    window.data_action.trigger()
    assert window.mode == "train" and window.setup_tabs.tabText(window.setup_tabs.currentIndex()) == "Data"


@pytest.mark.parametrize("size", [(1024, 640), (1280, 800)])
def test_the_run_controls_fit_the_toolbar_on_small_screens(window, qtbot, size):
    window.resize(*size)
    window.show()
    qtbot.waitExposed(window)
    bar = window.toolbar
    for action in (window.train_panel.train_action, window.train_panel.pause_action,
                   window.train_panel.stop_action):
        button = bar.widgetForAction(action)
        assert button is not None and button.isVisible(), action.text()  # not behind the » overflow
        assert button.geometry().right() <= bar.width()
