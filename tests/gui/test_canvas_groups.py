"""Groups on the canvas: framed lanes with their inner cards, joins that show the merged shape or
why the merge fails, drags into, out of and between groups, wrapping a selection and unwrapping,
each undone and redone against the model.

Drags are played as the events Qt delivers to the viewport (see test_canvas.py).
"""
import copy
import dataclasses

import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QDragEnterEvent, QDragLeaveEvent, QDragMoveEvent
from PySide6.QtWidgets import QApplication, QComboBox, QSpinBox

from netbuilder.core.addresses import walk
from netbuilder.core.summary import format_shape
from netbuilder.gui.canvas import PipelineCanvas
from netbuilder.gui.canvas_items import CardItem, FrameItem, JoinItem
from netbuilder.gui.inspector import Inspector
from netbuilder.gui.mime import blocks_mime
from netbuilder.gui.summary_panel import SummaryPanel
from tests.gui.test_canvas import LEFT, MOVE, NO_MODS, drag, without_names

SHIFT = Qt.KeyboardModifier.ShiftModifier


@pytest.fixture
def resnet(doc):
    doc.new_project("resnet_small")
    return doc


@pytest.fixture
def inception(doc):
    doc.new_project("inception_mini")
    return doc


def make_canvas(qtbot, doc):
    view = PipelineCanvas(doc)
    qtbot.addWidget(view)
    view.resize(1000, 3000)  # the whole network without scrolling
    view.show()
    qtbot.waitExposed(view)
    return view


def gap_point(canvas, lane, index):
    """A viewport point on gap ``index`` of ``lane``, in the middle of its column."""
    gap = next(g for g in canvas._gaps if g.lane == tuple(lane) and g.index == index)
    left, right = (gap.left, gap.right) if gap.lane else (-100, 100)
    return canvas.mapFromScene(QPointF((left + right) / 2, gap.y))


def hover(canvas, mime, pos):
    """Drag over ``pos`` without dropping: (lane, index) the marker shows, None when refused."""
    viewport = canvas.viewport()
    QApplication.sendEvent(viewport, QDragEnterEvent(pos, MOVE, mime, LEFT, NO_MODS))
    QApplication.sendEvent(viewport, QDragMoveEvent(pos, MOVE, mime, LEFT, NO_MODS))
    seen = (canvas.marker_lane, canvas.marker_index) if canvas.marker_index is not None else None
    QApplication.sendEvent(viewport, QDragLeaveEvent())
    return seen


def kinds(blocks):
    return [b["kind"] for b in blocks]


def assert_canvas_matches_model(canvas, doc):
    """One card per block at every depth, each showing what inference found there; one frame and
    one join per group; nothing left over in the scene."""
    addresses = set(walk(doc.project.blocks))
    assert set(canvas.cards_at) == addresses
    groups = {a for a in addresses if doc.pipeline_at((*a, 0)) is not None}
    assert set(canvas.frames) == groups and set(canvas.joins) == groups
    for address, card in canvas.cards_at.items():
        info = doc.inference.info_at(address)
        assert card.address == address
        if info is not None and info.output_shape is not None:
            assert card.shape_text == format_shape(info.output_shape)
            assert card.content.title == info.name
    items = canvas.scene().items()
    assert sum(isinstance(i, CardItem) for i in items) == len(addresses) + 2
    assert sum(isinstance(i, (FrameItem, JoinItem)) for i in items) == 2 * len(groups)


