"""The block kinds a pipeline is made of: one module per kind, listed here in palette order.

A block in a project is a plain dict: ``{"kind": "conv", "filters": 6, "kernel_size": 5, ...}``
with an optional ``"name"``. ``KINDS`` maps each kind name to its ``BlockKind`` (see ``base``),
which declares its fields, shape rule, engine layers, lowerings and palette entry; validation, the
network builder, the summary, the exporters and the GUI all read it. To add a kind: write its
module, list it below, draw its icon.
"""
from __future__ import annotations

import copy
from typing import Any

from netbuilder.core.blocks.activation import Activation
from netbuilder.core.blocks.base import (
    ACTIVATIONS,
    LEAKY_RELU_SLOPE,
    PADDING_MODES,
    BlockKind,
    Field,
    Geometry,
    PaletteEntry,
)
from netbuilder.core.blocks.conv import Conv
from netbuilder.core.blocks.dense import Dense
from netbuilder.core.blocks.dropout import Dropout
from netbuilder.core.blocks.flatten import Flatten
from netbuilder.core.blocks.pool import MODES as POOL_MODES
from netbuilder.core.blocks.pool import Pool

KINDS: dict[str, BlockKind] = {k.kind: k for k in (Conv(), Pool(), Dense(), Flatten(), Activation(), Dropout())}

__all__ = ["ACTIVATIONS", "KINDS", "LEAKY_RELU_SLOPE", "PADDING_MODES", "POOL_MODES", "BlockKind", "Field",
           "Geometry", "PaletteEntry", "default_block", "kind_of", "with_defaults"]


def kind_of(block: Any) -> BlockKind | None:
    """The ``BlockKind`` of a block dict, a BlockInfo or a kind name; None for anything unknown."""
    if isinstance(block, str):
        return KINDS.get(block)
    kind = block.get("kind") if isinstance(block, dict) else getattr(block, "kind", None)
    return KINDS.get(kind) if isinstance(kind, str) else None


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
