"""Sliding windows, shared by the kinds that have them (conv, pool): padding, output size, the
problems of a window that does not fit, and the formula the inspector shows."""
from __future__ import annotations

from typing import Any

from netbuilder.core.blocks.base import Pads, Shape, ShapeContext
from netbuilder.core.geometry import as_pair, output_size, resolve_padding


def fmt_pair(p) -> str:
    return f"{p[0]}x{p[1]}"


def fmt_pads(pads: Pads) -> str:
    t, b, l, r = pads
    if t == b and l == r:
        return str(t) if t == l else f"{t}x{l}"
    return f"{t},{b},{l},{r} (top, bottom, left, right)"


def slide(ctx: ShapeContext, what: str, size_field: str, kernel, stride, padding,
          pad_limit: str) -> tuple[Pads, int, int] | None:
    """(pads, out height, out width) of a window over ``ctx.input_shape``, or None after saying why
    it cannot work. ``pad_limit`` is "kernel" (padding below the kernel: conv) or "half" (at most
    half the window: pooling)."""
    _, h, w = ctx.input_shape
    kh, kw = kernel
    sh, sw = stride
    if padding == "valid":
        pads = (0, 0, 0, 0)
    elif padding == "same":
        oh, ow = -(-h // sh), -(-w // sw)
        th, tw = max((oh - 1) * sh + kh - h, 0), max((ow - 1) * sw + kw - w, 0)
        pads = (th // 2, th - th // 2, tw // 2, tw - tw // 2)
    else:
        ph, pw = padding
        pads = (ph, ph, pw, pw)
        if pad_limit == "kernel" and (ph >= kh or pw >= kw):
            ctx.problem(f"padding {fmt_pads(pads)} is not smaller than the {fmt_pair(kernel)} kernel, so border "
                        f"outputs would see only zeros; use at most {kh - 1}" + ("" if kh == kw else f"x{kw - 1}"),
                        "padding")
            return None
        if pad_limit == "half" and (2 * ph > kh or 2 * pw > kw):
            ctx.problem(f"padding {fmt_pads(pads)} is more than half the {fmt_pair(kernel)} window; use at most "
                        f"{kh // 2}" + ("" if kh == kw else f"x{kw // 2}"), "padding")
            return None
    hp, wp = h + pads[0] + pads[1], w + pads[2] + pads[3]
    if kh > hp or kw > wp:
        fix = "use padding 'same' or a smaller kernel" if pad_limit == "kernel" else \
            "use a smaller window or remove this block"
        ctx.problem(f"{what} {fmt_pair(kernel)} is larger than its {h}x{w} input with padding {fmt_pads(pads)}; "
                    f"{fix}", size_field)
        return None
    if padding == "same" and (kh > h or kw > w):
        ctx.problem(f"{what} {fmt_pair(kernel)} is larger than its {h}x{w} input, so most of each window is "
                    f"padding; a smaller {what} does the same work with fewer weights", size_field, "warning")
    if sh > kh or sw > kw:
        ctx.problem(f"stride {fmt_pair(stride)} is larger than the {fmt_pair(kernel)} {what}, so some pixels are "
                    "never looked at", "stride", "warning")
    return pads, (hp - kh) // sh + 1, (wp - kw) // sw + 1


def positive_pair(value: Any, minimum: int) -> tuple[int, int] | None:
    try:
        pair = as_pair(value)
    except (TypeError, ValueError):
        return None
    return pair if min(pair) >= minimum else None


def window_lines(kernel_value, stride_value, padding, input_shape: Shape) -> list[str]:
    """The output-size formula of a window, one line (or one per axis) plus the pads 'same' chose."""
    if len(input_shape) != 3:
        return []
    kernel = positive_pair(kernel_value, 1)
    stride = positive_pair(stride_value, 1)
    if kernel is None or stride is None:
        return []
    if padding not in ("valid", "same") and positive_pair(padding, 0) is None:
        return []
    in_hw = (input_shape[1], input_shape[2])
    pads = resolve_padding(padding, in_hw, kernel, stride)
    axes = [_axis_formula(in_hw[a], kernel[a], stride[a], pads[2 * a], pads[2 * a + 1]) for a in (0, 1)]
    lines = [f"out = {axes[0]}"] if axes[0] == axes[1] else [f"height: out = {axes[0]}", f"width: out = {axes[1]}"]
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


def _same_pads(pads: Pads) -> str:
    top, bottom, left, right = pads
    if top == bottom == left == right:
        return f"'same' padding adds {top} px on every side"
    return f"'same' padding adds {top} top, {bottom} bottom, {left} left, {right} right"


def onnx_pads(pads: Pads) -> list[int]:
    top, bottom, left, right = pads
    return [top, left, bottom, right]  # ONNX: all begins (H, W), then all ends


def torch_padding(pads: Pads, fill: str = "") -> tuple[str, str | None]:
    """(", padding=(t, l)" for a layer that pads symmetrically, or "", and a forward line that
    pads asymmetrically first or None): torch layers pad symmetrically, 'same' may not."""
    t, b, l, r = pads
    if t == b and l == r:
        return (f", padding=({t}, {l})" if t or l else ""), None
    return "", f"x = F.pad(x, ({l}, {r}, {t}, {b}){fill})  # left, right, top, bottom"


def pair_shape(value) -> str:
    p = as_pair(value)
    return f"{p[0]}x{p[1]}"


def stride_text(value: Any) -> str:
    if isinstance(value, (list, tuple)) and len(value) == 2 and value[0] == value[1]:
        value = value[0]
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else _pair_or_raw(value)


def padding_text(value: Any) -> str:
    if value in ("valid", "same"):
        return value
    if value == 0 or value == [0, 0] or value == (0, 0):
        return "valid"
    return f"pad {stride_text(value)}"


def _pair_or_raw(value: Any) -> str:
    """3 -> "3x3", [3, 5] -> "3x5"; anything else as written (the block may be invalid)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value}x{value}"
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return f"{value[0]}x{value[1]}"
    return str(value)


def size_text(value: Any) -> str:
    """A kernel or window size as the summary writes it: "5x5"."""
    return _pair_or_raw(value)
