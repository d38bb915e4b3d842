"""The pipeline canvas: cards from the model, drops and reorders through Qt's drag-and-drop events,
problem marks, keyboard and context-menu edits, locking, zoom.

Offscreen Qt cannot run QDrag.exec (it needs a window system), so a drag is played as the events
Qt delivers to the canvas's viewport: QDragEnterEvent, QDragMoveEvent and QDropEvent carrying the
mime data the palette or a card produces, at positions computed from the cards' rectangles.
"""
import copy

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QDrag, QDragEnterEvent, QDragLeaveEvent, QDragMoveEvent, QDropEvent, QGuiApplication
from PySide6.QtWidgets import QApplication, QLineEdit, QVBoxLayout, QWidget

from netbuilder.core.summary import format_shape
from netbuilder.gui.canvas import PipelineCanvas
from netbuilder.gui.canvas_items import CardItem
from netbuilder.gui.mime import blocks_mime, read_blocks_mime
from netbuilder.gui.palette import PALETTE_ENTRIES, Palette

COPY, MOVE = Qt.DropAction.CopyAction, Qt.DropAction.MoveAction
LEFT, NO_MODS = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier


@pytest.fixture
def canvas(qtbot, doc):
    view = PipelineCanvas(doc)
    qtbot.addWidget(view)
    view.resize(700, 2000)  # tall enough for LeNet-5 and a few more blocks without scrolling
    view.show()
    qtbot.waitExposed(view)
    return view


@pytest.fixture
def focused(qtbot, canvas):
    canvas.activateWindow()
    canvas.setFocus()
    qtbot.waitUntil(canvas.hasFocus)
    return canvas


class RecordingDrag(QDrag):
    """A QDrag whose exec records what it carries: offscreen, exec cannot run a real drag loop."""

    carried: list = []

    def exec(self, *args):
        RecordingDrag.carried.append(self.mimeData())
        return Qt.DropAction.IgnoreAction


@pytest.fixture
def drags(monkeypatch):
    """The mime data of every drag the palette or the canvas starts during the test."""
    RecordingDrag.carried = []
    monkeypatch.setattr("netbuilder.gui.palette.QDrag", RecordingDrag)
    monkeypatch.setattr("netbuilder.gui.canvas.QDrag", RecordingDrag)
    return RecordingDrag.carried


def press_and_pull(qtbot, widget, pos):
    """Press the left button at ``pos`` and move past the drag distance, as a person starting a drag."""
    qtbot.mousePress(widget, LEFT, pos=pos)
    for dy in (4, 12, 30):
        qtbot.mouseMove(widget, pos + QPoint(0, dy))


def kinds(doc):
    return [b["kind"] for b in doc.project.blocks]


