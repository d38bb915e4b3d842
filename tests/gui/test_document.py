"""The document is the only way to change a project: every edit is one undo step, and undo/redo
give back exactly the model they started from (do, undo, redo, compare)."""
import copy

import pytest

from netbuilder.core.errors import ProjectError
from netbuilder.core.project import load_project
from netbuilder.gui.document import EXAMPLES_DIR, ProjectDocument


def snapshot(doc):
    return copy.deepcopy(doc.project.to_dict())


EDITS = {
    "add": lambda d: d.add_block("dropout", 2),
    "add at end": lambda d: d.add_block("activation"),
    "remove one": lambda d: d.remove_blocks([1]),
    "remove several": lambda d: d.remove_blocks([0, 3, 5]),
    "move down": lambda d: d.move_block(0, 4),
    "move up": lambda d: d.move_block(6, 1),
    "duplicate": lambda d: d.duplicate_block(2),
    "paste": lambda d: d.insert_blocks([{"kind": "conv", "filters": 3, "name": "copied"}], 4),
    "change field": lambda d: d.set_block_field(0, "filters", 12),
    "add field": lambda d: d.set_block_field(5, "name", "flat"),
    "remove field": lambda d: d.clear_block_field(0, "activation"),
    "input shape": lambda d: d.set_value("input_shape", (3, 32, 32)),
    "training value": lambda d: d.set_value("training.learning_rate", 0.1),
}


@pytest.mark.parametrize("edit", list(EDITS), ids=list(EDITS))
def test_each_edit_is_one_undo_step(doc, edit):
    before = snapshot(doc)
    EDITS[edit](doc)
    after = snapshot(doc)
    assert after != before
    assert doc.undo_stack.count() == 1 and doc.modified
    doc.undo_stack.undo()
    assert snapshot(doc) == before and not doc.modified
    doc.undo_stack.redo()
    assert snapshot(doc) == after


def test_inference_follows_every_edit_and_undo(doc, qtbot):
    with qtbot.waitSignal(doc.inferenceChanged) as sig:
        doc.set_block_field(0, "kernel_size", 40)  # with padding "same": only a warning
    assert sig.args[0] is doc.inference
    doc.set_block_field(0, "padding", "valid")
    assert not doc.inference.ok
    bad = {p.block for p in doc.inference.errors}
    assert 0 in bad
    assert all(info.output_shape is None for info in doc.inference.blocks[1:])
    doc.undo_stack.undo()
    doc.undo_stack.undo()
    assert doc.inference.ok and doc.inference.total_params == 61706


def test_consecutive_edits_of_one_field_merge(doc):
    for v in (7, 8, 9):
        doc.set_block_field(0, "filters", v)
    assert doc.undo_stack.count() == 1
    doc.undo_stack.undo()
    assert doc.project.blocks[0]["filters"] == 6


def test_pasted_blocks_get_fresh_names_and_the_others_keep_theirs(doc):
    doc.insert_blocks([{"kind": "dense", "units": 5, "name": "dense1"}], 0)
    assert doc.project.blocks[0]["name"] == "dense4"  # dense1..3 are taken
    assert [i.name for i in doc.inference.blocks if i.kind == "dense"] == ["dense4", "dense1", "dense2", "dense3"]
    assert not [p for p in doc.inference.errors if p.field == "name"]


def test_a_move_keeps_every_name_and_undo_restores_the_file_exactly(doc):
    """After a reorder the 84-unit layer is still dense2, so weights trained before still fit."""
    before = doc.project.to_dict()
    doc.move_block(6, 5)  # dense2 (84 units) above dense1 (120 units)
    dense = [(i.name, b["units"]) for i, b in zip(doc.inference.blocks, doc.project.blocks) if i.kind == "dense"]
    assert dense == [("dense2", 84), ("dense1", 120), ("dense3", 10)]
    assert doc.undo_stack.count() == 1 and doc.undo_stack.undoText() == "Move dense"
    doc.undo_stack.undo()
    assert doc.project.to_dict() == before  # no name left behind
    doc.undo_stack.redo()
    doc.remove_blocks([0])  # removing conv1 does not make conv2 the new conv1
    assert [i.name for i in doc.inference.blocks][:2] == ["pool1", "conv2"]


def test_remove_then_undo_restores_positions_and_selection_is_cleared(doc):
    doc.select(3)
    original = copy.deepcopy(doc.project.blocks)
    doc.remove_blocks([3, 1])
    assert doc.selected == -1
    doc.undo_stack.undo()
    assert doc.project.blocks == original


