"""BatchNorm: each channel normalised over the batch, then given a learnt scale and shift.

After a conv block it normalises per channel over the batch and the image (torch's BatchNorm2d);
after a dense block, per feature (BatchNorm1d). Training uses the batch's statistics and moves the
running ones (buffers saved with the weights) towards them; inference uses the running ones.
"""
from __future__ import annotations

from dataclasses import replace

from netbuilder.core.blocks.base import ACTIVATION_FIELD, BlockKind, Field, PaletteEntry, Shaped, activated

_ACTIVATION = replace(ACTIVATION_FIELD, default="identity", help="function applied after the normalisation")


class BatchNorm(BlockKind):
    kind = "batchnorm"
    position = 30
    label = "BatchNorm"
    help = "normalises each channel to zero mean and unit variance over the batch, then scales and shifts it"
    fields = (
        Field("momentum", "float", 0.1, "how far the running statistics move towards each batch's (as in PyTorch)",
              minimum=0.0, maximum=1.0),
        Field("eps", "float", 1e-5, "added to the variance, so nothing divides by zero", minimum=1e-12, maximum=1.0),
        _ACTIVATION,
    )
    palette = (PaletteEntry("batchnorm", "BatchNorm", "normalise per channel",
                            "Normalises each channel over the batch, then scales and shifts it: deep networks "
                            "train faster and with larger learning rates."),)
    accent = "#5e8c31"  # olive green
    shows_maps = True
    has_weights = True
    aliases = ("batch_norm", "batchnormalization", "batchnorm2d", "batchnorm1d", "bn")

    def describe(self, b: dict) -> str:
        act = "" if b["activation"] == "identity" else f" · {b['activation']}"
        return f"batchnorm · momentum {b['momentum']:g} · eps {b['eps']:g}{act}"

    def shape(self, ctx) -> Shaped:
        c = ctx.input_shape[0]
        prev = ctx.previous
        if prev is not None and prev.block.get("bias") is True and prev.output_shape == ctx.input_shape:
            ctx.problem("its bias is redundant before batchnorm, which subtracts the mean and adds its own shift; "
                        "turn the bias off (fewer parameters, the same network)", "bias", "warning",
                        block=prev.index, kind=prev.kind, fix=("Turn the bias off", False))
        if ctx.batch_size == 1:
            per = "channel and image" if len(ctx.input_shape) == 3 else "feature"
            ctx.problem(f"with batch size 1 the statistics are those of one sample per {per}"
                        + (": a single value has no variance, so training uses the running statistics only"
                           if len(ctx.input_shape) == 1 else ", which normalise it away; use a larger batch"),
                        severity="warning", field_name=None)
        return Shaped(ctx.input_shape, params=2 * c, buffers=2 * c)

    def params_formula(self, block, input_shape):
        c = input_shape[0]
        return f"params = 2·{c} = {2 * c:,} (scale and shift) + buffers 2·{c} (running mean and variance)"

    def layers(self, info, rng, dtype, path):
        from netbuilder.core.layers import Activation
        from netbuilder.core.layers.activation import fuse
        from netbuilder.core.layers.batchnorm import BatchNorm as BatchNormLayer

        b = info.block
        bn = BatchNormLayer(info.input_shape[0], momentum=b["momentum"], eps=b["eps"], dtype=dtype)
        if b["activation"] == "identity":
            return [bn], bn
        activation = Activation(b["activation"])
        fuse(bn, activation)  # relu / leaky relu: applied by the normalisation itself, block by block
        return [bn, activation], bn

    def onnx(self, graph, stage):
        name, layer, b = stage.path, stage.param_layer, stage.info.block
        inputs = [graph.x] + [graph.const(f"{name}.{key}", value) for key, value in (
            ("weight", layer.params["weight"]), ("bias", layer.params["bias"]),
            ("running_mean", layer.buffers["running_mean"]), ("running_var", layer.buffers["running_var"]))]
        out = name + ("_out" if b["activation"] == "identity" else "_normalized")
        graph.op("BatchNormalization", inputs, out, name, epsilon=float(b["eps"]))
        if b["activation"] != "identity":
            graph.activation(f"{name}_{b['activation']}", b["activation"], name + "_out")

    def torch(self, stage, final_activation=True):
        info, b = stage.info, stage.info.block
        dims = "2d" if len(info.input_shape) == 3 else "1d"
        module = (f"nn.BatchNorm{dims}({info.input_shape[0]}, eps={float(b['eps'])!r}, "
                  f"momentum={float(b['momentum'])!r})")
        return module, [f"x = {activated('{m}(x)', b['activation'], final_activation)}"]

    def numpy(self, stage):
        return {"eps": float(stage.info.block["eps"]), "activation": stage.info.block["activation"]}

    numpy_step = '''
def step_batchnorm(x, layer, weights):
    """y = x * scale + shift per channel, with scale = weight / sqrt(running_var + eps): the running
    statistics, as at inference (the same float32 steps as the app)."""
    name = layer["name"]
    shape = (1, -1) + (1,) * (x.ndim - 2)
    inv_std = x.dtype.type(1) / np.sqrt(weights[name + ".running_var"] + x.dtype.type(layer["eps"]))
    scale = weights[name + ".weight"] * inv_std
    shift = weights[name + ".bias"] - weights[name + ".running_mean"] * scale
    return activation(x * scale.reshape(shape) + shift.reshape(shape), layer["activation"])
'''