def test_a_residual_group_is_a_frame_holding_its_inner_cards_with_the_skip_into_the_join(qtbot, resnet):
    canvas = make_canvas(qtbot, resnet)
    assert_canvas_matches_model(canvas, resnet)
    group = next(i for i, b in enumerate(resnet.project.blocks) if b["kind"] == "residual")
    frame = canvas.frames[(group,)].rect
    header = canvas.cards_at[(group,)]
    inner = [canvas.cards_at[(group, 0, k)] for k in range(len(resnet.project.blocks[group]["blocks"]))]
    join = canvas.joins[(group,)]
    # the header on top, the inner cards below it in order, narrower and inside the frame, the join last
    assert header.scenePos().y() == frame.top()
    ys = [c.scenePos().y() for c in inner]
    assert ys == sorted(ys) and ys[0] > header.scenePos().y() + header.height()
    for card in inner:
        assert frame.contains(card.sceneBoundingRect().adjusted(5, 10, -15, -6))
        assert card.width < header.width
    assert join.scenePos().y() > ys[-1] and frame.contains(join.sceneBoundingRect().adjusted(2, 2, -2, -2))
    info = resnet.inference.info_at((group,))
    assert join.glyph == "+" and join.text.endswith(format_shape(info.output_shape)) and not join.errors
    # the skip leaves the header's bottom on the right of the inner cards and ends at the join
    skip = next(s for s in canvas.arrows.skips if frame.contains(QPointF(*s[0])))
    assert skip[0][0] > max(c.sceneBoundingRect().right() for c in inner) - 10
    assert skip[0][1] == pytest.approx(header.scenePos().y() + header.height())
    assert join.sceneBoundingRect().adjusted(-3, -3, 3, 3).contains(QPointF(*skip[-1]))


def test_branches_stand_side_by_side_and_meet_at_a_merge_card_with_the_merged_shape(qtbot, inception):
    canvas = make_canvas(qtbot, inception)
    assert_canvas_matches_model(canvas, inception)
    group = next(i for i, b in enumerate(inception.project.blocks) if b["kind"] == "branches")
    paths = inception.project.blocks[group]["paths"]
    firsts = [canvas.cards_at[(group, k, 0)] for k in range(len(paths))]
    xs = [c.scenePos().x() for c in firsts]
    assert xs == sorted(xs) and len(set(xs)) == len(paths)  # left to right, path by path
    assert len({c.scenePos().y() for c in firsts}) == 1  # on one row
    for left, right in zip(firsts, firsts[1:]):
        assert left.sceneBoundingRect().right() - 6 < right.scenePos().x()  # apart (ring margins aside)
    join = canvas.joins[(group,)]
    info = inception.inference.info_at((group,))
    assert "concat" in join.text and join.text.endswith(format_shape(info.output_shape))
    assert canvas.frames[(group,)].labels[:2] == ["path 1", "path 2"]


def test_a_branch_whose_merge_fails_shows_the_message_on_the_merge_card(qtbot, inception):
    canvas = make_canvas(qtbot, inception)
    group = next(i for i, b in enumerate(inception.project.blocks) if b["kind"] == "branches")
    inception.set_block_field(group, "merge", "add")  # the paths give 8 and 16 channels
    join = canvas.joins[(group,)]
    assert join.errors and "'add' needs paths of one shape" in join.message
    assert "path 1 gives 8 x 14 x 14 and path 2 16 x 14 x 14" in join.message
    assert canvas.frames[(group,)].error
    assert not canvas.cards_at[(group,)].has_error  # the header leaves the merge to the merge card
    assert join.height() > JoinItem.HEIGHT  # the message is written out on the card, not only in a tooltip
    inception.undo_stack.undo()
    assert not join.errors and not canvas.frames[(group,)].error


def test_an_inner_block_error_is_on_its_own_card(qtbot, resnet):
    canvas = make_canvas(qtbot, resnet)
    group = next(i for i, b in enumerate(resnet.project.blocks) if b["kind"] == "residual")
    resnet.set_block_field(0, "stride", 0, lane=(group, 0))
    card = canvas.cards_at[(group, 0, 0)]
    assert card.has_error and "stride" in card.message
    assert not card.message.startswith("block ")  # the card says which block; the path prefix is gone
    assert not canvas.cards_at[(group, 0, 1)].has_error
    assert canvas.frames[(group,)].error


