"""Flatten: the feature maps laid out as one long vector, for dense blocks."""
from __future__ import annotations

from netbuilder.core.blocks.base import BlockKind, PaletteEntry, Shaped


class Flatten(BlockKind):
    kind = "flatten"
    position = 60
    label = "Flatten"
    help = "lays the feature maps out as one long vector for dense blocks"
    palette = (PaletteEntry("flatten", "Flatten", "maps → one vector",
                            "Lays the feature maps out as one long vector for dense blocks."),)
    accent = "#a9803e"  # ochre
    aliases = ("reshape",)

    def shape(self, ctx) -> Shaped:
        c = ctx.input_shape
        if len(c) != 3:
            return Shaped(c)
        ctx.pipeline.from_spatial = True
        return Shaped((c[0] * c[1] * c[2],))

    def output_formula(self, block, input_shape):
        if len(input_shape) != 3:
            return []
        c, h, w = input_shape
        return [f"out = {c}·{h}·{w} = {c * h * w:,}"]

    def layers(self, info, rng, dtype, path):
        from netbuilder.core.layers import Flatten as FlattenLayer

        return [FlattenLayer()], None

    def onnx(self, graph, stage):
        graph.op("Flatten", [graph.x], stage.path + "_out", stage.path, axis=1)

    def torch(self, stage, final_activation=True):
        return "nn.Flatten()", ["x = {m}(x)"]

    def numpy(self, stage):
        return {}

    numpy_step = '''
def step_flatten(x, layer, weights):
    return x.reshape(len(x), -1)
'''
