"""Convolution: ``filters`` learned kernels slide over the image, each making one feature map."""
from __future__ import annotations

from netbuilder.core.blocks.base import (
    ACTIVATION_FIELD,
    PADDING_MODES,
    BlockKind,
    Field,
    Geometry,
    PaletteEntry,
    Shaped,
    activated,
    pair_text,
)
from netbuilder.core.blocks.window import (
    onnx_pads,
    padding_text,
    positive_pair,
    size_text,
    slide,
    stride_text,
    torch_padding,
    window_lines,
)


class Conv(BlockKind):
    kind = "conv"
    position = 10
    label = "Convolution"
    help = "slides `filters` learned kernels over the image; each produces one feature map"
    fields = (
        Field("filters", "int", 8, "number of kernels = depth of the output", minimum=1),
        Field("kernel_size", "pair", 3, "height and width of each kernel", minimum=1),
        Field("stride", "pair", 1, "step between kernel positions", minimum=1),
        Field("padding", "padding", "valid",
              "zeros added around the input: 'valid' (none), 'same' (keep size at stride 1) or pixels",
              choices=PADDING_MODES, minimum=0),
        ACTIVATION_FIELD,
        Field("bias", "bool", True, "add a learned bias per filter (off before batchnorm, whose own bias "
                                    "does the same)"),
    )
    palette = (PaletteEntry("conv", "Convolution", "filters → feature maps",
                            "Slides small learned kernels over the image; each kernel produces one feature map."),)
    accent = "#4f74b8"  # blue
    shows_maps = True
    has_weights = True
    aliases = ("convolution", "conv2d", "convolutional")

    def describe(self, b: dict) -> str:
        return (f"conv {b['filters']} @ {size_text(b['kernel_size'])} · stride {stride_text(b['stride'])} · "
                f"{padding_text(b['padding'])} · {b['activation']}" + ("" if b.get("bias", True) else " · no bias"))

    # --- shapes --------------------------------------------------------------------------------
    def shape(self, ctx) -> Shaped:
        ctx.pipeline.conv_seen = True
        if not ctx.needs_image():
            return Shaped(None)
        kernel, stride = ctx.values["kernel_size"], ctx.values["stride"]
        win = slide(ctx, "kernel", "kernel_size", kernel, stride, ctx.values["padding"], "kernel")
        if win is None:
            return Shaped(None)
        pads, ho, wo = win
        c, f = ctx.input_shape[0], ctx.values["filters"]
        per_out = c * kernel[0] * kernel[1]
        # positional: this runs for every block on every keystroke
        return Shaped((f, ho, wo), f * per_out + (f if ctx.values["bias"] else 0), ho * wo * f * per_out, 0,
                      Geometry(kernel, stride, pads, c))

    def output_formula(self, block, input_shape):
        return window_lines(block["kernel_size"], block["stride"], block["padding"], input_shape)

    def params_formula(self, block, input_shape):
        f = block["filters"]
        kernel = positive_pair(block["kernel_size"], 1)
        if len(input_shape) != 3 or type(f) is not int or f < 1 or kernel is None:
            return None
        c, (kh, kw) = input_shape[0], kernel
        if block.get("bias") is False:
            return f"params = {f}·{c}·{kh}·{kw} = {f * c * kh * kw:,} (no bias)"
        return f"params = {f}·{c}·{kh}·{kw} + {f} = {f * c * kh * kw + f:,}"

    def weights_text(self, info):
        g = info.geometry
        if g.kernel is None or g.in_channels is None:
            return super().weights_text(info)
        kh, kw = g.kernel
        return f"{info.block.get('filters', 0):,} filters of {g.in_channels:,}x{kh:,}x{kw:,}", "filters"

    # --- the engine ----------------------------------------------------------------------------
    def layers(self, info, rng, dtype, path):
        from netbuilder.core.init import scheme_for
        from netbuilder.core.layers import Activation, Conv2D
        from netbuilder.core.layers.activation import fuse

        g, act = info.geometry, info.block["activation"]
        conv = Conv2D(g.in_channels, info.block["filters"], g.kernel, g.stride, g.pads, rng=rng, dtype=dtype,
                      init=scheme_for(act), bias=info.block["bias"])
        activation = Activation(act)
        fuse(conv, activation)  # relu / leaky relu: applied by the convolution itself, chunk by chunk
        return [conv, activation], conv

    # --- lowerings -----------------------------------------------------------------------------
    def onnx(self, graph, stage):
        name, g, params = stage.path, stage.info.geometry, stage.param_layer.params
        inputs = [graph.x, graph.const(f"{name}.weight", params["weight"])]
        if "bias" in params:
            inputs.append(graph.const(f"{name}.bias", params["bias"]))
        graph.op("Conv", inputs, f"{name}_linear", name, kernel_shape=list(g.kernel),
                 strides=list(g.stride), pads=onnx_pads(g.pads))
        graph.activation(f"{name}_{stage.info.block['activation']}", stage.info.block["activation"], name + "_out")

    def torch(self, stage, final_activation=True):
        g, block = stage.info.geometry, stage.info.block
        padding, pad_line = torch_padding(g.pads)
        bias = "" if block["bias"] else ", bias=False"
        module = (f"nn.Conv2d({g.in_channels}, {block['filters']}, kernel_size={pair_text(g.kernel)}, "
                  f"stride={pair_text(g.stride)}{padding}{bias})")
        return module, ([pad_line] if pad_line else []) + [
            f"x = {activated('{m}(x)', block['activation'], final_activation)}"]

    def numpy(self, stage):
        g = stage.info.geometry
        return {"stride": tuple(g.stride), "pads": tuple(g.pads), "activation": stage.info.block["activation"]}

    numpy_step = '''
def step_conv(x, layer, weights):
    """Cross-correlation as im2col and one matrix product: (N, C, H, W) -> (N, F, Ho, Wo).

    The bias rides along as one more column of the weights against a row of ones, so each
    output is a single dot product (the same sum, in the same order, as the app computes).
    """
    weight = weights[layer["name"] + ".weight"]
    f, c, kh, kw = weight.shape
    bias = weights.get(layer["name"] + ".bias", np.zeros(f, x.dtype))
    xc = pad(x, layer["pads"]).transpose(1, 0, 2, 3)  # (C, N, H, W): channel-major columns
    views = windows(xc, (kh, kw), layer["stride"])
    _, n, ho, wo = views[0].shape
    cols = np.ones((c * kh * kw + 1, n * ho * wo), x.dtype)
    cols[:-1] = np.stack(views, axis=1).reshape(c * kh * kw, n * ho * wo)
    w = np.concatenate([weight.reshape(f, c * kh * kw), bias[:, None]], axis=1)
    y = np.matmul(w, cols).reshape(f, n, ho, wo).transpose(1, 0, 2, 3)
    return activation(y, layer["activation"])
'''
