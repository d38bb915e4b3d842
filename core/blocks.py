"""The block kinds a pipeline is made of: their fields, defaults, allowed values and help text.

This table is the one place that says what a block is; validation, the network builder and the
GUI's palette and inspector all read it. A block in a project is a plain dict:
``{"kind": "conv", "filters": 6, "kernel_size": 5, ...}`` with an optional ``"name"``.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "tanh", "identity", "softmax")
POOL_MODES = ("max", "average", "sum")
PADDING_MODES = ("valid", "same")
LEAKY_RELU_SLOPE = 0.01  # PyTorch's and ONNX's default negative slope


@dataclass(frozen=True)
class Field:
    """One setting of a block kind.

    ``type`` is one of: "int" (positive unless ``minimum`` says otherwise), "pair" (an int or a
    [height, width] pair), "padding" ("valid" | "same" | int >= 0 | pair), "choice" (one of
    ``choices``), "float" (within ``minimum``..``maximum``), "optional_pair" (a pair or null).
    """

    name: str
    type: str
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True)
class BlockKind:
    kind: str
    label: str
    help: str
    fields: tuple[Field, ...]

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)


_ACTIVATION_FIELD = Field(
    "activation", "choice", "relu", "function applied to every output value", choices=ACTIVATIONS
)

KINDS: dict[str, BlockKind] = {
    b.kind: b
    for b in (
        BlockKind(
            "conv",
            "Convolution",
            "slides `filters` learned kernels over the image; each produces one feature map",
            (
                Field("filters", "int", 8, "number of kernels = depth of the output", minimum=1),
                Field("kernel_size", "pair", 3, "height and width of each kernel", minimum=1),
                Field("stride", "pair", 1, "step between kernel positions", minimum=1),
                Field("padding", "padding", "valid",
                      "zeros added around the input: 'valid' (none), 'same' (keep size at stride 1) or pixels",
                      choices=PADDING_MODES, minimum=0),
                _ACTIVATION_FIELD,
            ),
        ),
        BlockKind(
            "pool",
            "Pooling",
            "keeps the largest (max), mean (average) or total (sum) value of each window, "
            "halving width and height with size 2 and stride 2",
            (
                Field("mode", "choice", "max", "how a window is reduced to one value", choices=POOL_MODES),
                Field("size", "pair", 2, "height and width of each window", minimum=1),
                Field("stride", "optional_pair", None, "step between windows (empty: same as size)", minimum=1),
                Field("padding", "padding", 0, "pixels added around the input (at most half the window)",
                      choices=PADDING_MODES, minimum=0),
            ),
        ),
        BlockKind(
            "dense",
            "Dense",
            "connects every input value to each of `units` outputs (a fully connected layer)",
            (
                Field("units", "int", 64, "number of outputs", minimum=1),
                _ACTIVATION_FIELD,
            ),
        ),
        BlockKind("flatten", "Flatten", "lays the feature maps out as one long vector for dense blocks", ()),
        BlockKind(
            "activation",
            "Activation",
            "applies a function to every value: relu, leaky_relu, sigmoid, tanh, identity or softmax",
            (_ACTIVATION_FIELD,),
        ),
        BlockKind(
            "dropout",
            "Dropout",
            "while training, zeroes each value with probability `rate` to fight overfitting",
            (Field("rate", "float", 0.5, "probability of dropping a value", minimum=0.0, maximum=0.95),),
        ),
    )
}


def default_block(kind: str) -> dict[str, Any]:
    """A new block of ``kind`` with every field at its default."""
    spec = KINDS[kind]
    return {"kind": kind, **{f.name: copy.deepcopy(f.default) for f in spec.fields}}


def with_defaults(block: dict[str, Any]) -> dict[str, Any]:
    """``block`` with missing fields filled from the kind's defaults (unknown kinds unchanged)."""
    spec = KINDS.get(block.get("kind"))
    if spec is None:
        return dict(block)
    out = {"kind": spec.kind}
    for f in spec.fields:
        out[f.name] = copy.deepcopy(block.get(f.name, f.default))
    for k, v in block.items():
        out.setdefault(k, v)
    return out
