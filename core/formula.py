"""The arithmetic behind a block's output size and parameter count, written out with its numbers.

The inspector shows these lines so a learner sees *why* a shape is what it is, e.g.
``out = floor((28 - 5 + 2·2) / 1) + 1 = 28``. The numbers come from ``netbuilder.core.geometry``, the same
functions shape inference uses, so the text always agrees with the shapes on the cards. A window
that does not fit still gets its formula (with a result of 0 or less): that is the explanation of
the error. Invalid settings give no lines rather than raising.
"""
from __future__ import annotations

from typing import Any

from netbuilder.core.blocks import with_defaults
from netbuilder.core.geometry import as_pair, output_size, resolve_padding
from netbuilder.core.inference import BlockInfo

Shape = tuple[int, ...]


def output_size_formula(block: BlockInfo | dict, input_shape: Shape | None = None) -> list[str]:
    """Lines deriving the output size of ``block`` fed ``input_shape`` (C, H, W) or (n,).

    ``block`` is a block dict or a BlockInfo (whose own input shape is used when ``input_shape``
    is None). Conv and pool give one line, or one per axis when height and width differ, plus
    the pads "same" padding chose; flatten gives the product; other kinds give no lines.
    """
    block, input_shape = _unpack(block, input_shape)
    if block is None or not _is_shape(input_shape):
        return []
    kind = block["kind"]
    if kind in ("conv", "pool"):
        return _window_lines(block, input_shape)
    if kind == "flatten" and len(input_shape) == 3:
        return [f"out = {_dot(input_shape)} = {_num(_product(input_shape))}"]
    if kind == "dense" and len(input_shape) == 3:
        return [f"in = {_dot(input_shape)} = {_num(_product(input_shape))} (flattened first)"]
    return []


def params_formula(block: BlockInfo | dict, input_shape: Shape | None = None) -> str | None:
    """The parameter count written out, e.g. ``params = 16·6·5·5 + 16 = 2,416``; None if it has none.

    Conv: filters·channels·kh·kw weights + filters biases; dense: inputs·units + units.
    """
    block, input_shape = _unpack(block, input_shape)
    if block is None or not _is_shape(input_shape):
        return None
    kind = block["kind"]
    if kind == "conv" and len(input_shape) == 3:
        f = block["filters"]
        if not _is_int(f, 1):
            return None
        try:
            kh, kw = as_pair(block["kernel_size"])
        except (TypeError, ValueError):
            return None
        c = input_shape[0]
        return f"params = {f}·{c}·{kh}·{kw} + {f} = {_num(f * c * kh * kw + f)}"
    if kind == "dense":
        units = block["units"]
        if not _is_int(units, 1):
            return None
        n = _product(input_shape)
        return f"params = {_num(n)}·{units} + {units} = {_num(n * units + units)}"
    return None


# -- helpers ------------------------------------------------------------------------------------

def _unpack(block: Any, input_shape: Any) -> tuple[dict | None, Any]:
    """(block with defaults filled or None if unusable, input shape)."""
    if isinstance(block, BlockInfo):
        if input_shape is None:
            input_shape = block.input_shape
        block = block.block
    if not isinstance(block, dict) or not isinstance(block.get("kind"), str):
        return None, input_shape
    return with_defaults(block), input_shape


def _is_int(v: Any, minimum: int) -> bool:
    return type(v) is int and v >= minimum


def _is_shape(shape: Any) -> bool:
    return isinstance(shape, (tuple, list)) and len(shape) in (1, 3) and all(_is_int(v, 1) for v in shape)


def _product(shape: Shape) -> int:
    n = 1
    for v in shape:
        n *= v
    return n


def _dot(values) -> str:
    return "·".join(str(v) for v in values)


def _num(n: int) -> str:
    return f"{n:,}"


def _positive_pair(value: Any, minimum: int) -> tuple[int, int] | None:
    try:
        pair = as_pair(value)
    except (TypeError, ValueError):
        return None
    return pair if min(pair) >= minimum else None


def _window_lines(block: dict, input_shape: Shape) -> list[str]:
    if len(input_shape) != 3:
        return []
    size_field = "kernel_size" if block["kind"] == "conv" else "size"
    kernel = _positive_pair(block[size_field], 1)
    stride = kernel if block["kind"] == "pool" and block["stride"] is None else _positive_pair(block["stride"], 1)
    padding = block["padding"]
    if kernel is None or stride is None:
        return []
    if padding not in ("valid", "same") and _positive_pair(padding, 0) is None:
        return []
    in_hw = (input_shape[1], input_shape[2])
    pads = resolve_padding(padding, in_hw, kernel, stride)
    axes = [_axis_formula(in_hw[a], kernel[a], stride[a], pads[2 * a], pads[2 * a + 1]) for a in (0, 1)]
    if axes[0] == axes[1]:
        lines = [f"out = {axes[0]}"]
    else:
        lines = [f"height: out = {axes[0]}", f"width: out = {axes[1]}"]
    if padding == "same":
        lines.append(_same_pads(pads))
    return lines


def _axis_formula(size: int, kernel: int, stride: int, before: int, after: int) -> str:
    """``floor((size - kernel + pads) / stride) + 1 = out`` for one axis."""
    if before == after:
        pad = f" + 2·{before}" if before else ""
    else:
        pad = f" + {before} + {after}"
    return f"floor(({size} - {kernel}{pad}) / {stride}) + 1 = {output_size(size, kernel, stride, before, after)}"


def _same_pads(pads: tuple[int, int, int, int]) -> str:
    top, bottom, left, right = pads
    if top == bottom == left == right:
        return f"'same' padding adds {top} px on every side"
    return f"'same' padding adds {top} top, {bottom} bottom, {left} left, {right} right"
