"""Global pooling: each feature map becomes one value, its mean or its largest, as modern CNNs end.

The output is C x 1 x 1, so a dense block can follow without a flatten and without the huge weight
matrix a flattened feature map would need.
"""
from __future__ import annotations

from netbuilder.core.blocks.base import BlockKind, Field, PaletteEntry, Shaped

MODES = ("average", "max")


class GlobalPool(BlockKind):
    kind = "global_pool"
    position = 25
    label = "Global pooling"
    help = "reduces each feature map to one value, its mean (average) or its largest (max)"
    fields = (Field("mode", "choice", "average", "how a whole feature map is reduced to one value", choices=MODES),)
    palette = (PaletteEntry("global_pool", "Global pooling", "each map → one value",
                            "Reduces each feature map to one value, its mean or its largest, so a dense block can "
                            "follow with few weights."),)
    accent = "#9c5579"  # plum
    aliases = ("globalaveragepool", "globalmaxpool", "global_average_pooling", "gap", "adaptiveavgpool2d")

    def describe(self, b: dict) -> str:
        return f"global {b['mode']} pool"

    def icon(self, block: dict) -> str:
        return "global_pool"

    def shape(self, ctx) -> Shaped:
        if not ctx.needs_image():
            return Shaped(None)
        return Shaped((ctx.input_shape[0], 1, 1))

    def output_formula(self, block, input_shape):
        if len(input_shape) != 3:
            return []
        c, h, w = input_shape
        return [f"out = {c}·1·1: each {h}x{w} map becomes its {'mean' if block['mode'] == 'average' else 'largest'}"]

    def layers(self, info, rng, dtype, path):
        from netbuilder.core.layers.global_pool import GlobalPool as GlobalPoolLayer

        return [GlobalPoolLayer("avg" if info.block["mode"] == "average" else "max", dtype=dtype)], None

    def onnx(self, graph, stage):
        op = "GlobalAveragePool" if stage.info.block["mode"] == "average" else "GlobalMaxPool"
        graph.op(op, [graph.x], stage.path + "_out", stage.path)

    def torch(self, stage, final_activation=True):
        module = "nn.AdaptiveAvgPool2d(1)" if stage.info.block["mode"] == "average" else "nn.AdaptiveMaxPool2d(1)"
        return module, ["x = {m}(x)"]

    def numpy(self, stage):
        return {"mode": stage.info.block["mode"]}

    numpy_step = '''
def step_global_pool(x, layer, weights):
    """Each feature map to one value: (N, C, H, W) -> (N, C, 1, 1)."""
    if layer["mode"] == "max":
        return x.max(axis=(2, 3), keepdims=True)
    return x.mean(axis=(2, 3), keepdims=True, dtype=x.dtype)
'''
