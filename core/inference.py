"""Validation with shape inference: what each block receives and produces, and everything wrong.

``infer(project)`` runs on every keystroke in the GUI, so it is plain Python arithmetic (no
numpy) with all lookup tables built once at import. It never raises: every problem becomes a
``Problem`` naming the block (1-based in the message, 0-based in ``Problem.block``), its kind,
the field and the value received. ``validate(project)`` raises ``ProjectError`` if any is an
error.

Counting conventions:

- params: conv F*C*kh*kw + F, dense in*units + units, everything else 0.
- MACs (multiply-accumulates per sample): conv Ho*Wo*F*C*kh*kw, dense in*units; pooling,
  activations, dropout and flatten count 0 — they do no multiply-accumulates, and this matches
  what Keras-style summaries and papers quote for LeNet/VGG.
- activation_bytes: float32 bytes of one sample's output of the block (4 * element count), even
  for flatten/dropout whose output may be a view; the total is an upper bound of what a forward
  pass keeps per sample.

Shapes are (C, H, W) for images and (features,) once flat. A dense block fed (C, H, W) flattens
it first (``implicit_flatten``), reported as a note. After a block with an error, later blocks
get ``None`` shapes and no shape errors of their own (their field errors are still reported); a
bad name or a misplaced softmax is an error but does not stop shape inference.

Problem ``field`` values: a block's field name ("kernel_size"), "input_shape", "num_classes",
"blocks" (empty pipeline) or "training.<name>" for training settings.
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from typing import Any

from netbuilder.core.block_names import automatic_names, check_name, check_names_unique, name_of
from netbuilder.core.blocks import KINDS, PADDING_MODES, Geometry
from netbuilder.core.blocks.base import NO_GEOMETRY, Pipeline, ShapeContext
from netbuilder.core.errors import ERROR, NOTE, WARNING, Problem, ProjectError
from netbuilder.core.memory import machine_memory, memory_problems
from netbuilder.core.project import Project, _show, _suggest
from netbuilder.core.training_checks import MAX_INT, check_class_weights, check_loss, check_output, check_training

Shape = tuple[int, ...]

# Per kind: (name, type, default, minimum, maximum, choices) of each field, and every key allowed.
# Bounds missing from the table become the ones the checks assume (ints at least 1, floats any).
_SPECS = {
    kind: tuple(
        (f.name, f.type, f.default,
         f.minimum if f.minimum is not None else (1 if f.type == "int" else -math.inf),
         f.maximum if f.maximum is not None else math.inf, f.choices)
        for f in spec.fields)
    for kind, spec in KINDS.items()
}
_KIND_LIST = ", ".join(KINDS)
_DEFAULTS: dict[str, dict[str, Any]] = {}  # resolved default values, filled below _check_value

# Names people reach for from other libraries, mapped to ours (for "did you mean").
_KIND_ALIASES = {alias: kind for kind, spec in KINDS.items() for alias in spec.aliases}
_FIELD_ALIASES = {
    "kernel": "kernel_size", "kernel_size": "size", "pool_size": "size", "window": "size",
    "strides": "stride", "out_channels": "filters", "channels": "filters", "units": "filters",
    "filters": "units", "out_features": "units", "neurons": "units", "p": "rate", "dropout": "rate",
    "pad": "padding", "act": "activation", "function": "activation", "type": "mode",
}
_SCALARS = (int, float, str, bool, type(None))
_BAD = object()


@dataclass(frozen=True)
class BlockInfo:
    """What shape inference found for one block (shapes exclude the batch axis)."""

    index: int
    kind: str
    name: str  # block["name"], or automatic: kind + per-kind 1-based counter ("conv1", "dense2")
    input_shape: Shape | None  # (C, H, W) or (features,); None when unknown (upstream error)
    output_shape: Shape | None
    params: int
    macs: int
    activation_bytes: int  # float32 bytes of one sample's output
    geometry: Geometry = NO_GEOMETRY  # what the layers and exporters need: kernel, stride, pads...
    implicit_flatten: bool = False  # dense fed (C, H, W): the network flattens first
    block: dict = field(default_factory=dict, hash=False)  # the block with defaults filled
    buffers: int = 0  # values saved with the weights but not trained (BatchNorm's running statistics)
    children: tuple = ()  # a group's inner infos: a tuple of them (residual), or one tuple per path (branches)


_new = object.__new__


def _block_info(index, kind, name, input_shape, output_shape, params, macs, activation_bytes, geometry,
                implicit_flatten, block, buffers=0, children=()) -> BlockInfo:
    """BlockInfo(...) without the frozen dataclass __init__ (11 object.__setattr__ calls: ~3x slower)."""
    info = _new(BlockInfo)
    info.__dict__.update(index=index, kind=kind, name=name, input_shape=input_shape, output_shape=output_shape,
                         params=params, macs=macs, activation_bytes=activation_bytes, geometry=geometry,
                         implicit_flatten=implicit_flatten, block=block, buffers=buffers, children=children)
    return info


@dataclass(frozen=True)
class Inference:
    """Shape inference of a whole project: per-block results and every problem found."""

    blocks: tuple[BlockInfo, ...]
    problems: tuple[Problem, ...]
    input_shape: Shape | None
    output_shape: Shape | None

    @property
    def ok(self) -> bool:
        return not any(p.severity == ERROR for p in self.problems)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == WARNING]

    @property
    def notes(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == NOTE]

    @property
    def total_params(self) -> int:
        return sum(b.params for b in self.blocks)

    @property
    def total_buffers(self) -> int:
        return sum(b.buffers for b in self.blocks)

    @property
    def total_macs(self) -> int:
        return sum(b.macs for b in self.blocks)

    @property
    def total_activation_bytes(self) -> int:
        return sum(b.activation_bytes for b in self.blocks)

    def problems_for(self, index: int) -> list[Problem]:
        """Problems of the block at 0-based ``index``, a group's inner blocks' included."""
        return [p for p in self.problems if p.block == index]

    def problems_at(self, address: tuple[int, ...]) -> list[Problem]:
        """Problems of the block at ``address`` (block, lane, index, ...) itself, not those inside it."""
        address = tuple(address)
        return [p for p in self.problems if p.address == address]

    def info_at(self, address: tuple[int, ...]) -> BlockInfo | None:
        """What inference found for the block at ``address``, or None where it found nothing."""
        from netbuilder.core.blocks import kind_of

        infos = self.blocks
        info = None
        for depth in range(0, len(address), 2):
            i = address[depth]
            if not 0 <= i < len(infos):
                return None
            info = infos[i]
            if depth + 1 < len(address):
                spec = kind_of(info.block)
                lanes = spec.lane_infos(info) if spec is not None else []
                lane = address[depth + 1]
                if not 0 <= lane < len(lanes):
                    return None
                infos = lanes[lane]
        return info


def validate(project: Project) -> Inference:
    """The inference of ``project``; raises ProjectError listing every problem if any is an error."""
    result = infer(project)
    if not result.ok:
        name = getattr(project, "name", None)
        raise ProjectError(result.problems, name if isinstance(name, str) else None)
    return result


def infer(project: Project) -> Inference:
    """Shapes, parameter counts and problems of every block; never raises."""
    problems: list[Problem] = []
    add = problems.append
    input_shape = _check_input_shape(getattr(project, "input_shape", None), add)
    num_classes = getattr(project, "num_classes", None)
    if num_classes is not None and not (type(num_classes) is int and 1 <= num_classes <= MAX_INT):
        add(Problem(f"num_classes must be a whole number from 1 to {MAX_INT:,} (or empty: take it from the "
                    f"dataset), got {_show(num_classes)}", field="num_classes", value=num_classes))
        num_classes = None

    blocks = getattr(project, "blocks", None)
    if not isinstance(blocks, list):
        add(Problem(f"blocks must be a list, got {_show(blocks)}", field="blocks", value=blocks))
        blocks = []
    batch = getattr(getattr(project, "training", None), "batch_size", None)
    batch = batch if type(batch) is int and 1 <= batch <= MAX_INT else None
    infos, shape = _infer_pipeline(blocks, input_shape, add, batch, Pipeline(), top=True)

    if not blocks:
        add(Problem("the pipeline is empty: add blocks, e.g. flatten then dense with softmax",
                    field="blocks", value=[]))
    else:
        check_output(infos[-1], blocks[-1], num_classes, add)
    training = getattr(project, "training", None)
    loss = check_training(training, add)
    if infos and loss is not None:
        check_loss(infos[-1], loss, num_classes, add)
    if infos:
        check_class_weights(infos[-1], training, add)
    if blocks and input_shape is not None and all(info.output_shape is not None for info in infos):
        _check_memory(infos, blocks, input_shape, training, add)

    return Inference(tuple(infos), tuple(problems), input_shape, shape if blocks else None)


def _infer_pipeline(blocks: list, shape: Shape | None, add, batch: int | None, pipeline: Pipeline,
                    top: bool) -> tuple[list[BlockInfo], Shape | None]:
    """The infos and output shape of a pipeline of blocks fed ``shape`` (the network's, or a group's
    inner one: then its problems come through ``add`` prefixed with the path to the group)."""
    infos: list[BlockInfo] = []
    problems: list[Problem] = []  # this pipeline's, counted to tell a block's own errors
    counting = _counting(add, problems)
    add = counting
    auto_names = automatic_names(blocks)
    ctx = ShapeContext(add, pipeline, batch)
    ctx.nested = lambda inner, inner_shape, prefix, index, lane=0: _infer_pipeline(
        inner, inner_shape, _nested_add(add, prefix, index, lane), batch, copy.copy(ctx.pipeline), top=False)
    last = len(blocks) - 1 if top else -1  # inside a group no block is the network's last
    for i, block in enumerate(blocks):
        if not isinstance(block, dict):
            add(Problem(f"block {i + 1}: a block must be an object like {{\"kind\": \"conv\", ...}}, "
                        f"got {_show(block)}", block=i, value=block))
            infos.append(_block_info(i, "?", auto_names[i], shape, None, 0, 0, 0, NO_GEOMETRY, False, {}))
            shape = None
            continue
        kind = block.get("kind")
        auto_name = auto_names[i]
        if kind not in _FILLED if type(kind) is str else True:
            _unknown_kind(i, kind, add)
            infos.append(_block_info(i, kind if isinstance(kind, str) else "?", name_of(block, auto_name),
                                   shape, None, 0, 0, 0, NO_GEOMETRY, False, dict(block)))
            shape = None
            continue

        n_before = len(problems)
        filled, values = _check_fields(i, kind, block, add)
        # Only bad settings hide the shapes; a bad name or a misplaced softmax leaves them computable.
        has_error = len(problems) != n_before
        name = auto_name if block.get("name") is None else check_name(i, kind, block, auto_name, add)
        act = values.get("activation")
        if act == "softmax" and i != last:
            add(Problem(f"block {i + 1} ({kind}): softmax is only allowed on the last block (it turns the "
                        "outputs into class probabilities); use relu or another activation here",
                        block=i, kind=kind, field="activation", value=act))

        in_shape = shape
        shaped = None
        if in_shape is not None and not has_error:
            shaped = KINDS[kind].shape(ctx.at(i, kind, in_shape, values, filled, i == last,
                                              infos[-1] if infos else None))
        out = shaped.output if shaped is not None else None
        shape = out
        if out is None:
            nbytes = 0
        elif len(out) == 3:
            nbytes = 4 * out[0] * out[1] * out[2]
        else:
            nbytes = 4 * out[0]
        if shaped is None or out is None:
            # a group whose merge failed still shows what its inner blocks found
            children = shaped.children if shaped is not None else ()
            infos.append(_block_info(i, kind, name, in_shape, out, 0, 0, nbytes, NO_GEOMETRY, False, filled,
                                     children=children))
        else:
            infos.append(_block_info(i, kind, name, in_shape, out, shaped.params, shaped.macs,
                                     nbytes + shaped.inner_bytes, shaped.geometry, shaped.implicit_flatten, filled,
                                     shaped.buffers, shaped.children))
    if blocks:
        check_names_unique(infos, blocks, add)
    return infos, shape



def _counting(add, found: list):
    """``add`` that also keeps what it adds in ``found``."""
    def counted(problem: Problem) -> None:
        found.append(problem)
        add(problem)
    return counted


def _nested_add(add, prefix: str, index: int, lane: int):
    """``add`` for a group's inner pipeline ``lane``: messages gain the path ("block 4 › path 2 › "),
    the problem belongs to the group's block at ``index`` (the block one selects to see it), and its
    ``path`` says which inner block it is about."""
    def nested(problem: Problem) -> None:
        path = (lane, problem.block, *problem.path) if problem.block is not None else ()
        add(dataclasses.replace(problem, message=prefix + problem.message, block=index, path=path))
    return nested


def _check_memory(infos, blocks, input_shape, training, add) -> None:
    """Refuse what cannot fit in this machine's memory (warn past half of it), before allocating."""
    batch, optimizer = getattr(training, "batch_size", None), getattr(training, "optimizer", None)
    if not (type(batch) is int and 1 <= batch <= MAX_INT):
        return
    for severity, message, index, name in memory_problems(infos, blocks, input_shape, batch, optimizer,
                                                           machine_memory()):
        kind = infos[index].kind if index is not None else None
        if name == "training.batch_size" and severity == ERROR:  # the data may be smaller than the batch
            severity, message = WARNING, message + " (if the training split has fewer images, the batch is smaller)"
        add(Problem(message, severity=severity, block=index, kind=kind, field=name))


