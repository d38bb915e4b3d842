"""Dense (fully connected): every input value is connected to each of ``units`` outputs."""
from __future__ import annotations

from netbuilder.core.blocks.base import ACTIVATION_FIELD, BlockKind, Field, Geometry, PaletteEntry, Shaped, activated

WARN_PARAMS = 1_000_000  # a dense block after convolution with more parameters than this gets a warning


def _product(shape) -> int:
    n = 1
    for v in shape:
        n *= v
    return n


class Dense(BlockKind):
    kind = "dense"
    position = 50
    label = "Dense"
    help = "connects every input value to each of `units` outputs (a fully connected layer)"
    fields = (Field("units", "int", 64, "number of outputs", minimum=1), ACTIVATION_FIELD)
    palette = (PaletteEntry("dense", "Dense", "fully connected",
                            "Connects every input value to each of its outputs (a fully connected layer)."),)
    accent = "#8460b0"  # purple
    has_weights = True
    aliases = ("linear", "fc", "fully_connected", "fullyconnected")

    def describe(self, b: dict) -> str:
        return f"dense {b['units']} · {b['activation']}"

    def shape(self, ctx) -> Shaped:
        units, in_shape = ctx.values["units"], ctx.input_shape
        implicit = len(in_shape) == 3
        n_in = _product(in_shape)
        if implicit:
            ctx.pipeline.from_spatial = True
        if implicit and in_shape[1] * in_shape[2] > 1:  # C x 1 x 1 (after global pooling) is a vector already
            ctx.problem(f"its input {' x '.join(map(str, in_shape))} is flattened to {n_in:,} values first (as if "
                        "a flatten block came before it)", severity="note")
        params = n_in * units + units
        if ctx.pipeline.from_spatial and ctx.pipeline.conv_seen and params > WARN_PARAMS:
            ctx.problem(f"{params:,} parameters in one block ({n_in:,} inputs x {units} units); shrink the feature "
                        "maps first (pooling, a stride or fewer filters) to train faster and overfit less",
                        "units", "warning")
        ctx.pipeline.from_spatial = False
        return Shaped((units,), params=params, macs=n_in * units, geometry=Geometry(in_features=n_in),
                      implicit_flatten=implicit)

    def output_formula(self, block, input_shape):
        if len(input_shape) != 3:
            return []
        return [f"in = {'·'.join(map(str, input_shape))} = {_product(input_shape):,} (flattened first)"]

    def params_formula(self, block, input_shape):
        units = block["units"]
        if type(units) is not int or units < 1:
            return None
        n = _product(input_shape)
        return f"params = {n:,}·{units} + {units} = {n * units + units:,}"

    def weights_text(self, info):
        if info.geometry.in_features is None:
            return super().weights_text(info)
        return f"{info.block.get('units', 0):,} units of {info.geometry.in_features:,} inputs each", "units"

    def layers(self, info, rng, dtype, path):
        from netbuilder.core.init import scheme_for
        from netbuilder.core.layers import Activation, Flatten
        from netbuilder.core.layers import Dense as DenseLayer
        from netbuilder.core.layers.activation import fuse

        act = info.block["activation"]
        dense = DenseLayer(info.geometry.in_features, info.block["units"], rng=rng, dtype=dtype,
                           init=scheme_for(act))
        activation = Activation(act)
        fuse(dense, activation)  # relu / leaky relu: applied by the dense layer itself
        return ([Flatten()] if info.implicit_flatten else []) + [dense, activation], dense

    def onnx(self, graph, stage):
        info, params = stage.info, stage.param_layer.params
        name = stage.path
        if info.implicit_flatten:
            graph.op("Flatten", [graph.x], name + "_flat", name + "_flatten", axis=1)
        w = graph.const(f"{name}.weight", params["weight"])
        b = graph.const(f"{name}.bias", params["bias"])
        graph.op("Gemm", [graph.x, w, b], f"{name}_linear", name, transB=1)
        graph.activation(f"{name}_{info.block['activation']}", info.block["activation"], name + "_out")

    def torch(self, stage, final_activation=True):
        info = stage.info
        lines = ["x = torch.flatten(x, 1)"] if info.implicit_flatten else []
        return (f"nn.Linear({info.geometry.in_features}, {info.block['units']})",
                lines + [f"x = {activated('{m}(x)', info.block['activation'], final_activation)}"])

    def numpy(self, stage):
        return {"activation": stage.info.block["activation"], "flatten": bool(stage.info.implicit_flatten)}

    numpy_step = '''
def step_dense(x, layer, weights):
    if layer["flatten"]:
        x = x.reshape(len(x), -1)
    name = layer["name"]
    return activation(x @ weights[name + ".weight"].T + weights[name + ".bias"], layer["activation"])
'''