def test_locked_document_refuses_pipeline_edits_but_not_training_settings(doc):
    doc.set_locked("Training")
    doc.add_block("dropout")
    doc.remove_blocks([0])
    doc.move_block(0, 1)
    doc.set_block_field(0, "filters", 3)
    assert doc.undo_stack.count() == 0
    doc.set_value("training.learning_rate", 0.01)
    assert doc.project.training.learning_rate == 0.01
    doc.set_locked("")
    doc.add_block("dropout")
    assert doc.project.blocks[-1]["kind"] == "dropout"


def test_save_and_open_round_trip(doc, tmp_path):
    doc.set_block_field(0, "filters", 4)
    path = tmp_path / "net.json"
    doc.save(path)
    assert not doc.modified and doc.path == path
    other = ProjectDocument()
    other.open(path)
    assert other.project.to_dict() == doc.project.to_dict()


def test_open_invalid_file_leaves_project_unchanged(doc, tmp_path):
    before = snapshot(doc)
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": 1, "blocks": [}')
    with pytest.raises(ProjectError) as err:
        doc.open(bad)
    assert "line 1" in str(err.value)
    assert snapshot(doc) == before and doc.path is None


def test_new_project_from_each_template():
    d = ProjectDocument()
    for stem, _name in d.templates():
        d.new_project(stem)
        assert d.project.to_dict() == load_project(EXAMPLES_DIR / f"{stem}.json").to_dict()
        assert not d.modified and d.undo_stack.count() == 0
    d.new_project(None)
    assert d.project.blocks == []


# --- editing inside groups ---------------------------------------------------------------------
def test_a_block_moves_into_a_group_after_it_and_the_group_address_follows(doc):
    doc.wrap("residual", 2, 3)  # conv2, pool2 in a group at 2
    start = copy.deepcopy(doc.project.blocks)
    moved = copy.deepcopy(doc.project.blocks[0])
    address = doc.move_to((0,), (2, 0), 1)  # conv1 into the group, between conv2 and pool2
    assert address == (1, 0, 1) and doc.selected_path == (1, 0, 1)
    assert [b["kind"] for b in doc.project.blocks[1]["blocks"]] == ["conv", "conv", "pool"]
    assert doc.project.blocks[1]["blocks"][1] == {**moved, "name": doc.project.blocks[1]["blocks"][1]["name"]}
    assert doc.undo_stack.count() == 2  # wrap, move: one step each
    doc.undo_stack.undo()
    assert doc.project.blocks == start


def test_a_moved_block_keeps_its_own_name_unless_the_pipeline_it_joins_has_it(doc):
    doc.set_block_field(0, "name", "stem")
    doc.wrap("residual", 2, 2)
    assert doc.move_to((0,), (2, 0), 0) == (1, 0, 0)  # the group is at 1 once conv1 has left
    assert doc.project.blocks[1]["blocks"][0]["name"] == "stem"
    assert doc.move_to((1, 0, 0), (1, 0), 0) == ()  # nowhere new: nothing done
    assert doc.move_to((1,), (1, 0), 0) == ()  # a group into itself
    doc.insert_blocks([{"kind": "conv", "name": "stem"}], 0)  # a new "stem" at the top: taken there
    assert doc.project.blocks[0]["name"] != "stem"  # pasted blocks get fresh names
    doc.set_block_field(0, "name", "conv9")
    doc.set_block_field(0, "name", "stem", lane=(2, 0))
    doc.clear_block_field(0, "name", lane=(2, 0))
    doc.set_block_field(0, "name", "conv9", lane=(2, 0))  # both pipelines have a conv9 now, legal apart
    doc.move_to((2, 0, 0), (), 0)
    assert doc.project.blocks[0]["name"] != "conv9" and doc.project.blocks[1]["name"] == "conv9"


def test_field_edits_inside_a_group_are_undone_and_merge_while_typing(doc):
    doc.wrap("residual", 2, 2)
    doc.set_block_field(0, "filters", 17, lane=(2, 0))
    doc.set_block_field(0, "filters", 18, lane=(2, 0))
    assert doc.project.blocks[2]["blocks"][0]["filters"] == 18
    assert doc.inference.info_at((2, 0, 0)).output_shape[0] == 18
    doc.undo_stack.undo()  # both keystrokes at once
    assert doc.project.blocks[2]["blocks"][0]["filters"] == 16


def test_removing_the_selected_group_clears_a_selection_inside_it(doc):
    doc.wrap("residual", 2, 3)
    doc.select_path((2, 0, 1))
    assert doc.selected == 2 and doc.selected_count == 1
    doc.remove_blocks([2])
    assert doc.selected_path == () and doc.selected == -1
    doc.undo_stack.undo()
    doc.select_path((2, 0, 0), 5)
    assert doc.selected_count == 2  # no more than the lane holds