def test_dragging_a_block_into_a_residual_group_and_out_again(qtbot, doc):
    doc.new_project("lenet5")
    doc.wrap("residual", 2, 2)  # conv2 alone in a group at 2
    canvas = make_canvas(qtbot, doc)
    start = copy.deepcopy(doc.project.blocks)
    # the pool after the group goes inside it, after conv2
    assert hover(canvas, canvas.mime_for_card(3), gap_point(canvas, (2, 0), 1)) == ((2, 0), 1)
    accepted, marker = drag(canvas, canvas.mime_for_card(3), gap_point(canvas, (2, 0), 1), MOVE)
    assert accepted and marker == 1
    assert kinds(doc.project.blocks[2]["blocks"]) == ["conv", "pool"]
    assert kinds(doc.project.blocks)[:4] == ["conv", "pool", "residual", "flatten"]
    assert doc.selected_path == (2, 0, 1)
    assert_canvas_matches_model(canvas, doc)
    inside = copy.deepcopy(doc.project.blocks)
    # and out again, to the very top of the network
    accepted, _ = drag(canvas, canvas.mime_for_card((2, 0, 1)), gap_point(canvas, (), 0), MOVE)
    assert accepted
    assert kinds(doc.project.blocks)[:4] == ["pool", "conv", "pool", "residual"]
    assert kinds(doc.project.blocks[3]["blocks"]) == ["conv"]
    assert_canvas_matches_model(canvas, doc)
    doc.undo_stack.undo()
    assert doc.project.blocks == inside
    doc.undo_stack.undo()
    assert doc.project.blocks == start
    assert_canvas_matches_model(canvas, doc)
    doc.undo_stack.redo()
    doc.undo_stack.redo()
    assert kinds(doc.project.blocks)[:4] == ["pool", "conv", "pool", "residual"]
    assert_canvas_matches_model(canvas, doc)


def test_a_block_moves_between_branch_paths_and_a_palette_block_drops_into_a_path(qtbot, inception):
    canvas = make_canvas(qtbot, inception)
    group = next(i for i, b in enumerate(inception.project.blocks) if b["kind"] == "branches")
    paths = inception.project.blocks[group]["paths"]
    before = copy.deepcopy(inception.project.blocks)
    moved = paths[1][1]["kind"]
    drag(canvas, canvas.mime_for_card((group, 1, 1)), gap_point(canvas, (group, 0), 1), MOVE)
    paths = inception.project.blocks[group]["paths"]
    assert [len(p) for p in paths] == [2, 1, 2] and paths[0][1]["kind"] == moved
    drag(canvas, blocks_mime([{"kind": "dropout", "rate": 0.2}], "palette"), gap_point(canvas, (group, 2), 0))
    assert inception.project.blocks[group]["paths"][2][0]["kind"] == "dropout"
    assert_canvas_matches_model(canvas, inception)
    inception.undo_stack.undo()
    inception.undo_stack.undo()
    assert inception.project.blocks == before


def test_a_group_cannot_be_dropped_inside_itself(qtbot, resnet):
    canvas = make_canvas(qtbot, resnet)
    group = next(i for i, b in enumerate(resnet.project.blocks) if b["kind"] == "residual")
    before = copy.deepcopy(resnet.project.blocks)
    assert hover(canvas, canvas.mime_for_card(group), gap_point(canvas, (group, 0), 2)) is None
    drag(canvas, canvas.mime_for_card(group), gap_point(canvas, (group, 0), 2), MOVE)
    assert resnet.project.blocks == before and resnet.undo_stack.count() == 0


def test_shift_click_selects_consecutive_blocks_which_wrap_in_a_residual_group_then_unwrap(qtbot, doc):
    canvas = make_canvas(qtbot, doc)  # LeNet-5
    before = copy.deepcopy(doc.project.blocks)
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=canvas.card_rect(2).center())
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, SHIFT, canvas.card_rect(3).center())
    assert (doc.selected_path, doc.selected_count) == ((2,), 2)
    assert canvas.cards[2].selected and canvas.cards[3].selected and not canvas.cards[4].selected
    menu = canvas.context_menu_at(canvas.card_rect(3).center())
    assert doc.selected_count == 2  # a right-click inside the selection keeps it
    wrap = next(a for a in menu.actions() if "Wrap in residual group" in a.text().replace("&", ""))
    assert "2 blocks" in wrap.text()
    wrap.trigger()
    assert kinds(doc.project.blocks)[:4] == ["conv", "pool", "residual", "flatten"]
    assert kinds(doc.project.blocks[2]["blocks"]) == ["conv", "pool"]
    assert doc.undo_stack.count() == 1 and doc.selected_path == (2,)
    assert_canvas_matches_model(canvas, doc)
    menu = canvas.context_menu_at(canvas.card_rect(2).center())
    next(a for a in menu.actions() if a.text() == "&Unwrap group").trigger()
    assert without_names(doc.project.blocks) == without_names(before)  # blocks made anew get names of their own
    doc.undo_stack.undo()
    assert kinds(doc.project.blocks)[2] == "residual"
    doc.undo_stack.undo()
    assert doc.project.blocks == before
    doc.undo_stack.redo()
    assert kinds(doc.project.blocks[2]["blocks"]) == ["conv", "pool"]
    assert_canvas_matches_model(canvas, doc)


