"""The block kinds a pipeline is made of: one module per kind, found in this package.

A block in a project is a plain dict: ``{"kind": "conv", "filters": 6, "kernel_size": 5, ...}``
with an optional ``"name"``. ``KINDS`` maps each kind name to its ``BlockKind`` (see ``base``),
which declares its fields, shape rule, engine layers, lowerings and palette entry; validation, the
network builder, the summary, the exporters and the GUI all read it. To add a kind: write its
module, list it below, draw its icon.
"""
from __future__ import annotations

import copy
import importlib
import pkgutil
from typing import Any

from netbuilder.core.blocks.base import (
    ACTIVATIONS,
    LEAKY_RELU_SLOPE,
    PADDING_MODES,
    BlockKind,
    Field,
    Geometry,
    PaletteEntry,
)
from netbuilder.core.blocks.pool import MODES as POOL_MODES

_HELPERS = ("base", "window", "group")  # modules of this package that declare no kind


def _discover() -> dict[str, BlockKind]:
    """Every ``BlockKind`` subclass of this package's modules, in palette order (``position``)."""
    found = []
    for module_info in pkgutil.iter_modules(__path__):
        if module_info.name in _HELPERS:
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        found += [obj for obj in vars(module).values()
                  if isinstance(obj, type) and issubclass(obj, BlockKind) and obj is not BlockKind
                  and obj.__module__ == module.__name__]
    kinds = sorted((cls() for cls in found), key=lambda k: (k.position, k.kind))
    return {k.kind: k for k in kinds}


KINDS: dict[str, BlockKind] = _discover()

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
    return KINDS[kind].default()


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
