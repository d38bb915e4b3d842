"""Activation: a function applied to every value (relu, tanh, softmax...), as a block of its own."""
from __future__ import annotations

from netbuilder.core.blocks.base import ACTIVATION_FIELD, BlockKind, PaletteEntry


class Activation(BlockKind):
    kind = "activation"
    position = 70
    label = "Activation"
    help = "applies a function to every value: relu, leaky_relu, sigmoid, tanh, identity or softmax"
    fields = (ACTIVATION_FIELD,)
    palette = (PaletteEntry("activation", "Activation", "relu, tanh, softmax…",
                            "Applies a function to every value: relu, leaky_relu, sigmoid, tanh, identity or "
                            "softmax."),)
    accent = "#c0683f"  # terracotta
    aliases = ("relu", "sigmoid", "tanh", "softmax", "leaky_relu")

    def describe(self, b: dict) -> str:
        return f"activation {b['activation']}"

    def layers(self, info, rng, dtype, path):
        from netbuilder.core.layers import Activation as ActivationLayer

        return [ActivationLayer(info.block["activation"])], None

    def onnx(self, graph, stage):
        graph.activation(stage.path, stage.info.block["activation"], stage.path + "_out")

    def torch(self, stage, final_activation=True):
        from netbuilder.core.blocks.base import LEAKY_RELU_SLOPE

        act = stage.info.block["activation"]
        if not final_activation:
            return None, []
        return {"relu": "nn.ReLU()", "leaky_relu": f"nn.LeakyReLU({LEAKY_RELU_SLOPE!r})", "sigmoid": "nn.Sigmoid()",
                "tanh": "nn.Tanh()", "identity": "nn.Identity()", "softmax": "nn.Softmax(dim=1)"}[act], ["x = {m}(x)"]

    def numpy(self, stage):
        return {"activation": stage.info.block["activation"]}

    numpy_step = '''
def step_activation(x, layer, weights):
    return activation(x, layer["activation"])
'''