# -- fields -------------------------------------------------------------------------------------

def _pair(v: Any, minimum: int) -> Any:
    t = type(v)
    if t is int:
        return (v, v) if minimum <= v <= MAX_INT else _BAD
    if (t is list or t is tuple) and len(v) == 2:
        a, b = v
        if type(a) is int and type(b) is int and minimum <= a <= MAX_INT and minimum <= b <= MAX_INT:
            return (a, b)
    return _BAD


def _check_value(ftype: str, v: Any, fmin: Any, fmax: Any, choices: tuple) -> Any:
    """The value resolved for use (pairs as tuples), or _BAD."""
    t = type(v)
    if ftype == "int":
        return v if t is int and fmin <= v <= min(fmax, MAX_INT) else _BAD
    if ftype == "pair":
        return _pair(v, 1)
    if ftype == "choice":
        return v if t is str and v in choices else _BAD
    if ftype == "padding":
        if t is str:
            return v if v in PADDING_MODES else _BAD
        return _pair(v, 0)
    if ftype == "float":
        if (t is int or t is float) and fmin <= v <= fmax:  # NaN fails both comparisons
            return float(v)
        return _BAD
    if ftype == "optional_pair":
        return None if v is None else _pair(v, 1)
    if ftype == "bool":
        return v if t is bool else _BAD
    return _BAD