def test_wrapping_a_selection_in_branches_makes_one_path_per_block(qtbot, doc):
    canvas = make_canvas(qtbot, doc)
    before = copy.deepcopy(doc.project.blocks)
    doc.select_path((2,), 2)
    menu = canvas.context_menu_at(canvas.card_rect(2).center())
    next(a for a in menu.actions() if "Wrap in branches" in a.text().replace("&", "")).trigger()
    group = doc.project.blocks[2]
    assert group["kind"] == "branches" and [kinds(p) for p in group["paths"]] == [["conv"], ["pool"]]
    # conv2 gives 16 x 10 x 10 and pool2 6 x 14 x 14: concat cannot join them, and the merge card says so
    assert "heights and widths must agree" in canvas.joins[(2,)].message
    doc.undo_stack.undo()
    assert doc.project.blocks == before


def test_keys_walk_into_groups_and_delete_edits_the_inner_pipeline(qtbot, resnet):
    canvas = make_canvas(qtbot, resnet)
    canvas.setFocus()
    group = next(i for i, b in enumerate(resnet.project.blocks) if b["kind"] == "residual")
    resnet.select(group)
    qtbot.keyClick(canvas, Qt.Key.Key_Down)
    assert resnet.selected_path == (group, 0, 0)
    n = len(resnet.project.blocks[group]["blocks"])
    canvas.delete_selected()
    assert len(resnet.project.blocks[group]["blocks"]) == n - 1 and resnet.selected_path == (group, 0, 0)
    canvas.duplicate_selected()
    assert len(resnet.project.blocks[group]["blocks"]) == n
    resnet.undo_stack.undo()
    resnet.undo_stack.undo()
    assert len(resnet.project.blocks[group]["blocks"]) == n
    assert_canvas_matches_model(canvas, resnet)


def test_the_inspector_edits_an_inner_block_and_undo_puts_it_back(qtbot, resnet):
    inspector = Inspector(resnet)
    qtbot.addWidget(inspector)
    group = next(i for i, b in enumerate(resnet.project.blocks) if b["kind"] == "residual")
    resnet.select_path((group, 0, 0))
    assert inspector.title.text().startswith(f"Block {group + 1} › block 1 · ")
    spin = inspector.findChild(QSpinBox, "filters")
    before = resnet.project.blocks[group]["blocks"][0]["filters"]
    assert spin.value() == before
    spin.setValue(before * 2)
    assert resnet.project.blocks[group]["blocks"][0]["filters"] == before * 2
    assert resnet.inference.info_at((group, 0, 0)).output_shape[0] == before * 2
    resnet.undo_stack.undo()
    assert resnet.project.blocks[group]["blocks"][0]["filters"] == before and spin.value() == before


def test_a_summary_row_of_an_inner_block_selects_that_block(qtbot, inception):
    panel = SummaryPanel(inception)
    qtbot.addWidget(panel)
    group = next(i for i, b in enumerate(inception.project.blocks) if b["kind"] == "branches")
    row = panel._row_blocks.index((group, 1, 1))
    panel.table.selectRow(row)
    assert inception.selected_path == (group, 1, 1)
    inception.select_path((group, 2, 0))
    assert [i.row() for i in panel.table.selectionModel().selectedRows()] == [panel._row_blocks.index((group, 2, 0))]


