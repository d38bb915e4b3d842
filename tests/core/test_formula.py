"""The written-out output-size and parameter formulas agree with the geometry and with shape inference."""
from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netbuilder.core.formula import output_size_formula, params_formula
from netbuilder.core.geometry import as_pair, output_hw, resolve_padding
from netbuilder.core.inference import infer
from netbuilder.core.project import Project


def _evaluate(line: str) -> tuple[int, int]:
    """(value of the left-hand expression, the number after the last "=") of a formula line."""
    expr, result = line.split("=", 1)[1].rsplit("=", 1)
    value = eval(expr.replace("·", "*").replace(",", ""), {"floor": math.floor, "__builtins__": {}})
    return value, int(result.replace(",", ""))


def _window_outputs(lines: list[str]) -> tuple[int, int]:
    """(height, width) read from the formula lines, after checking each line's arithmetic."""
    formulas = [ln for ln in lines if "floor" in ln]
    results = []
    for ln in formulas:
        value, result = _evaluate(ln)
        assert value == result, ln
        results.append(result)
    if len(formulas) == 1:
        assert formulas[0].startswith("out = ")
        return results[0], results[0]
    assert [ln.split(":")[0] for ln in formulas] == ["height", "width"]
    return results[0], results[1]


def test_lenet_first_conv_reads_like_the_textbook():
    block = {"kind": "conv", "filters": 6, "kernel_size": 5, "padding": "same"}
    assert output_size_formula(block, (1, 28, 28)) == [
        "out = floor((28 - 5 + 2·2) / 1) + 1 = 28",
        "'same' padding adds 2 px on every side",
    ]
    assert params_formula(block, (1, 28, 28)) == "params = 6·1·5·5 + 6 = 156"


def test_valid_padding_omits_the_zero_pads_and_pool_stride_defaults_to_size():
    assert output_size_formula({"kind": "conv", "kernel_size": 5}, (6, 14, 14)) == [
        "out = floor((14 - 5) / 1) + 1 = 10"]
    assert output_size_formula({"kind": "pool"}, (6, 28, 28)) == ["out = floor((28 - 2) / 2) + 1 = 14"]


def test_different_axes_get_one_line_each_and_odd_same_pads_are_listed():
    lines = output_size_formula({"kind": "conv", "kernel_size": [4, 3], "stride": 2, "padding": "same"},
                                (3, 9, 12))
    assert lines == [
        "height: out = floor((9 - 4 + 1 + 2) / 2) + 1 = 5",
        "width: out = floor((12 - 3 + 0 + 1) / 2) + 1 = 6",
        "'same' padding adds 1 top, 2 bottom, 0 left, 1 right",
    ]


def test_a_window_that_does_not_fit_still_shows_why():
    lines = output_size_formula({"kind": "conv", "kernel_size": 7}, (1, 5, 5))
    assert lines == ["out = floor((5 - 7) / 1) + 1 = -1"]


def test_flatten_and_dense_show_their_products():
    assert output_size_formula({"kind": "flatten"}, (16, 5, 5)) == ["out = 16·5·5 = 400"]
    assert output_size_formula({"kind": "dense", "units": 120}, (16, 5, 5)) == [
        "in = 16·5·5 = 400 (flattened first)"]
    assert output_size_formula({"kind": "dense", "units": 120}, (400,)) == []
    assert params_formula({"kind": "dense", "units": 120}, (400,)) == "params = 400·120 + 120 = 48,120"


@pytest.mark.parametrize("block, shape", [
    ({"kind": "conv", "kernel_size": "abc"}, (1, 28, 28)),
    ({"kind": "conv", "kernel_size": 0}, (1, 28, 28)),
    ({"kind": "conv", "stride": [1, 2, 3]}, (1, 28, 28)),
    ({"kind": "conv", "padding": "half"}, (1, 28, 28)),
    ({"kind": "conv", "padding": -1}, (1, 28, 28)),
    ({"kind": "pool", "stride": True}, (1, 28, 28)),
    ({"kind": "conv"}, (784,)),
    ({"kind": "conv"}, None),
    ({"kind": "conv"}, (1, "28", 28)),
    ({"kind": "warp"}, (1, 28, 28)),
    ("conv", (1, 28, 28)),
    ({"kind": "activation"}, (1, 28, 28)),
])
def test_unusable_settings_give_no_lines(block, shape):
    assert output_size_formula(block, shape) == []


@pytest.mark.parametrize("block, shape", [
    ({"kind": "conv", "filters": "six"}, (1, 28, 28)),
    ({"kind": "conv", "kernel_size": "abc"}, (1, 28, 28)),
    ({"kind": "dense", "units": 0}, (10,)),
    ({"kind": "pool"}, (1, 28, 28)),
    ({"kind": "conv"}, None),
])
def test_params_formula_none_when_not_computable(block, shape):
    assert params_formula(block, shape) is None


_sizes = st.integers(1, 12)
_pair = st.one_of(_sizes, st.lists(_sizes, min_size=2, max_size=2))
_padding = st.one_of(st.sampled_from(["valid", "same"]), st.integers(0, 4),
                     st.lists(st.integers(0, 4), min_size=2, max_size=2))


@given(kind=st.sampled_from(["conv", "pool"]), kernel=_pair, stride=_pair, padding=_padding,
       h=st.integers(1, 40), w=st.integers(1, 40))
def test_window_formula_matches_geometry(kind, kernel, stride, padding, h, w):
    field = "kernel_size" if kind == "conv" else "size"
    block = {"kind": kind, field: kernel, "stride": stride, "padding": padding}
    lines = output_size_formula(block, (3, h, w))
    k, s = as_pair(kernel), as_pair(stride)
    pads = resolve_padding(padding, (h, w), k, s)
    assert _window_outputs(lines) == output_hw((h, w), k, s, pads)
    assert any("'same' padding" in ln for ln in lines) == (padding == "same")


def test_formulas_agree_with_inference_on_every_lenet_block():
    project = Project(input_shape=(1, 28, 28), blocks=[
        {"kind": "conv", "filters": 6, "kernel_size": 5, "padding": "same"},
        {"kind": "pool"},
        {"kind": "conv", "filters": 16, "kernel_size": [5, 3], "stride": [1, 2]},
        {"kind": "pool", "size": 2, "stride": 1, "padding": 1},
        {"kind": "dense", "units": 120},
        {"kind": "dense", "units": 10, "activation": "softmax"},
    ])
    result = infer(project)
    assert result.ok, result.problems
    for info in result.blocks:
        lines = output_size_formula(info)
        if info.kind in ("conv", "pool"):
            assert _window_outputs(lines) == info.output_shape[1:]
        text = params_formula(info)
        if info.params:
            value, total = _evaluate(text)
            assert value == total == info.params
        else:
            assert text is None
    assert output_size_formula(result.blocks[4]) == [f"in = 16·{result.blocks[3].output_shape[1]}·"
                                                    f"{result.blocks[3].output_shape[2]} = "
                                                    f"{result.blocks[4].geometry.in_features:,} (flattened first)"]

