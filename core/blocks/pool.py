"""Pooling: each window of a feature map becomes one value, its largest (max), mean or total."""
from __future__ import annotations

from netbuilder.core.blocks.base import PADDING_MODES, BlockKind, Field, Geometry, PaletteEntry, Shaped, pair_text
from netbuilder.core.blocks.window import (
    onnx_pads,
    padding_text,
    size_text,
    slide,
    stride_text,
    torch_padding,
    window_lines,
)

MODES = ("max", "average", "sum")
_HALVES = "halving width and height with size 2 and stride 2"


class Pool(BlockKind):
    kind = "pool"
    position = 20
    label = "Pooling"
    help = f"keeps the largest (max), mean (average) or total (sum) value of each window, {_HALVES}"
    fields = (
        Field("mode", "choice", "max", "how a window is reduced to one value", choices=MODES),
        Field("size", "pair", 2, "height and width of each window", minimum=1),
        Field("stride", "optional_pair", None, "step between windows (empty: same as size)", minimum=1),
        Field("padding", "padding", 0, "pixels added around the input (at most half the window)",
              choices=PADDING_MODES, minimum=0),
    )
    palette = (
        PaletteEntry("pool", "Max pooling", "largest of each window",
                     f"Keeps the largest value of each window, {_HALVES}.", (("mode", "max"),)),
        PaletteEntry("pool", "Average pooling", "mean of each window",
                     f"Keeps the mean of each window, {_HALVES}.", (("mode", "average"),)),
        PaletteEntry("pool", "Sum pooling", "total of each window",
                     f"Adds up each window, {_HALVES}.", (("mode", "sum"),)),
    )
    accent = "#2f9384"  # teal
    shows_maps = True
    aliases = ("pooling", "maxpool", "max_pool", "maxpool2d", "avgpool", "avg_pool", "averagepool")

    def describe(self, b: dict) -> str:
        stride = b["stride"] if b["stride"] is not None else b["size"]
        text = f"{b['mode']} pool {size_text(b['size'])} · stride {stride_text(stride)}"
        return text if padding_text(b["padding"]) == "valid" else f"{text} · {padding_text(b['padding'])}"

    def icon(self, block: dict) -> str:
        mode = block.get("mode", "max")
        return f"pool_{mode}" if mode in MODES else "pool_max"

    def shape(self, ctx) -> Shaped:
        if not ctx.needs_image():
            return Shaped(None)
        size = ctx.values["size"]
        stride = ctx.values["stride"] or size
        win = slide(ctx, "window", "size", size, stride, ctx.values["padding"], "half")
        if win is None:
            return Shaped(None)
        pads, ho, wo = win
        return Shaped((ctx.input_shape[0], ho, wo), 0, 0, 0, Geometry(size, stride, pads))

    def output_formula(self, block, input_shape):
        stride = block["size"] if block["stride"] is None else block["stride"]
        return window_lines(block["size"], stride, block["padding"], input_shape)

    def layers(self, info, rng, dtype, path):
        from netbuilder.core.layers import Pool2D

        g = info.geometry
        return [Pool2D(info.block["mode"], g.kernel, g.stride, g.pads, dtype=dtype)], None

    def onnx(self, graph, stage):
        name, g, mode = stage.path, stage.info.geometry, stage.info.block["mode"]
        window = dict(kernel_shape=list(g.kernel), strides=list(g.stride), pads=onnx_pads(g.pads))
        if mode == "max":  # padding never wins, as -inf
            graph.op("MaxPool", [graph.x], name + "_out", name, **window)
            return
        pooled = name + ("_out" if mode == "average" else "_mean")
        graph.op("AveragePool", [graph.x], pooled, name, count_include_pad=1, **window)
        if mode == "sum":  # the mean times the window area
            area = graph.const(f"{name}.area", g.kernel[0] * g.kernel[1])
            graph.op("Mul", [graph.x, area], name + "_out", name + "_sum")

    def torch(self, stage, final_activation=True):
        g, mode = stage.info.geometry, stage.info.block["mode"]
        padding, pad_line = torch_padding(g.pads, ", value=float(\"-inf\")" if mode == "max" else "")
        window = f"kernel_size={pair_text(g.kernel)}, stride={pair_text(g.stride)}{padding}"
        if mode == "max":
            module = f"nn.MaxPool2d({window})"
        elif mode == "average":  # padded zeros count, as in the app
            module = f"nn.AvgPool2d({window}, count_include_pad=True)"
        else:  # sum pooling: the window total, i.e. an average without the division
            module = f"nn.AvgPool2d({window}, count_include_pad=True, divisor_override=1)"
        return module, ([pad_line] if pad_line else []) + ["x = {m}(x)"]

    def numpy(self, stage):
        g = stage.info.geometry
        return {"mode": stage.info.block["mode"], "kernel": tuple(g.kernel), "stride": tuple(g.stride),
                "pads": tuple(g.pads)}

    numpy_step = '''
def step_pool(x, layer, weights):
    """max (padding never wins), average (padded zeros count) or sum over each window."""
    mode = layer["mode"]
    views = windows(pad(x, layer["pads"], -np.inf if mode == "max" else 0.0), layer["kernel"], layer["stride"])
    out = views[0].copy()
    for v in views[1:]:
        if mode == "max":
            np.maximum(out, v, out=out)
        else:
            out += v
    if mode == "average":
        out *= out.dtype.type(1.0 / len(views))
    return out
'''
