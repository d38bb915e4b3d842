"""Window arithmetic shared by shape inference and the layers: padding and output sizes.

A padding spec is "valid", "same", an int, or a (height, width) pair. "same" follows
TensorFlow/ONNX SAME_UPPER: the output is ceil(in / stride) and any odd pixel of padding goes
to the bottom/right.
"""
from __future__ import annotations

import math
from typing import Any

Pair = tuple[int, int]
Pads = tuple[int, int, int, int]  # top, bottom, left, right


def as_pair(value: Any) -> Pair:
    """An int or a 2-sequence of ints as (height, width); raises TypeError/ValueError otherwise."""
    if isinstance(value, bool):
        raise TypeError("expected an integer or a pair of integers")
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        return (int(value[0]), int(value[1]))
    raise TypeError("expected an integer or a pair of integers")


def resolve_padding(padding: Any, in_hw: Pair, kernel: Pair, stride: Pair) -> Pads:
    """Explicit (top, bottom, left, right) zero padding for a padding spec."""
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        pads = []
        for size, k, s in zip(in_hw, kernel, stride):
            out = -(-size // s)
            total = max((out - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return (pads[0], pads[1], pads[2], pads[3])
    ph, pw = as_pair(padding)
    return (ph, ph, pw, pw)


def output_size(size: int, kernel: int, stride: int, pad_before: int, pad_after: int) -> int:
    """floor((size + pads - kernel) / stride) + 1; <= 0 when the window does not fit."""
    return math.floor((size + pad_before + pad_after - kernel) / stride) + 1


def output_hw(in_hw: Pair, kernel: Pair, stride: Pair, pads: Pads) -> Pair:
    return (
        output_size(in_hw[0], kernel[0], stride[0], pads[0], pads[1]),
        output_size(in_hw[1], kernel[1], stride[1], pads[2], pads[3]),
    )
