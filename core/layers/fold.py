"""BatchNorm merged into the convolution or dense layer before it, for inference.

At inference a batchnorm is a fixed per-channel affine map, y = z * s + (β − μ s) with
s = γ / sqrt(σ² + ε). Right after a linear layer z = W a + b whose only reader it is (the layer's
own activation is identity) the two merge into one layer: W' = W s per output channel,
b' = (b − μ) s + β (computed in float64), which also applies the batchnorm's relu if it fused one.

``InferenceFold.run`` runs a layer list so (``Network.predict`` and ``evaluate``): the batchnorm's
pass is gone. A merged layer is remade whenever any array it came from differs from the copy it
was made from (they are compared on every pass; weights are small beside a batch's values), so
training steps, loaded weights and edits by hand are always seen. Training never folds (it needs
the batch's statistics), and neither do ``forward`` and the probe: the feature maps show each
block's own output.
"""
from __future__ import annotations

import numpy as np

from netbuilder.core.layers.activation import Activation
from netbuilder.core.layers.base import Layer
from netbuilder.core.layers.batchnorm import BatchNorm
from netbuilder.core.layers.conv import Conv2D
from netbuilder.core.layers.dense import Dense
from netbuilder.core.layers.groups import _Group


def folded_weights(linear: Layer, norm: BatchNorm) -> dict[str, np.ndarray]:
    """The merged weight and bias of a Conv2D or Dense and the batchnorm after it, in its dtype."""
    w = linear.params["weight"].astype(np.float64)
    b = linear.params["bias"].astype(np.float64) if "bias" in linear.params else np.zeros(len(w))
    p, buffers = norm.params, norm.buffers
    s = p["weight"].astype(np.float64) / np.sqrt(buffers["running_var"].astype(np.float64) + norm.eps)
    weight = w * s.reshape((-1,) + (1,) * (w.ndim - 1))
    bias = (b - buffers["running_mean"].astype(np.float64)) * s + p["bias"].astype(np.float64)
    dtype = linear.params["weight"].dtype
    return {"weight": weight.astype(dtype), "bias": bias.astype(dtype)}


def merges(layers: list[Layer], k: int) -> bool:
    """Whether layers k, k+1, k+2 are a linear layer, its identity activation and a batchnorm."""
    return (k + 2 < len(layers) and isinstance(layers[k], (Conv2D, Dense)) and layers[k].fused_activation is None
            and isinstance(layers[k + 1], Activation) and layers[k + 1].name == "identity"
            and isinstance(layers[k + 2], BatchNorm))


def _sources(linear: Layer, norm: BatchNorm) -> list[np.ndarray]:
    return [*linear.params.values(), norm.params["weight"], norm.params["bias"], norm.buffers["running_mean"],
            norm.buffers["running_var"]]


def merged_layer(linear: Layer, norm: BatchNorm) -> Layer:
    """A new Conv2D or Dense computing norm(linear(x)), and the batchnorm's fused activation if any."""
    rng = np.random.default_rng(0)  # the initial weights are overwritten
    if isinstance(linear, Conv2D):
        layer = Conv2D(linear.in_channels, linear.filters, linear.kernel_size, linear.stride, linear.pads, rng,
                       dtype=linear.dtype, bias=True)
    else:
        layer = Dense(linear.in_features, linear.units, rng, dtype=linear.dtype)
    for key, value in folded_weights(linear, norm).items():
        layer.params[key][...] = value
    layer.fused_activation = norm.fused_activation
    return layer


class InferenceFold:
    """Runs layer lists in inference mode with every (linear, batchnorm) pair merged, the pairs
    inside groups too; keeps each merged layer with copies of what it was made from."""

    def __init__(self) -> None:
        self._merged: dict[int, tuple[list[np.ndarray], Layer]] = {}  # by id of the batchnorm

    def _layer(self, linear: Layer, norm: BatchNorm) -> Layer:
        kept = self._merged.get(id(norm))
        sources = _sources(linear, norm)
        if kept is None or len(kept[0]) != len(sources) or not all(
                np.array_equal(a, b) for a, b in zip(kept[0], sources)):
            kept = self._merged[id(norm)] = ([a.copy() for a in sources], merged_layer(linear, norm))
        return kept[1]

    def run(self, layers: list[Layer], x: np.ndarray, training: bool = False) -> np.ndarray:
        """``x`` through ``layers`` (inference only), as ``groups._forward`` but merged."""
        k = 0
        while k < len(layers):
            if merges(layers, k):
                x = self._layer(layers[k], layers[k + 2]).forward(x, False)
                k += 3
                continue
            layer = layers[k]
            x = layer.forward(x, False, self.run) if isinstance(layer, _Group) else layer.forward(x, False)
            k += 1
        return x
