"""What a block kind declares: its fields, its shape rule, the layers it becomes, its lowerings to
ONNX, PyTorch and the generated numpy ``predict.py``, and its palette entry.

A kind is one subclass of ``BlockKind`` in one module of this package; the registry in
``__init__`` lists them. Everything else (inference, the network, the summary, the formula view,
the exporters, the palette and the theme) asks the kind and never compares kind names itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from netbuilder.core.errors import Problem

if TYPE_CHECKING:  # only for annotations: the engine layers import numpy, the registry does not
    from netbuilder.core.inference import BlockInfo

Shape = tuple[int, ...]
Pair = tuple[int, int]
Pads = tuple[int, int, int, int]  # top, bottom, left, right

ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "tanh", "identity", "softmax")
PADDING_MODES = ("valid", "same")
LEAKY_RELU_SLOPE = 0.01  # PyTorch's and ONNX's default negative slope


@dataclass(frozen=True)
class Field:
    """One setting of a block kind.

    ``type`` is one of: "int" (positive unless ``minimum`` says otherwise), "pair" (an int or a
    [height, width] pair), "padding" ("valid" | "same" | int >= 0 | pair), "choice" (one of
    ``choices``), "float" (within ``minimum``..``maximum``), "optional_pair" (a pair or null),
    "bool" (true or false).
    """

    name: str
    type: str
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None


ACTIVATION_FIELD = Field("activation", "choice", "relu", "function applied to every output value",
                         choices=ACTIVATIONS)


class Geometry(NamedTuple):
    """What shape inference resolved for the layers and the exporters (fields a kind does not use are
    None). A named tuple: inference makes one per block on every keystroke, and it must be cheap."""

    kernel: Pair | None = None
    stride: Pair | None = None
    pads: Pads | None = None
    in_channels: int | None = None
    in_features: int | None = None


NO_GEOMETRY = Geometry()


@dataclass(frozen=True)
class PaletteEntry:
    """One item of the palette: a kind, optionally with some fields preset (pooling per mode)."""

    kind: str
    label: str
    subtitle: str
    help: str
    preset: tuple[tuple[str, Any], ...] = ()


class Shaped(NamedTuple):
    """What a kind's shape rule found: the output shape (None when it cannot work, said through
    ``ShapeContext.problem``), parameters, multiply-adds per sample, buffers and geometry."""

    output: Shape | None
    params: int = 0
    macs: int = 0
    buffers: int = 0  # values saved with the weights but not trained (BatchNorm's running statistics)
    geometry: Geometry = Geometry()
    implicit_flatten: bool = False
    children: tuple = ()  # a group's inner BlockInfos: a pipeline (residual) or one per path (branches)
    inner_bytes: int = 0  # the activations its inner blocks keep, besides its own output


@dataclass
class Pipeline:
    """What shape inference carries from block to block besides the shape."""

    conv_seen: bool = False  # a block that sees images came before
    from_spatial: bool = False  # the current flat vector came from flattening a feature map


class ShapeContext:
    """A block as its shape rule sees it: position, input, its valid field values, the block as
    written (defaults filled, for messages), and where problems go. Inference keeps one and moves
    it from block to block (``at``): it runs on every keystroke."""

    __slots__ = ("index", "kind", "input_shape", "values", "block", "add", "pipeline", "is_last", "previous",
                 "batch_size", "nested")

    def __init__(self, add, pipeline: Pipeline | None = None, batch_size: int | None = None):
        self.add = add  # Problem -> None
        self.pipeline = pipeline if pipeline is not None else Pipeline()
        self.batch_size = batch_size  # the training batch size, when valid
        self.index, self.kind, self.input_shape, self.values, self.block = 0, "", (), {}, {}
        self.is_last = False
        self.previous: BlockInfo | None = None  # what inference found for the block before, for lints
        # nested(blocks, input_shape, message prefix, block index, lane=0) -> (infos, output shape): a
        # group's inner pipeline ``lane``, inferred with its problems prefixed by the path to it
        self.nested = None

    def at(self, index: int, kind: str, input_shape: Shape, values: dict, block: dict, is_last: bool,
           previous: BlockInfo | None) -> ShapeContext:
        self.index, self.kind, self.input_shape, self.values, self.block = index, kind, input_shape, values, block
        self.is_last, self.previous = is_last, previous
        return self

    @property
    def head(self) -> str:
        """"block 3 (conv): ", how every message about the block begins."""
        return f"block {self.index + 1} ({self.kind}): "

    def problem(self, text: str, field_name: str | None = None, severity: str = "error", value: Any = None,
                block: int | None = None, kind: str | None = None, fix: tuple[str, Any] | None = None) -> None:
        """A problem of this block (or, with ``block``/``kind``, of an earlier one it concerns);
        ``fix`` is (a button's text, the value that fixes the field) when one value does."""
        if value is None and field_name is not None and block is None:
            value = self.block.get(field_name)
        head = self.head if block is None else f"block {block + 1} ({kind}): "
        self.add(Problem(head + text, block=self.index if block is None else block,
                         kind=self.kind if block is None else kind, field=field_name, value=value,
                         severity=severity, fix=fix))

    def needs_image(self) -> bool:
        """True for a (C, H, W) input; else says to move the block before flattening."""
        if len(self.input_shape) == 3:
            return True
        self.problem(f"needs a (channels, height, width) input but receives a flat vector of "
                     f"{self.input_shape[0]:,} values; move it before the flatten/dense blocks")
        return False


class BlockKind:
    """A block kind: subclasses set the class attributes and override what applies to them."""

    kind: str = ""
    position: int = 100  # order in the palette and wherever kinds are listed
    label: str = ""
    help: str = ""  # one line, for the inspector and the palette
    fields: tuple[Field, ...] = ()
    palette: tuple[PaletteEntry, ...] = ()
    accent: str = "#90a4ae"  # the card and icon colour
    shows_maps = False  # its output is a stack of feature maps worth showing while training
    has_weights = False  # a block whose parameters the gradient views and the filters view show
    aliases: tuple[str, ...] = ()  # names from other libraries that mean this kind ("conv2d")
    structure: tuple[str, ...] = ()  # a group's keys holding blocks ("blocks", "paths"): not fields
    side_by_side = False  # a group whose lanes run in parallel on one input (drawn side by side)

    def default(self) -> dict:
        """A new block of this kind, every field at its default (a group with inner blocks)."""
        import copy

        return {"kind": self.kind, **{f.name: copy.deepcopy(f.default) for f in self.fields}}

    # --- fields --------------------------------------------------------------------------------
    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)

    @property
    def activation_field(self) -> bool:
        """Whether the kind ends with an activation of its own (conv, dense, activation)."""
        return self.field("activation") is not None

    def describe(self, b: dict) -> str:
        """A one-line description from the block with defaults filled, e.g. "dense 64 · relu"."""
        return self.kind

    def icon(self, block: dict) -> str:
        """The icon file stem of a block of this kind."""
        return self.kind

    # --- shapes --------------------------------------------------------------------------------
    def shape(self, ctx: ShapeContext) -> Shaped:
        """The output of the block fed ``ctx.input_shape``; by default the shape passes through."""
        return Shaped(ctx.input_shape)

    def output_formula(self, block: dict, input_shape: Shape) -> list[str]:
        """Lines deriving the output size, for the inspector (block with defaults filled)."""
        return []

    def group_lines(self, info: BlockInfo) -> list[str]:
        """For a group: how its inner blocks make its output, a line per block (or path)."""
        return []

    def params_formula(self, block: dict, input_shape: Shape) -> str | None:
        """The parameter count written out, or None when the kind has no parameters."""
        return None

    def weights_text(self, info: BlockInfo) -> tuple[str, str | None]:
        """What makes the block's weights ("1,000,000,000 filters of 1x5x5") and the field to change."""
        return f"{info.params:,} parameters", None

    # --- the engine ----------------------------------------------------------------------------
    def layers(self, info: BlockInfo, rng, dtype, path: str) -> tuple[list, Any]:
        """(engine layers in order, the layer holding the block's parameters or None); ``path`` is
        the block's full name, which a group passes on to its inner blocks."""
        raise NotImplementedError(f"{self.kind} blocks have no engine layers")

    def named_layers(self, path: str, layers: list) -> list:
        """(name prefix, layer) of every layer holding parameters or buffers: what they are saved as."""
        return [(path, layer) for layer in layers if layer.params or layer.buffers]

    def inner_stages(self, stage) -> list:
        """A group's inner stages, flat (for walks over every block); none for a plain block."""
        return []

    def unwrap(self, block: dict) -> list | None:
        """The blocks a group becomes when unwrapped, or None when it cannot be (a plain block)."""
        return None

    wrap_label = ""  # for a group kind: the menu entry that wraps selected blocks in a new group

    def wrap(self, blocks: list[dict]) -> dict | None:
        """A new group of this kind holding ``blocks`` (None for a plain kind): the reverse of ``unwrap``."""
        return None

    def join_text(self, info: BlockInfo) -> tuple[str, str]:
        """For a group: (a one-character glyph, a line) saying how its lanes meet, for the canvas."""
        return "", ""

    def lanes(self, block: dict) -> list[list] | None:
        """A group's inner pipelines, the block's own lists (a residual's one, one per path of
        branches), or None for a plain block or a group whose structure is not a list of lists."""
        return None

    def lane_infos(self, info: BlockInfo) -> list[tuple]:
        """What inference found for each of ``lanes``: a tuple of infos per lane (empty if none)."""
        return []

    # --- lowerings -----------------------------------------------------------------------------
    def onnx(self, graph, stage) -> None:
        """Append the block's ONNX nodes to ``graph`` (see ``core.export.onnx_export._Graph``)."""
        raise NotImplementedError(f"{self.kind} blocks have no ONNX lowering")

    def torch(self, stage, final_activation: bool = True) -> tuple[str | None, list[str]]:
        """(the ``nn`` module expression of the block or None, its lines of ``forward``), where
        ``{m}`` in a line stands for the module attribute. Without ``final_activation`` the
        block leaves its activation out (logits for a fused loss)."""
        raise NotImplementedError(f"{self.kind} blocks have no PyTorch lowering")

    def torch_classes(self, stage) -> list[str]:
        """Source of the ``nn.Module`` classes the block's module needs (a group's), defined before ``Net``."""
        return []

    def numpy(self, stage) -> dict | None:
        """The block's entry in predict.py's LAYERS (plain data), or None if it does nothing at inference."""
        raise NotImplementedError(f"{self.kind} blocks have no numpy lowering")

    numpy_step: str = ""  # source of ``def step_<kind>(x, layer, weights)`` for predict.py
    needs_steps: tuple[str, ...] = ()  # other kinds' steps that this one's step calls


def activated(expression: str, activation: str, apply: bool = True) -> str:
    """PyTorch source applying ``activation`` to ``expression`` (unchanged when not ``apply``)."""
    if not apply:
        return expression
    return {"relu": "torch.relu({})", "leaky_relu": f"F.leaky_relu({{}}, {LEAKY_RELU_SLOPE!r})",
            "sigmoid": "torch.sigmoid({})", "tanh": "torch.tanh({})", "identity": "{}",
            "softmax": "torch.softmax({}, dim=1)"}[activation].format(expression)


def pair_text(p) -> str:
    """(3, 5) -> "(3, 5)", for generated source."""
    return f"({int(p[0])}, {int(p[1])})"
