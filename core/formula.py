"""The arithmetic behind a block's output size and parameter count, written out with its numbers.

The inspector shows these lines so a learner sees *why* a shape is what it is, e.g.
``out = floor((28 - 5 + 2·2) / 1) + 1 = 28``. The numbers come from ``netbuilder.core.geometry``, the same
functions shape inference uses, so the text always agrees with the shapes on the cards. A window
that does not fit still gets its formula (with a result of 0 or less): that is the explanation of
the error. Invalid settings give no lines rather than raising.
"""
from __future__ import annotations

from typing import Any

from netbuilder.core.blocks import KINDS, with_defaults
from netbuilder.core.inference import BlockInfo

Shape = tuple[int, ...]


def output_size_formula(block: BlockInfo | dict, input_shape: Shape | None = None) -> list[str]:
    """Lines deriving the output size of ``block`` fed ``input_shape`` (C, H, W) or (n,).

    ``block`` is a block dict or a BlockInfo (whose own input shape is used when ``input_shape``
    is None). Conv and pool give one line, or one per axis when height and width differ, plus
    the pads "same" padding chose; flatten gives the product; kinds without arithmetic give none.
    """
    if isinstance(block, BlockInfo) and block.children and block.kind in KINDS:
        return KINDS[block.kind].group_lines(block)  # a group: how its inner blocks make its output
    block, input_shape = _unpack(block, input_shape)
    if block is None or not _is_shape(input_shape):
        return []
    return KINDS[block["kind"]].output_formula(block, tuple(input_shape))


def params_formula(block: BlockInfo | dict, input_shape: Shape | None = None) -> str | None:
    """The parameter count written out, e.g. ``params = 16·6·5·5 + 16 = 2,416``; None if it has none.

    Conv: filters·channels·kh·kw weights + filters biases; dense: inputs·units + units.
    """
    block, input_shape = _unpack(block, input_shape)
    if block is None or not _is_shape(input_shape):
        return None
    return KINDS[block["kind"]].params_formula(block, tuple(input_shape))


# -- helpers ------------------------------------------------------------------------------------

def _unpack(block: Any, input_shape: Any) -> tuple[dict | None, Any]:
    """(block with defaults filled or None if unusable, input shape)."""
    if isinstance(block, BlockInfo):
        if input_shape is None:
            input_shape = block.input_shape
        block = block.block
    if not isinstance(block, dict) or block.get("kind") not in KINDS:
        return None, input_shape
    return with_defaults(block), input_shape


def _is_int(v: Any, minimum: int) -> bool:
    return type(v) is int and v >= minimum


def _is_shape(shape: Any) -> bool:
    return isinstance(shape, (tuple, list)) and len(shape) in (1, 3) and all(_is_int(v, 1) for v in shape)
