"""Residual group: the output of an inner pipeline is added to the group's input (ResNet's skip).

``{"kind": "residual", "blocks": [...], "projection": "auto", "activation": "relu"}``. When the inner
pipeline changes the channels or the size, ``auto`` puts a 1x1 convolution with the matching stride
on the skip path (and says so), ``conv1x1`` always does, ``none`` makes a mismatch an error. The
activation is applied after the addition. The gradient reaches the input along both paths and is
summed there: that is why deep residual networks still train.
"""
from __future__ import annotations

import copy

from netbuilder.core.blocks.base import ACTIVATIONS, BlockKind, Field, Geometry, PaletteEntry, Shaped, activated
from netbuilder.core.blocks.group import (
    build_stages,
    chain_text,
    check_pipeline_field,
    class_name_of,
    inner_bytes,
    lower_onnx,
    named_of,
    numpy_specs,
    shape_text,
    torch_class,
)

PROJECTIONS = ("auto", "none", "conv1x1")
_INNER = [{"kind": "conv", "filters": 16, "kernel_size": 3, "padding": "same", "activation": "identity",
           "bias": False},
          {"kind": "batchnorm", "activation": "relu"},
          {"kind": "conv", "filters": 16, "kernel_size": 3, "padding": "same", "activation": "identity",
           "bias": False},
          {"kind": "batchnorm", "activation": "identity"}]


def _stride(size: int, out: int) -> int | None:
    """The stride of a 1x1 convolution taking ``size`` pixels to ``out``, or None if none does."""
    for s in range(1, size + 1):
        if (size - 1) // s + 1 == out:
            return s
    return None


