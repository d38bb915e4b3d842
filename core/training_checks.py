"""The checks of a pipeline's end against its training: the output against the classes, the last
activation against the loss (with a fix that fits the block), and the training settings' ranges."""
from __future__ import annotations

import math
from typing import Any

from netbuilder.core import class_weights
from netbuilder.core.augment import Augmentation
from netbuilder.core.blocks import ACTIVATIONS, KINDS
from netbuilder.core.early_stopping import EarlyStopping
from netbuilder.core.errors import WARNING, Problem
from netbuilder.core.project import LOSSES, OPTIMIZERS, _show, _suggest
from netbuilder.core.schedules import Schedule

MAX_INT = 2**31 - 1  # no size, count or setting may be larger: numpy and every runtime take it
_NUMBERS = (int, float)
_HAS_ACTIVATION = frozenset(kind for kind, spec in KINDS.items() if spec.field("activation"))


def _fmt_shape(shape) -> str:
    return " x ".join(str(v) for v in shape)


def _last_activation(info) -> str | None:
    act = info.block.get("activation") if info.kind in _HAS_ACTIVATION else None
    return act if act in ACTIVATIONS else None


def check_output(info, block: Any, num_classes: int | None, add) -> None:
    out = info.output_shape
    if out is None:
        return
    i, kind = info.index, info.kind
    if len(out) != 1:
        want = f"dense {num_classes}" if num_classes else "a dense block"
        add(Problem(f"block {i + 1} ({kind}): the last block must produce a flat (features,) output for "
                    f"classification, but it produces {_fmt_shape(out)}; end with flatten and {want}",
                    block=i, kind=kind, value=list(out)))
        return
    if num_classes is not None and out[0] != num_classes:
        classes = "1 class (one binary output)" if num_classes == 1 else f"{num_classes} classes"
        has_units = KINDS[kind].field("units") is not None if kind in KINDS else False
        fix = f"; set its units to {num_classes}" if has_units else f"; end with dense {num_classes}"
        add(Problem(f"block {i + 1} ({kind}): the last block produces {out[0]:,} outputs but the project has "
                    f"{classes}{fix}", block=i, kind=kind, field="units" if has_units else None,
                    value=out[0]))


def check_loss(info, loss: str, num_classes: int | None, add) -> None:
    if info.kind not in KINDS:
        return
    i, kind = info.index, info.kind
    act = _last_activation(info)
    if kind in _HAS_ACTIVATION:
        if act is None:
            return  # the bad activation value is reported already
        ends = f"block {i + 1} ({kind}) ends with {act}"
        field_name = "activation"
    else:
        ends = f"the last block, block {i + 1}, is a {kind} block"
        field_name = None
    classes = num_classes if num_classes is not None else 10

    def fix(activation: str) -> str:
        """The fix that fits the block: its own activation where it has one, else a block to end with."""
        if kind in _HAS_ACTIVATION:
            return f"set its activation to {activation}"
        units = 1 if activation == "sigmoid" else classes
        return f"end with a dense block of {units} unit{'s' if units != 1 else ''} and {activation}"

    if loss == "cross_entropy":
        if act != "softmax":
            add(Problem(f"block {i + 1} ({kind}): the loss cross_entropy needs softmax on the last block, but "
                        f"{ends}; {fix('softmax')}, or choose the squared_error loss",
                        block=i, kind=kind, field=field_name, value=act))
        elif num_classes == 1:
            add(Problem(f"block {i + 1} ({kind}): softmax over a single output is always 1, so nothing can be "
                        "learned; for one binary output use sigmoid with binary_cross_entropy",
                        block=i, kind=kind, field=field_name, value=act))
    elif loss == "binary_cross_entropy":
        if act != "sigmoid":
            add(Problem(f"block {i + 1} ({kind}): the loss binary_cross_entropy needs sigmoid on the last block, "
                        f"but {ends}; {fix('sigmoid')}",
                        block=i, kind=kind, field=field_name, value=act))
    elif act == "softmax":
        add(Problem(f"block {i + 1} ({kind}): softmax is usually trained with cross_entropy, not {loss}; "
                    "cross_entropy learns faster from confident mistakes",
                    block=i, kind=kind, field=field_name, value=act, severity=WARNING))
    elif act == "sigmoid" and num_classes is not None and num_classes > 2:
        add(Problem(f"block {i + 1} ({kind}): sigmoid outputs with squared_error on {num_classes} classes treat "
                    "each class separately; softmax with cross_entropy usually trains better",
                    block=i, kind=kind, field=field_name, value=act, severity=WARNING))


