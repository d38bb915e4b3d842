"""BatchNorm folded into the convolution or dense block before it, for the exports that only infer.

At inference a batchnorm is a fixed per-channel affine map, y = z * s + (β − μ s) with
s = γ / sqrt(σ² + ε). Right after a linear layer z = W a + b whose only reader it is (the layer's
own activation is identity) the two merge into one: W' = W s per output channel and
b' = (b − μ) s + β, followed by the batchnorm's activation (``core.layers.fold``, which the
engine's own inference uses too). The exported model has one layer where the network has two and
gives the same outputs up to float rounding. The PyTorch export keeps its BatchNorm modules, to be
fine-tuned.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from netbuilder.core.layers.batchnorm import BatchNorm
from netbuilder.core.layers.conv import Conv2D
from netbuilder.core.layers.dense import Dense
from netbuilder.core.layers.fold import folded_weights


@dataclass
class Folded:
    """A linear stage with the batchnorm stage after it merged in, shaped as a stage of the linear
    block's kind: ``info`` is the linear block's with the batchnorm's activation, ``param_layer``
    holds the merged weight and bias, ``path`` is "<linear path>+<batchnorm name>"."""

    info: object
    param_layer: object
    path: str
    linear: object  # the two stages it stands for
    norm: object
    layers: list = field(default_factory=list)


@dataclass
class _Weights:
    params: dict


def foldable(stage, following) -> bool:
    """Whether ``following`` is a batchnorm that can merge into ``stage``."""
    return (following is not None and isinstance(following.param_layer, BatchNorm)
            and isinstance(stage.param_layer, (Conv2D, Dense))
            and stage.info.block.get("activation") == "identity")


def fold_stages(stages) -> list:
    """``stages`` with each (convolution or dense, batchnorm) pair replaced by its ``Folded`` stage."""
    out, k = [], 0
    while k < len(stages):
        stage = stages[k]
        following = stages[k + 1] if k + 1 < len(stages) else None
        if foldable(stage, following):
            out.append(fold(stage, following))
            k += 2
        else:
            out.append(stage)
            k += 1
    return out


def fold(linear, norm) -> Folded:
    info = replace(linear.info, block={**linear.info.block, "activation": norm.info.block["activation"]})
    weights = _Weights(folded_weights(linear.param_layer, norm.param_layer))
    return Folded(info, weights, f"{linear.path}+{norm.info.name}", linear, norm)