def gap_pos(canvas, index):
    """A viewport point in the gap before block ``index`` (after the last block when index == n)."""
    n = len(canvas.cards)
    if index < n:
        return canvas.card_rect(index).center() - QPoint(0, canvas.card_rect(index).height() // 2 + 8)
    return canvas.card_rect(n - 1).center() + QPoint(0, canvas.card_rect(n - 1).height() // 2 + 8)


def drag(canvas, mime, pos, action=COPY):
    """Enter, move and drop at ``pos`` through the viewport; returns (enter accepted, marker index seen)."""
    viewport = canvas.viewport()
    enter = QDragEnterEvent(pos, action, mime, LEFT, NO_MODS)
    QApplication.sendEvent(viewport, enter)
    move = QDragMoveEvent(pos, action, mime, LEFT, NO_MODS)
    QApplication.sendEvent(viewport, move)
    marker = canvas.marker_index
    drop = QDropEvent(QPointF(pos), action, mime, LEFT, NO_MODS)
    QApplication.sendEvent(viewport, drop)
    return enter.isAccepted(), marker


def assert_cards_match_model(canvas, doc):
    inference = doc.inference
    assert [c.index for c in canvas.cards] == list(range(len(doc.project.blocks)))
    for card, info in zip(canvas.cards, inference.blocks):
        want = format_shape(info.output_shape) if info.output_shape is not None else "shape unknown"
        assert card.shape_text == want
        assert card.content.title == info.name
    scene_cards = [i for i in canvas.scene().items() if isinstance(i, CardItem)]
    assert len(scene_cards) == len(doc.project.blocks) + 2  # plus input and output, nothing leaked


def test_cards_show_the_pipeline_from_input_to_output(canvas, doc):
    assert len(canvas.cards) == 8
    assert_cards_match_model(canvas, doc)
    assert canvas.input_card.shape_text == "1 x 28 x 28"
    assert "shapes" in canvas.input_card.content.settings
    assert canvas.output_card.shape_text == "10 classes"
    first = canvas.cards[0].content
    assert first.settings == "conv 6 @ 5x5 · stride 1 · same · relu"
    assert (first.shape_text, first.params_text) == ("6 x 28 x 28", "156 params")
    # stacked top to bottom in pipeline order, input above, output below
    tops = [canvas.card_rect(i).top() for i in range(8)]
    assert tops == sorted(tops)
    assert canvas.mapFromScene(canvas.output_card.scenePos()).y() > canvas.card_rect(7).bottom()


def without_names(blocks):
    return [{k: v for k, v in b.items() if k != "name"} for b in blocks]


def names(doc):
    return [info.name for info in doc.inference.blocks]


def test_drop_from_palette_lands_where_the_marker_showed(qtbot, canvas, doc):
    palette = Palette(doc)
    qtbot.addWidget(palette)
    row = next(i for i, e in enumerate(PALETTE_ENTRIES) if e.label == "Average pooling")
    before = copy.deepcopy(doc.project.blocks)
    accepted, marker = drag(canvas, palette.mime_for_row(row), gap_pos(canvas, 2))
    assert accepted and marker == 2
    assert len(doc.project.blocks) == 9
    assert doc.project.blocks[2] == {"kind": "pool", "mode": "average", "size": 2, "stride": None, "padding": 0,
                                     "name": "pool3"}  # named when created, with a name nobody has
    assert without_names(doc.project.blocks[:2] + doc.project.blocks[3:]) == before
    assert names(doc) == ["conv1", "pool1", "pool3", "conv2", "pool2", "flatten1", "dense1", "dense2", "dense3"]
    assert doc.selected == 2 and canvas.cards[2].selected
    assert canvas.cards[2].shape_text == "6 x 7 x 7"  # a second halving after pool1
    assert canvas.marker_index is None and not canvas.marker.isVisible()
    assert_cards_match_model(canvas, doc)
    doc.undo_stack.undo()
    assert doc.project.blocks == before
    assert_cards_match_model(canvas, doc)


def test_drag_started_on_the_palette_drops_into_the_pipeline(qtbot, canvas, doc, drags):
    palette = Palette(doc)
    qtbot.addWidget(palette)
    palette.resize(240, 600)
    palette.show()
    qtbot.waitExposed(palette)
    row = next(i for i, e in enumerate(PALETTE_ENTRIES) if e.label == "Flatten")
    press_and_pull(qtbot, palette.list.viewport(), palette.list.visualItemRect(palette.list.item(row)).center())
    assert len(drags) == 1
    accepted, marker = drag(canvas, drags[0], gap_pos(canvas, 4))
    assert accepted and marker == 4
    assert kinds(doc) == ["conv", "pool", "conv", "pool", "flatten", "flatten", "dense", "dense", "dense"]


def test_drag_started_on_a_card_reorders(qtbot, canvas, doc, drags):
    before = copy.deepcopy(doc.project.blocks)
    old = names(doc)
    press_and_pull(qtbot, canvas.viewport(), canvas.card_rect(1).center())
    assert doc.selected == 1 and len(drags) == 1
    accepted, marker = drag(canvas, drags[0], gap_pos(canvas, 4), MOVE)
    assert accepted and marker == 4
    assert without_names(doc.project.blocks) == before[:1] + before[2:4] + [before[1]] + before[4:]
    assert names(doc) == old[:1] + old[2:4] + [old[1]] + old[4:]  # every block keeps its name
    assert not canvas.cards[1].dimmed  # the dragged card is drawn normally again


def test_drop_at_the_very_end_and_before_the_first_block(canvas, doc):
    mime = blocks_mime([{"kind": "dropout", "rate": 0.25}], "palette")
    drag(canvas, mime, gap_pos(canvas, 8))
    assert kinds(doc)[-1] == "dropout" and len(doc.project.blocks) == 9
    top = canvas.mapFromScene(canvas.input_card.scenePos()) + QPoint(200, 5)  # on the input card
    drag(canvas, mime, top)
    assert kinds(doc)[0] == "dropout" and len(doc.project.blocks) == 10


def test_marker_follows_the_pointer_between_cards(canvas, doc):
    mime = blocks_mime([{"kind": "flatten"}], "palette")
    viewport = canvas.viewport()
    QApplication.sendEvent(viewport, QDragEnterEvent(gap_pos(canvas, 0), COPY, mime, LEFT, NO_MODS))
    for index in range(len(canvas.cards) + 1):
        QApplication.sendEvent(viewport, QDragMoveEvent(gap_pos(canvas, index), COPY, mime, LEFT, NO_MODS))
        assert canvas.marker_index == index
        assert canvas.marker.isVisible()
        y = canvas.mapFromScene(QPointF(0, canvas.marker_scene_y())).y()
        if index > 0:
            assert y > canvas.card_rect(index - 1).bottom()
        if index < len(canvas.cards):
            assert y < canvas.card_rect(index).top()
    # over a card: its upper half means before it, its lower half after it
    rect = canvas.card_rect(3)
    QApplication.sendEvent(viewport, QDragMoveEvent(rect.center() - QPoint(0, 8), COPY, mime, LEFT, NO_MODS))
    assert canvas.marker_index == 3
    QApplication.sendEvent(viewport, QDragMoveEvent(rect.center() + QPoint(0, 8), COPY, mime, LEFT, NO_MODS))
    assert canvas.marker_index == 4
    QApplication.sendEvent(viewport, QDragLeaveEvent())
    assert canvas.marker_index is None and not canvas.marker.isVisible()
    assert len(doc.project.blocks) == 8  # hovering changes nothing


@pytest.mark.parametrize("source,gap", [(0, 3), (5, 0), (2, 8), (7, 6), (3, 3), (3, 4)])
def test_reorder_by_dragging_a_card(canvas, doc, source, gap):
    before = copy.deepcopy(doc.project.blocks)
    old = names(doc)
    depth = doc.undo_stack.count()
    accepted, marker = drag(canvas, canvas.mime_for_card(source), gap_pos(canvas, gap), MOVE)
    assert accepted and marker == gap
    expected, expected_names = copy.deepcopy(before), list(old)
    to = gap - 1 if gap > source else gap  # the gap counts the moved card above it
    expected.insert(to, expected.pop(source))
    expected_names.insert(to, expected_names.pop(source))
    assert without_names(doc.project.blocks) == expected
    assert names(doc) == expected_names  # a move renames nothing: earlier weights still fit
    assert doc.undo_stack.count() == depth + (expected != before)  # a drop in place is no edit
    assert_cards_match_model(canvas, doc)
    if expected != before:
        assert without_names([doc.project.blocks[doc.selected]]) == [before[source]]
        doc.undo_stack.undo()
        assert doc.project.blocks == before


def test_pipeline_data_from_elsewhere_is_inserted_not_moved(canvas, doc):
    # same payload as a card's, without this canvas's origin mark: another window's block
    mime = blocks_mime([doc.project.blocks[0]], "pipeline", 0)
    accepted, _ = drag(canvas, mime, gap_pos(canvas, 8), MOVE)
    assert accepted
    assert kinds(doc) == ["conv", "pool", "conv", "pool", "flatten", "dense", "dense", "dense", "conv"]


def test_impossible_kernel_marks_the_block_and_unknown_shapes_after_it(canvas, doc):
    doc.set_block_field(2, "kernel_size", 30)  # larger than conv2's 14x14 input
    bad = canvas.cards[2]
    assert bad.has_error
    assert "larger than its 14x14 input" in bad.tooltip_text()
    assert "larger than its 14x14 input" in bad.toolTip()
    assert "larger than its 14x14 input" in bad.message
    assert bad.height() > canvas.cards[0].height()  # the reason is written on the card
    for card in canvas.cards[:2]:
        assert not card.has_error and not card.unknown and card.shape_text != "shape unknown"
    for card in canvas.cards[3:]:
        assert card.shape_text == "shape unknown" and card.unknown and not card.has_error
    assert canvas.output_card.content.settings == "network output unknown"
    assert canvas.card_rect(3).top() > canvas.card_rect(2).bottom()  # taller card, still no overlap

    doc.set_block_field(2, "kernel_size", 5)
    assert not any(card.has_error or card.unknown for card in canvas.cards)
    assert_cards_match_model(canvas, doc)
    assert canvas.cards[2].height() == canvas.cards[0].height()


def test_warning_gets_a_mark_and_a_tooltip(canvas, doc):
    doc.set_block_field(2, "stride", 7)  # stride larger than the 5x5 kernel: a warning, shapes still known
    card = canvas.cards[2]
    assert card.has_warning and not card.has_error
    assert "never looked at" in card.tooltip_text() and card.tooltip_text().count("Warning:") == 1
    assert card.shape_text == "16 x 2 x 2"


def test_delete_duplicate_copy_paste_by_keyboard(qtbot, focused, doc):
    canvas = focused
    original = copy.deepcopy(doc.project.blocks)
    doc.select(2)
    qtbot.keyClick(canvas, Qt.Key.Key_Delete)
    assert without_names(doc.project.blocks) == original[:2] + original[3:]
    assert names(doc)[2] == "pool2"  # the block after the deleted conv2 keeps its name
    assert doc.selected == 2  # the next block, so Delete again goes on removing

    doc.select(0)
    qtbot.keyClick(canvas, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier)
    assert kinds(doc)[:3] == ["conv", "conv", "pool"] and without_names(doc.project.blocks[1:2]) == original[:1]
    assert names(doc)[:2] == ["conv1", "conv2"]  # the copy gets a name of its own (conv2 was deleted)
    assert doc.selected == 1

    doc.select(5)  # dense 120
    qtbot.keyClick(canvas, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert doc.project.blocks[5] == original[5]
    doc.select(1)
    before_paste = copy.deepcopy(doc.project.blocks)
    qtbot.keyClick(canvas, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    assert without_names(doc.project.blocks) == without_names(before_paste[:2] + [original[5]] + before_paste[2:])
    doc.select(-1)
    qtbot.keyClick(canvas, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    assert without_names(doc.project.blocks[-1:]) == original[5:6]  # nothing selected: at the end
    assert_cards_match_model(canvas, doc)


def test_canvas_shortcuts_leave_text_fields_alone(qtbot, doc):
    window = QWidget()
    layout = QVBoxLayout(window)
    canvas = PipelineCanvas(doc)
    field = QLineEdit("28")
    layout.addWidget(canvas)
    layout.addWidget(field)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    doc.select(1)
    field.setFocus()
    qtbot.waitUntil(field.hasFocus)
    field.selectAll()
    qtbot.keyClick(field, Qt.Key.Key_Delete)
    assert field.text() == "" and len(doc.project.blocks) == 8
    canvas.setFocus()
    qtbot.waitUntil(canvas.hasFocus)
    qtbot.keyClick(canvas, Qt.Key.Key_Delete)
    assert len(doc.project.blocks) == 7


def test_arrow_keys_select_and_alt_arrows_move(qtbot, focused, doc):
    doc.select(-1)
    qtbot.keyClick(focused, Qt.Key.Key_Down)
    assert doc.selected == 0
    qtbot.keyClick(focused, Qt.Key.Key_Down)
    assert doc.selected == 1
    qtbot.keyClick(focused, Qt.Key.Key_Down, Qt.KeyboardModifier.AltModifier)
    assert kinds(doc)[:3] == ["conv", "conv", "pool"] and doc.selected == 2
    qtbot.keyClick(focused, Qt.Key.Key_Escape)
    assert doc.selected == -1


def test_clicking_a_card_selects_it_and_empty_space_clears(qtbot, canvas, doc):
    qtbot.mouseClick(canvas.viewport(), LEFT, pos=canvas.card_rect(4).center())
    assert doc.selected == 4 and canvas.cards[4].selected
    assert sum(c.selected for c in canvas.cards) == 1
    qtbot.mouseClick(canvas.viewport(), LEFT, pos=QPoint(5, canvas.card_rect(4).center().y()))
    assert doc.selected == -1 and not any(c.selected for c in canvas.cards)


def test_context_menus(canvas, doc):
    menu = canvas.context_menu_at(canvas.card_rect(3).center())
    assert doc.selected == 3
    labels = [a.text().replace("&", "") for a in menu.actions() if not a.isSeparator()]
    assert labels == ["Delete block", "Duplicate block", "Copy block", "Paste block", "Move up", "Move down",
                      "Wrap in residual group", "Wrap in branches, one path per block"]
    next(a for a in menu.actions() if a.text() == "Move &up").trigger()
    assert kinds(doc)[2:4] == ["pool", "conv"] and doc.selected == 2

    empty = canvas.context_menu_at(QPoint(5, gap_pos(canvas, 1).y()))
    add = next(a for a in empty.actions() if a.menu() is not None).menu()
    next(a for a in add.actions() if a.text() == "Flatten").trigger()
    assert kinds(doc)[1] == "flatten"


def test_locked_canvas_refuses_drops_and_edits(qtbot, focused, doc):
    before = copy.deepcopy(doc.project.blocks)
    doc.set_locked("Training")
    assert focused.banner.isVisible()
    assert "locked until it stops" in focused.banner.text()
    accepted, marker = drag(focused, blocks_mime([{"kind": "flatten"}], "palette"), gap_pos(focused, 1))
    assert not accepted and marker is None
    doc.select(1)
    qtbot.keyClick(focused, Qt.Key.Key_Delete)
    qtbot.keyClick(focused, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier)
    assert not focused.delete_action.isEnabled() and not focused.paste_action.isEnabled()
    assert focused.copy_action.isEnabled()  # copying changes nothing
    assert doc.project.blocks == before
    doc.set_locked("")
    assert not focused.banner.isVisible()
    assert drag(focused, blocks_mime([{"kind": "flatten"}], "palette"), gap_pos(focused, 1))[0]
    assert kinds(doc)[1] == "flatten"


def test_empty_pipeline_shows_the_drop_zone(canvas, doc):
    doc.new_project(None)
    assert canvas.cards == [] and canvas.placeholder.isVisible()
    zone = canvas.mapFromScene(canvas.placeholder.sceneBoundingRect().center())
    accepted, marker = drag(canvas, blocks_mime([{"kind": "flatten"}], "palette"), zone)
    assert accepted and marker == 0
    assert kinds(doc) == ["flatten"] and not canvas.placeholder.isVisible()
    assert_cards_match_model(canvas, doc)


def test_zoom_by_keyboard_and_fit(qtbot, focused):
    assert focused.zoom == 1.0
    qtbot.keyClick(focused, Qt.Key.Key_Equal, Qt.KeyboardModifier.ControlModifier)
    assert focused.zoom > 1.0
    qtbot.keyClick(focused, Qt.Key.Key_Minus, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(focused, Qt.Key.Key_Minus, Qt.KeyboardModifier.ControlModifier)
    assert focused.zoom < 1.0
    qtbot.keyClick(focused, Qt.Key.Key_0, Qt.KeyboardModifier.ControlModifier)
    assert focused.zoom == 1.0  # the whole pipeline fits at 100%: fit resets
    focused.resize(700, 300)
    qtbot.keyClick(focused, Qt.Key.Key_0, Qt.KeyboardModifier.ControlModifier)
    assert focused.zoom < 1.0
    assert focused.mapFromScene(focused.sceneRect().bottomLeft()).y() <= focused.viewport().height() + 1


def test_long_pipeline_scrolls_to_the_selected_block(qtbot, canvas, doc):
    canvas.resize(700, 400)
    doc.insert_blocks([{"kind": "dropout", "rate": 0.1}] * 40, 5)
    assert len(canvas.cards) == 48
    assert canvas.verticalScrollBar().maximum() > 0
    doc.select(47)
    assert canvas.viewport().rect().intersects(canvas.card_rect(47))
    doc.select(0)
    assert canvas.viewport().rect().intersects(canvas.card_rect(0))
    doc.remove_blocks(list(range(5, 45)))
    assert_cards_match_model(canvas, doc)


def test_copy_puts_the_block_on_the_clipboard_in_the_apps_format(focused, doc, qtbot):
    doc.select(0)
    focused.copy_action.trigger()
    mime = QGuiApplication.clipboard().mimeData()
    payload = read_blocks_mime(mime)
    assert payload["source"] == "clipboard" and payload["blocks"] == [doc.project.blocks[0]]


def test_double_clicking_the_input_card_asks_for_the_data(qtbot, canvas):
    asked = []
    canvas.dataRequested.connect(lambda: asked.append(True))
    centre = canvas.mapFromScene(canvas.input_card.sceneBoundingRect().center())
    qtbot.mouseDClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=centre)
    assert asked == [True]


def test_wrapping_blocks_in_a_residual_group_and_unwrapping_it_again(canvas, doc):
    before = copy.deepcopy(doc.project.blocks)
    menu = canvas.context_menu_at(canvas.card_rect(2).center())  # conv2
    wrap = next(a for a in menu.actions() if a.menu() is not None and "Wrap" in a.text()).menu()
    next(a for a in wrap.actions() if "(2 blocks)" in a.text()).trigger()  # conv2 and pool2
    assert kinds(doc)[:4] == ["conv", "pool", "residual", "flatten"]
    group = doc.project.blocks[2]
    assert [b["kind"] for b in group["blocks"]] == ["conv", "pool"] and doc.undo_stack.count() == 1
    # conv2 + pool2 change the shape (6x14x14 -> 16x5x5): the skip gets a projection, said in a note
    notes = [p.message for p in doc.inference.problems_for(2)]
    assert any("1x1 convolution" in m for m in notes) or any("no 1x1 convolution" in m for m in notes)
    assert len(canvas.cards) == len(doc.project.blocks)  # one card for the group
    menu = canvas.context_menu_at(canvas.card_rect(2).center())
    next(a for a in menu.actions() if a.text() == "&Unwrap group").trigger()
    assert kinds(doc)[:5] == ["conv", "pool", "conv", "pool", "flatten"]
    doc.undo_stack.undo()
    assert kinds(doc)[2] == "residual"
    doc.undo_stack.undo()
    assert doc.project.blocks == before  # names and all, as it was
    doc.undo_stack.redo()
    assert kinds(doc)[2] == "residual"