def test_the_canvas_looks_right_on_a_group_inside_a_branch_path(qtbot, doc):
    """Nesting: a residual group inside a branch path gets its own frame within the path's column."""
    doc.new_project("inception_mini")
    group = next(i for i, b in enumerate(doc.project.blocks) if b["kind"] == "branches")
    doc.wrap("residual", 0, 0, lane=(group, 0))
    canvas = make_canvas(qtbot, doc)
    assert_canvas_matches_model(canvas, doc)
    outer, inner = canvas.frames[(group,)].rect, canvas.frames[(group, 0, 0)].rect
    assert outer.contains(inner)
    assert canvas.cards_at[(group, 0, 0, 0, 0)].sceneBoundingRect().intersects(inner)
    messages = [p.message for p in doc.inference.problems if p.address[:3] == (group, 0, 0)]
    assert all(m.startswith(f"block {group + 1} › path 1 › block 1") for m in messages)


def test_resnet8_is_built_from_the_palette_without_editing_json_and_trains(qtbot, doc):
    """What the README walks through: stem, three residual stages (the last two halving the size,
    their skips projected), global pooling, dense — dragged, duplicated and edited in the window."""
    from netbuilder.core.datasets.shapes import shapes_dataset
    from netbuilder.core.project import Project
    from netbuilder.core.trainer import Trainer
    from netbuilder.gui.palette import PALETTE_ENTRIES, Palette

    doc.new_project(None)
    doc.set_value("input_shape", [1, 28, 28])
    doc.set_value("num_classes", 10)
    canvas = make_canvas(qtbot, doc)
    palette = Palette(doc)
    qtbot.addWidget(palette)
    inspector = Inspector(doc)
    qtbot.addWidget(inspector)
    row = {e.label: i for i, e in enumerate(PALETTE_ENTRIES)}
    palette.append_row(row["Convolution"])  # the stem: 16 filters, "same" padding
    inspector.findChild(QSpinBox, "filters").setValue(16)
    mode = inspector.findChild(QComboBox, "padding.mode")
    mode.activated.emit(mode.findText("same"))
    drag(canvas, palette.mime_for_row(row["Residual group"]), gap_point(canvas, (), 1))
    for stage, filters in ((2, 32), (3, 64)):  # each a copy of the one before, twice as wide, half as big
        doc.select(stage - 1)
        canvas.duplicate_selected()  # the copy lands after the group and is selected
        for inner in (0, 2):  # its two convolutions
            doc.select_path((stage, 0, inner))
            inspector.findChild(QSpinBox, "filters").setValue(filters)
        doc.select_path((stage, 0, 0))
        stride = inspector.findChild(QSpinBox, "stride.height")
        stride.setValue(2)
    palette.append_row(row["Global pooling"])
    palette.append_row(row["Dense"])
    doc.select(len(doc.project.blocks) - 1)
    inspector.findChild(QSpinBox, "units").setValue(10)
    activation = inspector.findChild(QComboBox, "activation")
    activation.activated.emit(activation.findText("softmax"))  # what a user's pick emits
    assert doc.inference.ok, [p.message for p in doc.inference.errors]
    assert [b["kind"] for b in doc.project.blocks] == ["conv", "residual", "residual", "residual", "global_pool",
                                                       "dense"]
    assert [doc.inference.info_at((i,)).output_shape for i in (1, 2, 3)] == [(16, 28, 28), (32, 14, 14), (64, 7, 7)]
    assert "1x1 conv, stride 2" in canvas.joins[(2,)].text and "1x1 conv" not in canvas.joins[(1,)].text
    assert_canvas_matches_model(canvas, doc)
    # it trains (the project as the window would hand it to the worker), and the loss goes down
    project = Project.from_dict(doc.project.to_dict())
    project.training = dataclasses.replace(project.training, epochs=2, batch_size=16)
    trainer = Trainer(project, shapes_dataset(128, 0))
    trainer.fit(epochs=2)
    assert trainer.history.epochs_done == 2
    assert trainer.history.train_loss[-1] < trainer.history.train_loss[0]
