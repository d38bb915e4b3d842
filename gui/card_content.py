"""What each canvas card shows (``CardContent``), derived from the project and its inference:
the input, every block (inner ones by address) and the output, and a group's join."""
from __future__ import annotations

import os
from dataclasses import dataclass

from netbuilder.core.addresses import block_at, pipeline_at
from netbuilder.core.block_names import automatic_names, effective_name
from netbuilder.core.errors import ERROR, NOTE, WARNING
from netbuilder.core.inference import Inference
from netbuilder.core.project import Project
from netbuilder.core.summary import format_shape, short_settings
from netbuilder.gui import theme
from netbuilder.gui.palette import block_help

# A group's problems with these fields are about how its lanes join: its join card shows them.
JOIN_FIELDS = ("merge", "projection")


def short_message(message: str) -> str:
    """A problem message without its "block 3 (conv): " prefix, which inside a group names the path
    ("block 3 › path 2 › block 1 (conv): "): the card already says which block."""
    head, sep, rest = message.partition("): ")
    return rest if sep and head.startswith("block ") and "(" in head else message


@dataclass(frozen=True)
class CardContent:
    """What a card shows; equal contents mean nothing to repaint."""

    role: str                       # "block", "input" or "output"
    kind: str                       # for the accent colour
    icon: str                       # icon stem ("conv", "pool_max", "input")
    number: str                     # "3" (1-based) for blocks, "" for input/output
    title: str                      # block name, "Input", "Output"
    settings: str                   # short settings, dataset, ...
    shape_text: str                 # "6 x 28 x 28", "shape unknown", "10 classes"
    params_text: str                # "156 params", "" for input/output
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    unknown: bool = False           # shape unknown because of a problem upstream
    help: str = ""                  # what the block does, for the tooltip



def _dataset_label(spec: object) -> str:
    if not isinstance(spec, dict):
        return "no dataset"
    kind = spec.get("kind", "shapes")
    if kind == "shapes":
        return "built-in shapes dataset"
    path = spec.get("path") or spec.get("train_images")
    return f"{kind} dataset" + (f" · {os.path.basename(str(path))}" if path else "")


def block_content(project: Project, inference: Inference, address: int | tuple) -> CardContent:
    """The card of the block at ``address`` (an index of the network's pipeline, or a group's inner
    block's address): name, short settings, output shape, parameters and its own problems."""
    address = (address,) if isinstance(address, int) else tuple(address)
    block = block_at(project.blocks, address)
    info = inference.info_at(address)
    problems = inference.problems_at(address)
    kind = block.get("kind") if isinstance(block, dict) else None
    if info is None:
        # inside a group inference could not reach (its input is unknown): the name it will have
        siblings = pipeline_at(project.blocks, address[:-1]) or []
        autos = automatic_names(siblings)
        title = effective_name(block, autos[address[-1]]) if isinstance(block, dict) else f"block {address[-1] + 1}"
    else:
        title = info.name
    errors = tuple(p.message for p in problems if p.severity == ERROR and p.field not in JOIN_FIELDS)
    known = info is not None and info.output_shape is not None
    return CardContent(
        role="block",
        kind=kind if isinstance(kind, str) else "?",
        icon=theme.icon_name(block) if isinstance(block, dict) else "unknown",
        number=str(address[-1] + 1),
        title=title,
        settings=short_settings(block),
        shape_text=format_shape(info.output_shape) if known else "shape unknown",
        params_text=f"{info.params:,} params" if known else "? params",
        errors=errors,
        warnings=tuple(p.message for p in problems if p.severity == WARNING and p.field not in JOIN_FIELDS),
        notes=tuple(p.message for p in problems if p.severity == NOTE and p.field not in JOIN_FIELDS),
        unknown=not known and not errors,
        help=block_help(block) if isinstance(block, dict) else "",
    )


def _project_problems(inference: Inference, fields: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(errors, warnings) not tied to a block whose field is one of ``fields``."""
    found = [p for p in inference.problems if p.block is None and p.field in fields]
    return (tuple(p.message for p in found if p.severity == ERROR),
            tuple(p.message for p in found if p.severity == WARNING))


def input_content(project: Project, inference: Inference) -> CardContent:
    shape = inference.input_shape
    errors, warnings = _project_problems(inference, ("input_shape", "dataset", "dataset.kind"))
    return CardContent(
        role="input", kind="input", icon="input", number="", title="Input",
        settings=_dataset_label(project.dataset),
        shape_text=format_shape(shape) if shape else "shape unknown", params_text="",
        errors=errors, warnings=warnings,
        help="What the network receives: channels x height x width of each image. "
             "Double-click to choose the data.")


def output_content(project: Project, inference: Inference) -> CardContent:
    classes = project.num_classes
    errors, warnings = _project_problems(inference, ("num_classes",))
    if classes is None:
        shape_text = "classes from the dataset"
    else:
        shape_text = "1 class (binary)" if classes == 1 else f"{classes} classes"
    if not project.blocks:
        settings = "the pipeline is empty"
    elif inference.output_shape is None:
        settings = "network output unknown"
    else:
        settings = f"network output {format_shape(inference.output_shape)}"
    return CardContent(
        role="output", kind="output", icon="output", number="", title="Output",
        settings=settings, shape_text=shape_text, params_text="", errors=errors, warnings=warnings,
        help="The network's answer: the last block must give one value per class.")