class Residual(BlockKind):
    kind = "residual"
    position = 90
    label = "Residual group"
    help = "adds the input of its inner blocks to their output (a skip connection), then applies the activation"
    fields = (
        Field("projection", "choice", "auto", "how the skip path fits a changed shape: 'auto' adds a 1x1 convolution "
                                              "only when needed, 'conv1x1' always, 'none' never", choices=PROJECTIONS),
        Field("activation", "choice", "relu", "function applied after the addition", choices=ACTIVATIONS),
    )
    structure = ("blocks",)
    palette = (PaletteEntry("residual", "Residual group", "input + inner blocks",
                            "Adds its input to the output of its inner blocks, as ResNet does: the gradient flows "
                            "along the skip, so deep networks still train."),)
    accent = "#3f6f8f"  # steel blue
    shows_maps = True  # its output, the sum: the feature maps the next block sees
    aliases = ("resblock", "residual_block", "skip")

    def default(self) -> dict:
        return {"kind": "residual", "blocks": copy.deepcopy(_INNER), "projection": "auto", "activation": "relu"}

    def describe(self, b: dict) -> str:
        n = len(b["blocks"]) if isinstance(b.get("blocks"), list) else 0
        return f"residual · {n} block{'s' if n != 1 else ''} · {b['projection']} skip · {b['activation']}"

    def shape(self, ctx) -> Shaped:
        inner = check_pipeline_field(ctx, "blocks", allow_empty=False)
        if inner is None:
            return Shaped(None)
        infos, out = ctx.nested(inner, ctx.input_shape, f"block {ctx.index + 1} › ", ctx.index)
        if out is None:
            return Shaped(None, children=tuple(infos))
        inp, projection = ctx.input_shape, ctx.values["projection"]
        params = sum(i.params for i in infos)
        macs = sum(i.macs for i in infos)
        buffers = sum(i.buffers for i in infos)
        geometry = Geometry()
        if out != inp or projection == "conv1x1":
            shown = f"{shape_text(inp)} to {shape_text(out)}"
            if projection == "none":
                ctx.problem(f"its inner blocks change the shape from {shown}, so the input cannot be added to "
                            "their output; keep the shape, or set projection to 'auto'", "projection")
                return Shaped(None, children=tuple(infos))
            strides = [_stride(a, b) for a, b in zip(inp[1:], out[1:])] if len(inp) == len(out) == 3 else [None]
            if None in strides:
                ctx.problem(f"no 1x1 convolution takes {shown} on the skip path (it needs images of sizes a "
                            "stride can reach); change the inner blocks", "projection")
                return Shaped(None, children=tuple(infos))
            c_in, c_out = inp[0], out[0]
            geometry = Geometry(kernel=(1, 1), stride=(strides[0], strides[1]), pads=(0, 0, 0, 0), in_channels=c_in)
            params += c_in * c_out + c_out
            macs += out[1] * out[2] * c_out * c_in
            if projection == "auto":
                ctx.problem(f"its inner blocks change the shape from {shown}: a 1x1 convolution with stride "
                            f"{strides[0]} on the skip path makes the input fit ({c_in * c_out + c_out:,} parameters)",
                            "projection", "note")
        return Shaped(out, params, macs, buffers, geometry, False, tuple(infos), inner_bytes(infos))

    def group_lines(self, info):
        g = info.geometry
        skip = (f"1x1 convolution, stride {g.stride[0]}, of the input" if g.kernel is not None else "the input")
        return [f"inner: {chain_text(info.children)}",
                f"out = {info.block['activation']}(inner + {skip}) = {shape_text(info.output_shape)}"]

    def layers(self, info, rng, dtype, path):
        from netbuilder.core.layers import Activation, Conv2D
        from netbuilder.core.layers.groups import Residual as ResidualLayer

        stages = build_stages(info.children, rng, dtype, path)
        g = info.geometry
        projection = None
        if g.kernel is not None:
            projection = Conv2D(g.in_channels, info.output_shape[0], g.kernel, g.stride, g.pads, rng=rng,
                                dtype=dtype, init="he")
        act = info.block["activation"]
        layer = ResidualLayer([x for st in stages for x in st.layers], projection,
                              Activation(act) if act != "identity" else None)
        layer.stages, layer.projection_layer = stages, projection
        return [layer], None

    def named_layers(self, path, layers):
        group = layers[0]
        extra = [(f"{path}.projection", group.projection_layer)] if group.projection_layer is not None else []
        return named_of(group.stages) + extra

    wrap_label = "Wrap in &residual group"

    def join_text(self, info) -> tuple[str, str]:
        g, out = info.geometry, info.output_shape
        skip = f"the input (1x1 conv, stride {g.stride[0]})" if g.kernel is not None else "the input"
        then = info.block.get("activation", "relu")
        result = f" → {shape_text(out)}" if out is not None else ""
        return "+", f"add {skip}, then {then}{result}"

    def wrap(self, blocks: list[dict]) -> dict | None:
        return {**self.default(), "blocks": copy.deepcopy(blocks)}

    def lanes(self, block: dict) -> list[list] | None:
        inner = block.get("blocks")
        return [inner] if isinstance(inner, list) else None

    def lane_infos(self, info) -> list[tuple]:
        return [info.children]

    def inner_stages(self, stage) -> list:
        return list(stage.layers[0].stages)

    def unwrap(self, block: dict) -> list | None:
        inner = block.get("blocks")
        return inner if isinstance(inner, list) else None

    def onnx(self, graph, stage):
        name, group, act = stage.path, stage.layers[0], stage.info.block["activation"]
        skip = graph.x
        lower_onnx(graph, group.stages)
        inner = graph.x
        if group.projection_layer is not None:
            params = group.projection_layer.params
            graph.op("Conv", [skip, graph.const(f"{name}.projection.weight", params["weight"]),
                              graph.const(f"{name}.projection.bias", params["bias"])], f"{name}_projection",
                     f"{name}_projection", kernel_shape=[1, 1], strides=list(stage.info.geometry.stride),
                     pads=[0, 0, 0, 0])
            skip = graph.x
        out = name + ("_out" if act == "identity" else "_sum")
        graph.op("Add", [inner, skip], out, f"{name}_add")
        if act != "identity":
            graph.activation(f"{name}_{act}", act, name + "_out")

    def torch(self, stage, final_activation=True):
        return f"{class_name_of(self.kind, stage.path)}()", ["x = {m}(x)"]

    def torch_classes(self, stage):
        group, info = stage.layers[0], stage.info
        g = info.geometry
        extra = []
        if group.projection_layer is not None:
            extra.append(f"self.projection = nn.Conv2d({g.in_channels}, {info.output_shape[0]}, kernel_size=(1, 1), "
                         f"stride=({g.stride[0]}, {g.stride[1]}))")
        forward = ["skip = self.projection(x)" if extra else "skip = x", "{body}",
                   f"return {activated('x + skip', info.block['activation'])}"]
        return torch_class(group.stages, class_name_of(self.kind, stage.path), forward, extra)

    def numpy(self, stage):
        group, info = stage.layers[0], stage.info
        projection = {"stride": tuple(info.geometry.stride)} if group.projection_layer is not None else None
        return {"inner": numpy_specs(group.stages), "activation": info.block["activation"], "projection": projection}

    numpy_step = '''
def step_residual(x, layer, weights):
    """act(inner(x) + skip(x)): the skip is x itself, or a 1x1 convolution with a stride."""
    skip = x
    if layer["projection"] is not None:
        skip = step_conv(x, {"name": layer["name"] + ".projection", "stride": layer["projection"]["stride"],
                             "pads": (0, 0, 0, 0), "activation": "identity"}, weights)
    return activation(run(layer["inner"], x, weights) + skip, layer["activation"])
'''
    needs_steps = ("conv",)  # step_residual calls step_conv for its projection
