"""A text summary of a project's network, like Keras's model.summary(): one row per block, totals, problems."""
from __future__ import annotations

from typing import Any

from netbuilder.core.blocks import KINDS, kind_of, with_defaults
from netbuilder.core.errors import ERROR, NOTE, WARNING
from netbuilder.core.inference import Inference, infer
from netbuilder.core.project import Project
from netbuilder.core.speed import EpochEstimate

_RULE = "-"  # ASCII: the CLI prints this on consoles that may not be UTF-8


def format_shape(shape: Any) -> str:
    """(6, 28, 28) -> "6 x 28 x 28", (10,) -> "10", None (unknown) -> "?"."""
    if shape is None:
        return "?"
    try:
        return " x ".join(str(v) for v in shape)
    except TypeError:
        return str(shape)


def short_settings(block: dict) -> str:
    """A one-line description of a block, e.g. "conv 6 @ 5x5 · stride 1 · same · relu".

    Missing fields show their defaults; invalid values are shown as written, never raised on.
    """
    if not isinstance(block, dict):
        return f"not a block: {block!r}"
    kind = block.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        return f"unknown kind {kind!r}"
    return KINDS[kind].describe(with_defaults(block))


def nested_rows(infos, number: str = "", depth: int = 0, lane: tuple = ()):
    """(number, depth, info, address) for every block, a group's inner ones after it, indented one
    deeper: "4", "4.1", "4.2" for a residual group's, "5.p1.1" for the first block of path 1 of
    branches; ``address`` as in core.addresses."""
    for info in infos:
        label = f"{number}{info.index + 1}"
        address = (*lane, info.index)
        yield label, depth, info, address
        spec = kind_of(info.block)
        if spec is None:
            continue
        lanes = spec.lane_infos(info)
        for k, inner in enumerate(lanes):
            prefix = f"{label}.p{k + 1}." if spec.side_by_side else f"{label}."
            yield from nested_rows(inner, prefix, depth + 1, (*address, k))


def format_summary(project: Project, inference: Inference | None = None, timing: EpochEstimate | None = None) -> str:
    """The summary table of ``project`` (inferred now unless ``inference`` is given), with the
    estimated training time when ``timing`` is given (it is measured on this machine)."""
    result = inference if inference is not None else infer(project)
    rows = [("#", "block", "output shape", "params", "MACs")]
    listed = list(nested_rows(result.blocks))
    name_width = max((len("  " * depth + info.name) for _, depth, info, _ in listed), default=0)
    for number, depth, info, _ in listed:
        known = info.output_shape is not None
        rows.append((
            number,
            f"{('  ' * depth + info.name).ljust(name_width)}  {short_settings(info.block)}",
            format_shape(info.output_shape),
            f"{info.params:,}" if known else "?",  # a group's row: the total of its inner blocks
            f"{info.macs:,}" if known else "?",
        ))
    widths = [max(len(row[c]) for row in rows) for c in range(5)]
    right = (True, False, True, True, True)

    def line(row) -> str:
        cells = (cell.rjust(w) if r else cell.ljust(w) for cell, w, r in zip(row, widths, right))
        return "  ".join(cells).rstrip()

    width = sum(widths) + 2 * 4
    classes = getattr(project, "num_classes", None)
    head = f"{project.name}: input {format_shape(result.input_shape)}"
    if classes is not None:
        head += f" · {classes} {'class (one binary output)' if classes == 1 else 'classes'}"
    out = [head, "=" * width, line(rows[0]), _RULE * width]
    out += [line(row) for row in rows[1:]]
    out.append("=" * width)
    out.append(f"Total params: {result.total_params:,}")
    if result.total_buffers:
        out.append(f"Total buffers: {result.total_buffers:,} (saved with the weights, not trained)")
    out.append(f"Total MACs per sample: {result.total_macs:,}")
    out.append(f"Activation memory per sample: {result.total_activation_bytes / 1024:,.1f} KB (float32)")
    if timing is not None:
        out.append(f"Training time: {timing.text()}")
    for severity, title in ((ERROR, "Errors"), (WARNING, "Warnings"), (NOTE, "Notes")):
        found = [p for p in result.problems if p.severity == severity]
        if found:
            out.append(f"{title}:")
            out += [f"  - {p.message}" for p in found]
    return "\n".join(out) + "\n"
