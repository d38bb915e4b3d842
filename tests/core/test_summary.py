"""The text summary table and the short block descriptions the GUI cards reuse."""
from __future__ import annotations

import pytest

from netbuilder.core.inference import infer
from netbuilder.core.project import Project, TrainingSettings
from netbuilder.core.summary import format_shape, format_summary, short_settings

LENET = [
    {"kind": "conv", "filters": 6, "kernel_size": 5, "padding": "same"},
    {"kind": "pool"},
    {"kind": "conv", "filters": 16, "kernel_size": 5},
    {"kind": "pool"},
    {"kind": "flatten"},
    {"kind": "dense", "units": 120},
    {"kind": "dense", "units": 84},
    {"kind": "dense", "units": 10, "activation": "softmax"},
]


@pytest.mark.parametrize("shape, text", [((6, 28, 28), "6 x 28 x 28"), ((10,), "10"), (None, "?"), ((), "")])
def test_format_shape(shape, text):
    assert format_shape(shape) == text


@pytest.mark.parametrize("block, text", [
    ({"kind": "conv", "filters": 6, "kernel_size": 5, "padding": "same"}, "conv 6 @ 5x5 · stride 1 · same · relu"),
    ({"kind": "conv", "filters": 3, "kernel_size": [3, 5], "stride": [2, 2], "padding": 1, "activation": "tanh"},
     "conv 3 @ 3x5 · stride 2 · pad 1 · tanh"),
    ({"kind": "conv", "stride": [1, 2], "padding": [0, 1]}, "conv 8 @ 3x3 · stride 1x2 · pad 0x1 · relu"),
    ({"kind": "conv", "padding": 0}, "conv 8 @ 3x3 · stride 1 · valid · relu"),
    ({"kind": "pool"}, "max pool 2x2 · stride 2"),
    ({"kind": "pool", "mode": "average", "size": 3, "stride": 2, "padding": 1}, "average pool 3x3 · stride 2 · pad 1"),
    ({"kind": "dense", "units": 120}, "dense 120 · relu"),
    ({"kind": "flatten"}, "flatten"),
    ({"kind": "activation", "activation": "softmax"}, "activation softmax"),
    ({"kind": "dropout", "rate": 0.3}, "dropout 0.3"),
    ({"kind": "warp"}, "unknown kind 'warp'"),
    ({"kind": "conv", "filters": "six", "kernel_size": [1, 2, 3]}, "conv six @ [1, 2, 3] · stride 1 · valid · relu"),
])
def test_short_settings(block, text):
    assert short_settings(block) == text


def test_summary_of_lenet():
    project = Project(name="LeNet-5", blocks=LENET)
    text = format_summary(project)
    lines = text.splitlines()
    assert lines[0] == "LeNet-5: input 1 x 28 x 28 · 10 classes"
    assert lines[2].split() == ["#", "block", "output", "shape", "params", "MACs"]
    row = next(line for line in lines if line.lstrip().startswith("1 "))
    assert row.split() == ["1", "conv1", "conv", "6", "@", "5x5", "·", "stride", "1", "·", "same", "·", "relu",
                           "6", "x", "28", "x", "28", "156", "117,600"]
    assert any(line.split()[:2] == ["6", "dense1"] and line.split()[-2:] == ["48,120", "48,000"] for line in lines)
    assert "Total params: 61,706" in lines
    assert "Total MACs per sample: 416,520" in lines
    assert "Activation memory per sample: 33.2 KB (float32)" in lines
    assert "Errors:" not in text and "Warnings:" not in text
    assert text.endswith("\n")
    assert format_summary(project, infer(project)) == text


def test_summary_lists_errors_warnings_and_notes():
    blocks = [{"kind": "conv", "kernel_size": 2, "stride": 3}, {"kind": "dense", "units": 10},
              {"kind": "dropout", "rate": 2.0}]
    text = format_summary(Project(name="bad", blocks=blocks, training=TrainingSettings(loss="squared_error")))
    assert "Errors:\n  - block 3 (dropout): rate must be a number from 0 to 0.95, got 2.0" in text
    assert "Warnings:\n  - block 1 (conv): stride 3x3 is larger than the 2x2 kernel" in text
    assert "Notes:\n  - block 2 (dense): its input 8 x 9 x 9 is flattened" in text
    row = next(line for line in text.splitlines() if line.startswith("3 "))
    assert row.split()[-3:] == ["?", "?", "?"]


def test_summary_of_binary_output_and_unknown_class_count():
    blocks = [{"kind": "flatten"}, {"kind": "dense", "units": 1, "activation": "sigmoid"}]
    p = Project(name="b", input_shape=(2, 1, 1), num_classes=1, blocks=blocks,
                training=TrainingSettings(loss="binary_cross_entropy"))
    assert format_summary(p).splitlines()[0] == "b: input 2 x 1 x 1 · 1 class (one binary output)"
    p.num_classes = None
    assert format_summary(p).splitlines()[0] == "b: input 2 x 1 x 1"
