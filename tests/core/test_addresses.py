"""Addresses of blocks inside groups: how editors reach an inner block, and how problems say
which inner block they are about."""
from netbuilder.core.addresses import address_text, after_removal, block_at, inside, pipeline_at, walk
from netbuilder.core.inference import infer
from netbuilder.core.project import Project

CONV = {"kind": "conv", "filters": 4, "kernel_size": 3, "padding": "same"}


def nested() -> list:
    """conv, branches(path 1: residual(conv, conv), path 2: pool), flatten, dense."""
    return [dict(CONV),
            {"kind": "branches", "merge": "concat", "paths": [
                [{"kind": "residual", "blocks": [dict(CONV), dict(CONV)]}],
                [{"kind": "pool", "size": 3, "stride": 1, "padding": 1}]]},
            {"kind": "flatten"}, {"kind": "dense", "units": 3, "activation": "softmax"}]


def test_lanes_and_blocks_are_reached_by_address_and_are_the_project_own_lists():
    blocks = nested()
    assert pipeline_at(blocks, ()) is blocks
    assert pipeline_at(blocks, (1, 1)) is blocks[1]["paths"][1]
    assert pipeline_at(blocks, (1, 0, 0, 0)) is blocks[1]["paths"][0][0]["blocks"]
    assert block_at(blocks, (1, 0, 0, 0, 1)) is blocks[1]["paths"][0][0]["blocks"][1]
    for missing in ((9,), (1, 2, 0), (0, 0, 0), (1, 0, 5), ()):
        assert block_at(blocks, missing) is None
    assert pipeline_at(blocks, (0, 0)) is None  # a conv has no lanes


def test_walk_lists_every_block_in_reading_order():
    assert list(walk(nested())) == [(0,), (1,), (1, 0, 0), (1, 0, 0, 0, 0), (1, 0, 0, 0, 1), (1, 1, 0), (2,), (3,)]


def test_after_removal_shifts_later_siblings_and_what_is_inside_them():
    assert after_removal((3, 0, 1), (1,)) == (2, 0, 1)
    assert after_removal((1, 0, 1), (3,)) == (1, 0, 1)
    assert after_removal((1, 1, 2), (1, 1, 0)) == (1, 1, 1)
    assert after_removal((1, 0, 2), (1, 1, 0)) == (1, 0, 2)  # another path: untouched
    assert inside((1, 0, 0, 0), (1,)) and inside((1,), (1,)) and not inside((2, 0), (1,))


def test_an_inner_problem_carries_the_address_its_message_names():
    blocks = nested()
    blocks[1]["paths"][0][0]["blocks"][1]["stride"] = 0
    found = [p for p in infer(Project(name="n", input_shape=[1, 8, 8], num_classes=3, blocks=blocks)).problems
             if p.field == "stride"]
    assert len(found) == 1
    assert found[0].address == (1, 0, 0, 0, 1) and found[0].block == 1
    assert found[0].message.startswith(address_text(blocks, (1, 0, 0, 0, 1)) + " (conv): ")
    assert address_text(blocks, (1, 0, 0, 0, 1)) == "block 2 › path 1 › block 1 › block 2"


def test_info_at_finds_inner_blocks_and_a_failed_merge_keeps_them():
    blocks = nested()
    project = Project(name="n", input_shape=[1, 8, 8], num_classes=3, blocks=blocks)
    inference = infer(project)
    assert inference.info_at((1, 0, 0, 0, 1)).output_shape == (4, 8, 8)
    assert inference.info_at((1, 1, 0)).output_shape == (4, 8, 8)
    assert inference.info_at((1,)).output_shape == (8, 8, 8)
    blocks[1]["paths"][1][0]["stride"] = 2  # 4x4 beside 8x8: concat fails
    inference = infer(project)
    assert inference.info_at((1,)).output_shape is None
    assert inference.info_at((1, 1, 0)).output_shape == (4, 4, 4)  # what each path found is still there
    merge = inference.problems_at((1,))
    assert [p.field for p in merge] == ["merge"] and inference.problems_at((1, 1, 0)) == []
