"""Dropout: while training, each value is zeroed with probability ``rate``; the identity at inference."""
from __future__ import annotations

from netbuilder.core.blocks.base import BlockKind, Field, PaletteEntry


class Dropout(BlockKind):
    kind = "dropout"
    position = 80
    label = "Dropout"
    help = "while training, zeroes each value with probability `rate` to fight overfitting"
    fields = (Field("rate", "float", 0.5, "probability of dropping a value", minimum=0.0, maximum=0.95),)
    palette = (PaletteEntry("dropout", "Dropout", "drops values in training",
                            "While training, zeroes each value with probability rate to fight overfitting."),)
    accent = "#6f7f8c"  # slate grey
    aliases = ("dropout2d",)

    def describe(self, b: dict) -> str:
        return f"dropout {b['rate']}"

    def layers(self, info, rng, dtype, path):
        from netbuilder.core.layers import Dropout as DropoutLayer

        return [DropoutLayer(info.block["rate"], rng=rng)], None

    def onnx(self, graph, stage):
        return  # the identity at inference

    def torch(self, stage, final_activation=True):
        return f"nn.Dropout({float(stage.info.block['rate'])!r})", ["x = {m}(x)  # the identity in eval mode"]

    def numpy(self, stage):
        return None  # the identity at inference
