"""Addresses of blocks in a pipeline with groups, for editors that reach inside them.

A *lane* is one pipeline: ``()`` is the network's, ``(4, 1)`` the second inner pipeline (path 2)
of the group at index 4, ``(4, 1, 0, 0)`` the inner pipeline of the group that is block 1 there.
A block's *address* is its lane plus its index in it: ``(4, 1, 0)`` is "block 5 › path 2 ›
block 1". Problems carry the same addresses (``Problem.address``).
"""
from __future__ import annotations

from collections.abc import Iterator

from netbuilder.core.blocks import kind_of

Address = tuple[int, ...]


def lane_of(address: Address) -> Address:
    """The lane holding the block at ``address``."""
    return tuple(address[:-1])


def pipeline_at(blocks: list, lane: Address) -> list | None:
    """The live list of blocks that is ``lane`` of ``blocks`` (edit it to edit the project), or None."""
    current = blocks
    for depth in range(0, len(lane), 2):
        i, k = lane[depth], lane[depth + 1]
        if not (isinstance(current, list) and 0 <= i < len(current) and isinstance(current[i], dict)):
            return None
        spec = kind_of(current[i])
        lanes = spec.lanes(current[i]) if spec is not None else None
        if lanes is None or not 0 <= k < len(lanes):
            return None
        current = lanes[k]
    return current if isinstance(current, list) else None


def block_at(blocks: list, address: Address) -> dict | None:
    """The block at ``address``, or None when there is none."""
    if not address:
        return None
    pipeline = pipeline_at(blocks, lane_of(address))
    i = address[-1]
    if pipeline is None or not 0 <= i < len(pipeline) or not isinstance(pipeline[i], dict):
        return None
    return pipeline[i]


def walk(blocks: list, lane: Address = ()) -> Iterator[Address]:
    """Every block's address, in reading order: a group, then the blocks of each of its lanes."""
    for i, block in enumerate(blocks):
        address = (*lane, i)
        yield address
        spec = kind_of(block) if isinstance(block, dict) else None
        for k, inner in enumerate((spec.lanes(block) if spec is not None else None) or []):
            yield from walk(inner, (*address, k))


def inside(address: Address, container: Address) -> bool:
    """Whether ``address`` is ``container`` itself or lies inside it (in one of its lanes)."""
    return tuple(address[:len(container)]) == tuple(container)


def after_removal(address: Address, removed: Address) -> Address:
    """``address`` once the block at ``removed`` is taken out of its lane (later siblings, and
    everything inside them, move up by one). ``address`` must not lie inside ``removed``."""
    lane, i = lane_of(removed), removed[-1]
    depth = len(lane)
    if len(address) > depth and tuple(address[:depth]) == lane and address[depth] > i:
        return (*address[:depth], address[depth] - 1, *address[depth + 1:])
    return tuple(address)



def address_text(blocks: list, address: Address) -> str:
    """"block 5 › path 2 › block 1", as problem messages name a block (a residual group has one
    lane, so it is not named)."""
    parts = [f"block {address[0] + 1}"]
    for depth in range(1, len(address) - 1, 2):
        group = block_at(blocks, address[:depth])
        spec = kind_of(group) if group is not None else None
        if spec is not None and spec.side_by_side:
            parts.append(f"path {address[depth] + 1}")
        parts.append(f"block {address[depth + 1] + 1}")
    return " › ".join(parts)
