"""Shape inference and validation: shapes, counts, and a clear message for every mistake."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netbuilder.core.blocks import Geometry, with_defaults
from netbuilder.core.errors import ERROR, NOTE, WARNING, ProjectError
from netbuilder.core.geometry import output_hw, resolve_padding
from netbuilder.core.inference import infer, validate
from netbuilder.core.project import Project, TrainingSettings, parse_project

SOFTMAX_10 = {"kind": "dense", "units": 10, "activation": "softmax"}
LENET_BLOCKS = [
    {"kind": "conv", "filters": 6, "kernel_size": 5, "padding": "same", "activation": "relu"},
    {"kind": "pool", "mode": "max", "size": 2},
    {"kind": "conv", "filters": 16, "kernel_size": 5, "padding": "valid", "activation": "relu"},
    {"kind": "pool", "mode": "max", "size": 2},
    {"kind": "flatten"},
    {"kind": "dense", "units": 120},
    {"kind": "dense", "units": 84},
    SOFTMAX_10,
]


def project(blocks, **kwargs) -> Project:
    return Project(blocks=[dict(b) for b in blocks], **kwargs)


def only(result, severity=ERROR):
    return [p for p in result.problems if p.severity == severity]


# -- shapes and counts --------------------------------------------------------------------------

def test_lenet5_shapes_params_and_macs():
    result = validate(project(LENET_BLOCKS))
    rows = [(b.name, b.input_shape, b.output_shape, b.params, b.macs) for b in result.blocks]
    assert rows == [
        ("conv1", (1, 28, 28), (6, 28, 28), 156, 28 * 28 * 6 * 25),
        ("pool1", (6, 28, 28), (6, 14, 14), 0, 0),
        ("conv2", (6, 14, 14), (16, 10, 10), 2416, 10 * 10 * 16 * 6 * 25),
        ("pool2", (16, 10, 10), (16, 5, 5), 0, 0),
        ("flatten1", (16, 5, 5), (400,), 0, 0),
        ("dense1", (400,), (120,), 48120, 48000),
        ("dense2", (120,), (84,), 10164, 10080),
        ("dense3", (84,), (10,), 850, 840),
    ]
    assert result.total_params == 61706
    assert result.total_macs == 117600 + 240000 + 48000 + 10080 + 840
    assert result.input_shape == (1, 28, 28) and result.output_shape == (10,)
    assert result.blocks[0].activation_bytes == 4 * 6 * 28 * 28
    outputs = [6 * 28 * 28, 6 * 14 * 14, 16 * 10 * 10, 16 * 5 * 5, 400, 120, 84, 10]
    assert [b.activation_bytes for b in result.blocks] == [4 * n for n in outputs]
    assert result.total_activation_bytes == 4 * sum(outputs)
    assert result.problems == () and result.ok


def test_geometry_for_building_layers():
    result = infer(project(LENET_BLOCKS))
    assert result.blocks[0].geometry == Geometry(kernel=(5, 5), stride=(1, 1), pads=(2, 2, 2, 2), in_channels=1)
    assert result.blocks[1].geometry == Geometry(kernel=(2, 2), stride=(2, 2), pads=(0, 0, 0, 0))
    assert result.blocks[5].geometry == Geometry(in_features=400)
    assert result.blocks[4].geometry == Geometry()


def test_block_has_defaults_filled_and_is_a_copy():
    blocks = [{"kind": "conv", "kernel_size": [3, 3], "name": "first"}, {"kind": "flatten"}, SOFTMAX_10]
    p = project(blocks)
    info = infer(p).blocks[0]
    assert info.block == with_defaults(p.blocks[0])
    assert list(info.block) == list(with_defaults(p.blocks[0]))
    info.block["kernel_size"][0] = 7
    assert p.blocks[0]["kernel_size"] == [3, 3]
    assert info.name == "first"


@pytest.mark.parametrize("size, kernel, stride, expected_pads, expected_out", [
    (7, 4, 2, (1, 2), 4),   # even kernel, stride 2: odd padding pixel goes after (SAME_UPPER)
    (8, 4, 2, (1, 1), 4),
    (5, 2, 1, (0, 1), 5),
    (6, 2, 2, (0, 0), 3),
    (9, 3, 3, (0, 0), 3),
    (28, 5, 1, (2, 2), 28),
])
def test_same_padding_with_stride_and_even_kernels(size, kernel, stride, expected_pads, expected_out):
    blocks = [{"kind": "conv", "filters": 2, "kernel_size": kernel, "stride": stride, "padding": "same"},
              {"kind": "flatten"}, SOFTMAX_10]
    info = infer(project(blocks, input_shape=(3, size, size))).blocks[0]
    assert info.geometry.pads == expected_pads * 2
    assert info.output_shape == (2, expected_out, expected_out)
    assert expected_out == -(-size // stride)


@settings(max_examples=200, deadline=None)
@given(h=st.integers(1, 12), w=st.integers(1, 12), kh=st.integers(1, 5), kw=st.integers(1, 5),
       sh=st.integers(1, 3), sw=st.integers(1, 3),
       padding=st.sampled_from(["same", "valid", 0, 1, [1, 2], [0, 3]]))
def test_conv_shapes_agree_with_geometry(h, w, kh, kw, sh, sw, padding):
    blocks = [{"kind": "conv", "filters": 3, "kernel_size": [kh, kw], "stride": [sh, sw], "padding": padding}]
    info = infer(project(blocks, input_shape=(2, h, w), num_classes=None)).blocks[0]
    pads = resolve_padding(padding, (h, w), (kh, kw), (sh, sw))
    oh, ow = output_hw((h, w), (kh, kw), (sh, sw), pads)
    fits = kh <= h + pads[0] + pads[1] and kw <= w + pads[2] + pads[3]
    sane = padding in ("same", "valid") or (pads[0] < kh and pads[2] < kw)
    if fits and sane:
        assert info.output_shape == (3, oh, ow) and oh >= 1 and ow >= 1
        assert info.geometry.pads == pads
        assert info.params == 3 * 2 * kh * kw + 3 and info.macs == oh * ow * 3 * 2 * kh * kw
    else:
        assert info.output_shape is None


def test_pool_stride_defaults_to_size_and_can_overlap():
    blocks = [{"kind": "pool", "size": 3}, {"kind": "pool", "mode": "average", "size": 3, "stride": 2, "padding": 1},
              {"kind": "flatten"}, {"kind": "dense", "units": 10, "activation": "softmax"}]
    result = infer(project(blocks, input_shape=(4, 27, 27)))
    assert result.blocks[0].output_shape == (4, 9, 9)
    assert result.blocks[1].output_shape == (4, 5, 5)
    assert result.blocks[1].geometry == Geometry(kernel=(3, 3), stride=(2, 2), pads=(1, 1, 1, 1))
    assert result.ok


def test_implicit_flatten_is_a_note_not_an_error():
    result = infer(project([{"kind": "conv", "filters": 4}, SOFTMAX_10], input_shape=(1, 8, 8)))
    dense = result.blocks[1]
    assert dense.implicit_flatten and dense.input_shape == (4, 6, 6)
    assert dense.geometry == Geometry(in_features=144) and dense.params == 1450
    assert result.ok
    (note,) = result.problems
    assert note.severity == NOTE and note.block == 1
    assert note.message == ("block 2 (dense): its input 4 x 6 x 6 is flattened to 144 values first "
                            "(as if a flatten block came before it)")
    assert not infer(project(LENET_BLOCKS)).blocks[5].implicit_flatten


def test_flat_input_and_no_class_count():
    blocks = [{"kind": "flatten"}, {"kind": "dense", "units": 4, "activation": "tanh"},
              {"kind": "dense", "units": 1, "activation": "sigmoid"}]
    p = project(blocks, input_shape=(2, 1, 1), num_classes=1,
                training=TrainingSettings(loss="binary_cross_entropy"))
    result = validate(p)
    assert [b.output_shape for b in result.blocks] == [(2,), (4,), (1,)]
    assert result.total_params == 2 * 4 + 4 + 4 + 1
    p.num_classes = None
    assert infer(p).ok


def test_automatic_names_count_per_kind():
    blocks = [{"kind": "conv"}, {"kind": "activation"}, {"kind": "conv", "name": "mine"}, {"kind": "flatten"},
              {"kind": "dropout"}, {"kind": "dense", "units": 20}, SOFTMAX_10]
    names = [b.name for b in infer(project(blocks)).blocks]
    assert names == ["conv1", "activation1", "mine", "flatten1", "dropout1", "dense1", "dense2"]


def test_problems_for():
    result = infer(project([{"kind": "conv", "filters": 0}, {"kind": "flatten"}, SOFTMAX_10]))
    assert [p.field for p in result.problems_for(0)] == ["filters"]
    assert result.problems_for(1) == [] and result.problems_for(2) == []


# -- problems ------------------------------------------------------------------------------------

CONV = {"kind": "conv", "filters": 4, "kernel_size": 3}
TAIL = [{"kind": "flatten"}, SOFTMAX_10]

# (blocks, project overrides, message fragment, 0-based block index or None, field, value)
INVALID = [
    ([{"kind": "convolution"}] + TAIL, {}, 'unknown kind "convolution" (did you mean "conv"?)', 0, "kind", "convolution"),
    ([{"kind": "dens", "units": 10}], {}, 'unknown kind "dens" (did you mean "dense"?); known kinds: conv, pool', 0, "kind", "dens"),
    ([{"kind": "linear", "units": 10}], {}, '(did you mean "dense"?)', 0, "kind", "linear"),
    ([{"kind": "conv", "kernal_size": 3}] + TAIL, {}, 'block 1 (conv): unknown field "kernal_size" (did you mean "kernel_size"?)', 0, "kernal_size", 3),
    ([{"kind": "pool", "kernel_size": 2}] + TAIL, {}, 'block 1 (pool): unknown field "kernel_size" (did you mean "size"?)', 0, "kernel_size", 2),
    ([{"kind": "dropout", "units": 2}] + TAIL, {}, "(units belongs to dense blocks)", 0, "units", 2),
    ([{"kind": "conv", "filters": True}] + TAIL, {}, "block 1 (conv): filters must be a whole number of at least 1, got true (true/false is not a number)", 0, "filters", True),
    ([{"kind": "conv", "filters": 0}] + TAIL, {}, "filters must be a whole number of at least 1, got 0", 0, "filters", 0),
    ([{"kind": "conv", "filters": 2.5}] + TAIL, {}, "got 2.5", 0, "filters", 2.5),
    ([{"kind": "conv", "kernel_size": [3, 0]}] + TAIL, {}, "kernel_size must be a whole number of at least 1 or a [height, width] pair of them, got [3, 0]", 0, "kernel_size", [3, 0]),
    ([{"kind": "conv", "stride": [1, 1, 1]}] + TAIL, {}, "stride must be", 0, "stride", [1, 1, 1]),
    ([{"kind": "conv", "padding": "Same"}] + TAIL, {}, "padding must be 'valid', 'same', a number of pixels (0 or more) or a [height, width] pair of them, got \"Same\" (did you mean \"same\"?)", 0, "padding", "Same"),
    ([{"kind": "conv", "padding": -1}] + TAIL, {}, "padding must be", 0, "padding", -1),
    ([{"kind": "dense", "units": 10, "activation": "softmaxx"}], {}, 'activation must be one of relu, leaky_relu, sigmoid, tanh, identity, softmax, got "softmaxx" (did you mean "softmax"?)', 0, "activation", "softmaxx"),
    ([{"kind": "pool", "mode": "min"}] + TAIL, {}, 'block 1 (pool): mode must be one of max, average, sum, got "min"', 0, "mode", "min"),
    ([{"kind": "pool", "size": 2, "stride": 0}] + TAIL, {}, "stride must be a whole number of at least 1 or a [height, width] pair of them (or empty), got 0", 0, "stride", 0),
    ([{"kind": "dropout", "rate": 0.99}] + TAIL, {}, "block 1 (dropout): rate must be a number from 0 to 0.95, got 0.99", 0, "rate", 0.99),
    ([{"kind": "dropout", "rate": -0.1}] + TAIL, {}, "rate must be a number from 0 to 0.95, got -0.1", 0, "rate", -0.1),
    ([{"kind": "dropout", "rate": "half"}] + TAIL, {}, 'got "half"', 0, "rate", "half"),
    ([{"kind": "conv", "kernel_size": 7}] + TAIL, {"input_shape": (1, 4, 4)}, "block 1 (conv): kernel 7x7 is larger than its 4x4 input with padding 0; use padding 'same' or a smaller kernel", 0, "kernel_size", 7),
    ([CONV, {"kind": "pool", "size": 3}, {"kind": "conv", "kernel_size": 2}] + TAIL, {"input_shape": (1, 5, 5)}, "block 3 (conv): kernel 2x2 is larger than its 1x1 input with padding 0", 2, "kernel_size", 2),
    ([{"kind": "pool", "size": [2, 9]}] + TAIL, {"input_shape": (1, 8, 8)}, "block 1 (pool): window 2x9 is larger than its 8x8 input with padding 0; use a smaller window or remove this block", 0, "size", [2, 9]),
    ([{"kind": "conv", "kernel_size": 3, "padding": 3}] + TAIL, {}, "block 1 (conv): padding 3 is not smaller than the 3x3 kernel, so border outputs would see only zeros; use at most 2", 0, "padding", 3),
    ([{"kind": "pool", "size": 2, "padding": [0, 2]}] + TAIL, {}, "block 1 (pool): padding 0x2 is more than half the 2x2 window; use at most 1", 0, "padding", [0, 2]),
    ([{"kind": "flatten"}, {"kind": "conv"}] + TAIL, {}, "block 2 (conv): needs a (channels, height, width) input but receives a flat vector of 784 values", 1, None, None),
    ([{"kind": "flatten"}, {"kind": "pool"}, SOFTMAX_10], {}, "block 2 (pool): needs a (channels, height, width) input", 1, None, None),
    ([{"kind": "dense", "units": 10, "activation": "softmax"}, {"kind": "dense", "units": 10, "activation": "softmax"}], {}, "block 1 (dense): softmax is only allowed on the last block", 0, "activation", "softmax"),
    ([{"kind": "activation", "activation": "softmax"}] + TAIL, {}, "block 1 (activation): softmax is only allowed on the last block", 0, "activation", "softmax"),
    ([{"kind": "conv", "name": "a b"}] + TAIL, {}, 'block 1 (conv): name "a b" must be a single word of at most 64 ASCII letters, digits and underscores', 0, "name", "a b"),
    ([{"kind": "conv", "name": "\ufb01lter"}] + TAIL, {}, 'block 1 (conv): name "\ufb01lter" must be a single word of at most 64 ASCII', 0, "name", "\ufb01lter"),
    ([{"kind": "conv", "name": "\uff43onv"}] + TAIL, {}, 'block 1 (conv): name "\uff43onv" must be a single word of at most 64 ASCII', 0, "name", "\uff43onv"),
    ([{"kind": "conv", "name": 5}] + TAIL, {}, "name 5 must be", 0, "name", 5),
    ([{"kind": "conv", "name": "x"}, {"kind": "conv", "name": "x"}] + TAIL, {}, 'block 2 (conv): name "x" is already the name of block 1 (conv); names must be unique', 1, "name", "x"),
    ([{"kind": "conv"}, {"kind": "conv", "name": "conv1"}] + TAIL, {}, 'block 2 (conv): name "conv1" is already the automatic name of block 1 (conv)', 1, "name", "conv1"),
    ([{"kind": "conv", "name": "conv2"}, {"kind": "conv"}] + TAIL, {}, 'block 1 (conv): name "conv2" is also the automatic name of block 2 (conv); choose another name', 0, "name", "conv2"),
    ([{"kind": "flatten"}, {"kind": "dense", "units": 12, "activation": "softmax"}], {}, "block 2 (dense): the last block produces 12 outputs but the project has 10 classes; set its units to 10", 1, "units", 12),
    ([{"kind": "flatten"}, {"kind": "dense", "units": 2, "activation": "sigmoid"}], {"num_classes": 1, "training": TrainingSettings(loss="binary_cross_entropy")}, "produces 2 outputs but the project has 1 class (one binary output)", 1, "units", 2),
    ([{"kind": "conv", "activation": "softmax"}], {"input_shape": (1, 5, 5)}, "block 1 (conv): the last block must produce a flat (features,) output for classification, but it produces 8 x 3 x 3; end with flatten and dense 10", 0, None, [8, 3, 3]),
    ([{"kind": "flatten"}, {"kind": "dense", "units": 10, "activation": "relu"}], {}, "block 2 (dense): the loss cross_entropy needs softmax on the last block, but block 2 (dense) ends with relu; set its activation to softmax", 1, "activation", "relu"),
    ([{"kind": "flatten"}, SOFTMAX_10, {"kind": "dropout"}], {}, "the loss cross_entropy needs softmax on the last block, but the last block, block 3, is a dropout block; end with a dense block of 10 units and softmax", 2, None, None),
    ([{"kind": "conv"}, {"kind": "pool"}], {"num_classes": 3}, "block 2 (pool): the loss cross_entropy needs softmax on the last block, but the last block, block 2, is a pool block; end with a dense block of 3 units and softmax", 1, None, None),
    ([{"kind": "flatten"}, {"kind": "dense", "units": 1, "activation": "softmax"}], {"num_classes": 1}, "softmax over a single output is always 1", 1, "activation", "softmax"),
    ([{"kind": "flatten"}, SOFTMAX_10], {"training": TrainingSettings(loss="binary_cross_entropy")}, "block 2 (dense): the loss binary_cross_entropy needs sigmoid on the last block, but block 2 (dense) ends with softmax", 1, "activation", "softmax"),
    ([], {}, "the pipeline is empty", None, "blocks", []),
    (TAIL, {"input_shape": (0, 28, 28)}, "input_shape must be [channels, height, width], three whole numbers from 1 to 2,147,483,647, got [0, 28, 28]", None, "input_shape", (0, 28, 28)),
    (TAIL, {"num_classes": 0}, "num_classes must be a whole number from 1 to 2,147,483,647", None, "num_classes", 0),
    (TAIL, {"training": TrainingSettings(learning_rate=0.0)}, "training.learning_rate must be a number greater than 0", None, "training.learning_rate", 0.0),
    (TAIL, {"training": TrainingSettings(learning_rate=float("nan"))}, "got NaN", None, "training.learning_rate", None),
    (TAIL, {"training": TrainingSettings(batch_size=0)}, "training.batch_size must be a whole number from 1 to 2,147,483,647, got 0", None, "training.batch_size", 0),
    (TAIL, {"training": TrainingSettings(epochs=0)}, "training.epochs must be a whole number from 1 to 2,147,483,647, got 0", None, "training.epochs", 0),
    (TAIL, {"training": TrainingSettings(validation_fraction=1.0)}, "training.validation_fraction must be a number from 0 up to (not including) 1", None, "training.validation_fraction", 1.0),
    (TAIL, {"training": TrainingSettings(momentum=1.0)}, "training.momentum must be a number from 0 up to (not including) 1", None, "training.momentum", 1.0),
    (TAIL, {"training": TrainingSettings(weight_decay=-0.1)}, "training.weight_decay must be a number of at least 0, got -0.1", None, "training.weight_decay", -0.1),
    (TAIL, {"training": TrainingSettings(seed=-1)}, "training.seed must be a whole number of at least 0, got -1", None, "training.seed", -1),
    (TAIL, {"training": TrainingSettings(optimizer="adamw")}, 'training.optimizer must be one of sgd, momentum, nesterov, adam, got "adamw" (did you mean "adam"?)', None, "training.optimizer", "adamw"),
    (TAIL, {"training": TrainingSettings(loss="crossentropy")}, 'training.loss must be one of cross_entropy, squared_error, binary_cross_entropy, got "crossentropy" (did you mean "cross_entropy"?)', None, "training.loss", "crossentropy"),
]


@pytest.mark.parametrize("blocks, overrides, fragment, index, field, value", INVALID,
                         ids=[f"{i}-{row[2][:40]}" for i, row in enumerate(INVALID)])
def test_invalid_projects(blocks, overrides, fragment, index, field, value):
    result = infer(project(blocks, **overrides))
    assert not result.ok
    matches = [p for p in result.errors if fragment in p.message]
    assert matches, [p.message for p in result.problems]
    problem = matches[0]
    assert problem.block == index and problem.field == field
    if value is not None:
        assert problem.value == value
    if index is not None:
        assert problem.message.startswith(f"block {index + 1}")
        assert problem.kind == (blocks[index].get("kind") if isinstance(blocks[index].get("kind"), str) else None)
    with pytest.raises(ProjectError) as exc:
        validate(project(blocks, **overrides))
    assert fragment in str(exc.value)


def test_three_problems_are_all_reported():
    blocks = [{"kind": "conv", "filters": -1, "kernel_size": 3},
              {"kind": "pool", "mode": "median"},
              {"kind": "dropout", "rate": 2},
              {"kind": "flatten"}, SOFTMAX_10]
    result = infer(project(blocks))
    assert [(p.block, p.field) for p in result.errors] == [(0, "filters"), (1, "mode"), (2, "rate")]
    with pytest.raises(ProjectError) as exc:
        validate(project(blocks))
    assert len(exc.value.problems) == 3
    assert str(exc.value).count("\n  block") == 3


def test_blocks_after_an_error_have_unknown_shapes_and_no_shape_errors():
    blocks = [{"kind": "conv", "filters": "six"},
              {"kind": "conv", "kernel_size": 99},  # would not fit, but the input is unknown
              {"kind": "dropout", "rate": 3.0},     # its own field error is still reported
              {"kind": "flatten"}, {"kind": "dense", "units": 7, "activation": "softmax"}]
    result = infer(project(blocks))
    assert [b.output_shape for b in result.blocks] == [None] * 5
    assert [b.params for b in result.blocks] == [0] * 5
    assert result.output_shape is None
    assert [(p.block, p.field) for p in result.problems] == [(0, "filters"), (2, "rate")]


def test_bad_name_and_misplaced_softmax_keep_shapes():
    blocks = [{"kind": "conv", "name": "my conv", "activation": "softmax"}, {"kind": "conv", "kernel_size": 9}] + TAIL
    result = infer(project(blocks, input_shape=(1, 10, 10)))
    assert [(p.block, p.field) for p in result.errors] == [(0, "name"), (0, "activation"), (1, "kernel_size")]
    assert result.blocks[0].output_shape == (8, 8, 8) and result.blocks[0].name == "conv1"


def test_unknown_kind_stops_shapes_but_not_other_checks():
    blocks = [{"kind": "magic"}, {"kind": "dense", "units": 0, "activation": "softmax"}]
    result = infer(project(blocks))
    assert [(p.block, p.field) for p in result.errors] == [(0, "kind"), (1, "units")]
    assert result.blocks[0].kind == "magic" and result.blocks[0].name == "magic1"


def test_non_dict_blocks_and_kinds_do_not_crash():
    p = Project(blocks=["conv", {"kind": ["conv"]}, {"kind": None}])
    result = infer(p)
    assert [p.block for p in result.errors] == [0, 1, 2]
    assert "got \"conv\"" in result.errors[0].message


# -- warnings -----------------------------------------------------------------------------------

def test_stride_larger_than_kernel_warns():
    blocks = [{"kind": "conv", "kernel_size": 2, "stride": 3}, {"kind": "pool", "size": 2, "stride": [1, 3]}] + TAIL
    result = infer(project(blocks))
    assert result.ok
    assert [(p.block, p.field, p.severity) for p in result.problems] == [(0, "stride", WARNING), (1, "stride", WARNING)]
    assert result.problems[0].message == ("block 1 (conv): stride 3x3 is larger than the 2x2 kernel, "
                                          "so some pixels are never looked at")
    assert result.blocks[0].output_shape == (8, 9, 9)


def test_huge_dense_after_convolution_warns():
    blocks = [{"kind": "conv", "filters": 64, "padding": "same"}, {"kind": "flatten"},
              {"kind": "dense", "units": 32}, SOFTMAX_10]
    result = infer(project(blocks, input_shape=(3, 32, 32)))
    (warning,) = result.warnings
    assert warning.block == 2 and warning.field == "units"
    assert warning.message.startswith("block 3 (dense): 2,097,184 parameters in one block (65,536 inputs x 32 units)")
    small = infer(project([{"kind": "flatten"}, {"kind": "dense", "units": 2000}, SOFTMAX_10],
                          input_shape=(1, 28, 28)))
    assert small.warnings == []  # 1.57M parameters, but straight from the pixels, not after a convolution


def test_softmax_with_squared_error_warns():
    result = infer(project(TAIL, training=TrainingSettings(loss="squared_error")))
    assert result.ok
    (warning,) = result.warnings
    assert "softmax is usually trained with cross_entropy, not squared_error" in warning.message
    assert (warning.block, warning.field) == (1, "activation")


def test_sigmoid_with_squared_error_on_many_classes_warns():
    blocks = [{"kind": "flatten"}, {"kind": "dense", "units": 10, "activation": "sigmoid"}]
    result = infer(project(blocks, training=TrainingSettings(loss="squared_error")))
    assert result.ok
    (warning,) = result.warnings
    assert "sigmoid outputs with squared_error on 10 classes" in warning.message
    two = infer(project([{"kind": "flatten"}, {"kind": "dense", "units": 2, "activation": "sigmoid"}],
                        num_classes=2, training=TrainingSettings(loss="squared_error")))
    assert two.problems == ()


def test_same_padding_kernel_larger_than_input_warns():
    result = infer(project([{"kind": "conv", "kernel_size": 9, "padding": "same"}] + TAIL, input_shape=(1, 4, 4)))
    assert result.ok
    assert "kernel 9x9 is larger than its 4x4 input, so most of each window is padding" in result.warnings[0].message


def test_validate_returns_inference_with_warnings():
    result = validate(project(TAIL, training=TrainingSettings(loss="squared_error")))
    assert result.ok and len(result.warnings) == 1


# -- never raises -------------------------------------------------------------------------------

_VALUES = (st.integers(-2, 30) | st.sampled_from(["same", "valid", "relu", "softmax", "sigmoid", "max", "sum", "",
                                                  "a b", "conv", "x"])
           | st.lists(st.integers(-1, 5), max_size=3) | st.floats(allow_nan=True) | st.none() | st.booleans()
           | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
_FIELDS = st.sampled_from(["kind", "filters", "kernel_size", "stride", "padding", "activation", "mode", "size",
                           "units", "rate", "name", "other"])
_KINDS = st.sampled_from(["conv", "pool", "dense", "flatten", "activation", "dropout", "bogus"])


@settings(max_examples=300, deadline=None)
@given(blocks=st.lists(st.tuples(_KINDS, st.dictionaries(_FIELDS, _VALUES, max_size=4)), max_size=8),
       input_shape=st.tuples(st.integers(-1, 12), st.integers(-1, 12), st.integers(-1, 12)),
       num_classes=st.none() | st.integers(-1, 12),
       loss=st.sampled_from(["cross_entropy", "squared_error", "binary_cross_entropy", "hinge"]))
def test_infer_never_raises_for_loadable_projects(blocks, input_shape, num_classes, loss):
    data = {"format": 1, "input_shape": list(input_shape), "num_classes": num_classes,
            "blocks": [{"kind": kind, **fields} for kind, fields in blocks], "training": {"loss": loss}}
    try:
        p = parse_project(json.dumps(data))
    except ProjectError:
        return
    result = infer(p)
    assert len(result.blocks) == len(p.blocks)
    for problem in result.problems:
        assert problem.message and problem.severity in (ERROR, WARNING, NOTE)
        assert problem.block is None or problem.message.startswith(f"block {problem.block + 1}")
    if result.ok:
        assert result.output_shape is not None and all(v >= 1 for v in result.output_shape)