_DEFAULTS.update({kind: {f[0]: _check_value(f[1], f[2], f[3], f[4], f[5]) for f in fields}
                  for kind, fields in _SPECS.items()})
assert not any(v is _BAD for d in _DEFAULTS.values() for v in d.values())
# Defaults are immutable (ints, strings, None), so shallow copies of these dicts are safe.
_FILLED = {kind: {"kind": kind, **{f[0]: f[2] for f in fields}} for kind, fields in _SPECS.items()}
_STRUCTURE = {kind: spec.structure for kind, spec in KINDS.items()}
_FIELDS = {kind: {f[0]: (f[1], f[3], f[4], f[5]) for f in fields} for kind, fields in _SPECS.items()}


def _check_fields(i: int, kind: str, block: dict, add) -> tuple[dict, dict]:
    """(block with defaults filled, resolved values of the valid fields); reports bad and unknown fields."""
    # kind, every field (given or default), then extra keys: with_defaults' key order. Containers
    # are copied below so the result shares nothing mutable with the project.
    filled = {**_FILLED[kind], **block}
    values = _DEFAULTS[kind].copy()
    fieldmap = _FIELDS[kind]
    for key, v in block.items():
        spec = fieldmap.get(key)
        if spec is None:
            if key == "kind":
                continue
            if key in _STRUCTURE[kind]:  # a group's inner blocks: its shape rule reads them
                filled[key] = copy.deepcopy(v)
                continue
            if key != "name":
                add(_unknown_field(i, kind, key, v))
            if type(v) not in _SCALARS:
                filled[key] = copy.deepcopy(v)
            continue
        ftype, fmin, fmax, choices = spec
        t = type(v)
        # The common cases inline (this runs on every keystroke); the rest in _check_value.
        if t is int:
            if ftype == "int":
                r = v if fmin <= v <= MAX_INT else _BAD
            elif ftype == "pair" or ftype == "optional_pair":
                r = (v, v) if 1 <= v <= MAX_INT else _BAD
            else:
                r = _check_value(ftype, v, fmin, fmax, choices)
        elif t is str:
            r = v if ftype == "choice" and v in choices else _check_value(ftype, v, fmin, fmax, choices)
        elif t is list and len(v) == 2 and type(v[0]) is int and type(v[1]) is int:  # a [h, w] pair
            filled[key] = [v[0], v[1]]
            r = _check_value(ftype, v, fmin, fmax, choices)
        else:
            if t not in _SCALARS:
                filled[key] = copy.deepcopy(v)
            r = _check_value(ftype, v, fmin, fmax, choices)
        if r is _BAD:
            add(_field_problem(i, kind, key, ftype, v, fmin, fmax, choices))
            del values[key]
        else:
            values[key] = r
    return filled, values