def _number(v: Any) -> bool:
    return type(v) in _NUMBERS and math.isfinite(v)


# The training settings that are objects, with the class that reads (and checks) each.
_OBJECT_SETTINGS = (("augmentation", Augmentation), ("schedule", Schedule), ("early_stopping", EarlyStopping))


def check_training(t: Any, add) -> str | None:
    """Report settings out of range; returns the loss name if it is a known one."""
    if t is None:
        add(Problem("training settings are missing", field="training"))
        return None

    def bad(name: str, rule: str, hint: str = "") -> None:
        v = getattr(t, name, None)
        add(Problem(f"training.{name} must be {rule}, got {_show(v)}{hint}", field=f"training.{name}", value=v))

    loss = getattr(t, "loss", None)
    if loss not in LOSSES:
        bad("loss", "one of " + ", ".join(LOSSES), _suggest(loss, LOSSES))
        loss = None
    optimizer = getattr(t, "optimizer", None)
    if optimizer not in OPTIMIZERS:
        bad("optimizer", "one of " + ", ".join(OPTIMIZERS), _suggest(optimizer, OPTIMIZERS))
    v = getattr(t, "learning_rate", None)
    if not (_number(v) and v > 0):
        bad("learning_rate", "a number greater than 0 (typically 0.001 to 0.1)")
    v = getattr(t, "momentum", None)
    if not (_number(v) and 0 <= v < 1):
        bad("momentum", "a number from 0 up to (not including) 1, typically 0.9")
    v = getattr(t, "weight_decay", None)
    if not (_number(v) and v >= 0):
        bad("weight_decay", "a number of at least 0")
    v = getattr(t, "batch_size", None)
    if not (type(v) is int and 1 <= v <= MAX_INT):
        bad("batch_size", f"a whole number from 1 to {MAX_INT:,}")
    v = getattr(t, "epochs", None)
    if not (type(v) is int and 1 <= v <= MAX_INT):
        bad("epochs", f"a whole number from 1 to {MAX_INT:,}")
    v = getattr(t, "validation_fraction", None)
    if not (_number(v) and 0 <= v < 1):
        bad("validation_fraction", "a number from 0 up to (not including) 1, e.g. 0.1 to keep 10% aside")
    v = getattr(t, "seed", None)
    if not (type(v) is int and v >= 0):
        bad("seed", "a whole number of at least 0")
    for name, setting in _OBJECT_SETTINGS:  # each object setting is checked by the module that applies it
        spec = getattr(t, name, None)
        if spec is not None:
            try:
                setting.from_spec(spec)
            except ValueError as exc:
                add(Problem(f"training.{exc}", field=f"training.{name}", value=spec))
    weights = getattr(t, "class_weights", None)
    problem = class_weights.spec_problem(weights)
    if problem:
        add(Problem(f"training.class_weights {problem}", field="training.class_weights", value=weights))
    return loss


def check_class_weights(info, t: Any, add) -> None:
    """A list of class weights against the classes the last block gives (two for one binary output)."""
    weights = getattr(t, "class_weights", None)
    out = info.output_shape
    if out is None or len(out) != 1 or class_weights.spec_problem(weights):
        return
    problem = class_weights.count_problem(weights, out[0])
    if problem:
        add(Problem(f"training.class_weights {problem}", field="training.class_weights", value=weights))