def _field_problem(i: int, kind: str, name: str, ftype: str, v: Any, fmin, fmax, choices) -> Problem:
    head = f"block {i + 1} ({kind}): "
    if ftype == "int":
        what = f"a whole number of at least {int(fmin)}"
    elif ftype in ("pair", "optional_pair"):
        what = "a whole number of at least 1 or a [height, width] pair of them"
        if ftype == "optional_pair":
            what += " (or empty)"
    elif ftype == "padding":
        what = "'valid', 'same', a number of pixels (0 or more) or a [height, width] pair of them"
    elif ftype == "choice":
        what = "one of " + ", ".join(choices)
    elif ftype == "bool":
        what = "true or false"
    else:
        what = f"a number from {fmin:g} to {fmax:g}"
    hint = ""
    if isinstance(v, bool):
        hint = " (true/false is not a number)"
    elif any(type(n) is int and n > MAX_INT for n in (v if isinstance(v, (list, tuple)) else [v])):
        hint = f" (more than {MAX_INT:,}, the most any size may be)"
    elif isinstance(v, str) and ftype in ("choice", "padding"):
        hint = _suggest(v, choices or PADDING_MODES)
    return Problem(f"{head}{name} must be {what}, got {_show(v)}{hint}",
                   block=i, kind=kind, field=name, value=v)


def _unknown_field(i: int, kind: str, key: Any, v: Any) -> Problem:
    names = [f[0] for f in _SPECS[kind]]
    alias = _FIELD_ALIASES.get(key) if isinstance(key, str) else None
    hint = f' (did you mean "{alias}"?)' if alias in names else _suggest(key, names)
    if not hint:
        owners = [k for k, fields in _SPECS.items() if any(f[0] == key for f in fields)]
        if owners:
            hint = f" ({key} belongs to {'/'.join(owners)} blocks)"
    known = ", ".join(names) if names else "none besides an optional name"
    return Problem(f"block {i + 1} ({kind}): unknown field {_show(key)}{hint}; {kind} fields: {known}",
                   block=i, kind=kind, field=str(key), value=v)


def _unknown_kind(i: int, kind: Any, add) -> None:
    if not isinstance(kind, str):
        add(Problem(f"block {i + 1}: kind must be a string such as \"conv\", got {_show(kind)}",
                    block=i, field="kind", value=kind))
        return
    low = kind.lower()
    guess = _KIND_ALIASES.get(low) or (low if low in KINDS else None)
    if guess is None:
        match = difflib.get_close_matches(low, list(KINDS) + list(_KIND_ALIASES), n=1, cutoff=0.6)
        guess = (_KIND_ALIASES.get(match[0], match[0])) if match else None
    hint = f' (did you mean "{guess}"?)' if guess else ""
    add(Problem(f"block {i + 1} ({kind}): unknown kind {_show(kind)}{hint}; known kinds: {_KIND_LIST}",
                block=i, kind=kind, field="kind", value=kind))


# -- shapes -------------------------------------------------------------------------------------

def _check_input_shape(shape: Any, add) -> Shape | None:
    if (isinstance(shape, (tuple, list)) and len(shape) == 3
            and all(type(v) is int and 1 <= v <= MAX_INT for v in shape)):
        return tuple(shape)
    add(Problem(f"input_shape must be [channels, height, width], three whole numbers from 1 to {MAX_INT:,}, "
                f"got {_show(list(shape) if isinstance(shape, tuple) else shape)}",
                field="input_shape", value=shape))
    return None


