"""Block names: the automatic ones ("conv1", "pool1"), what a name may be, and uniqueness.

Names are what every weights file and export calls a block's parameters, so they must be spelt
alike by every runtime: ASCII identifiers, at most ``MAX_NAME`` characters.
"""
from __future__ import annotations

from typing import Any

from netbuilder.core.errors import Problem
from netbuilder.core.project import _show

MAX_NAME = 64  # characters in a block name: a label on a card, not a document


def automatic_names(blocks: list) -> list[str]:
    """The name each block goes by when it has none of its own: its kind and a per-kind counter
    ("conv1", "pool1", "conv2"); "block<n>" for anything without a kind."""
    counters: dict[str, int] = {}
    names = []
    for block in blocks:
        kind = block.get("kind") if isinstance(block, dict) else None
        prefix = kind if type(kind) is str else "block"
        counters[prefix] = counters.get(prefix, 0) + 1
        names.append(f"{prefix}{counters[prefix]}")
    return names


def effective_name(block: Any, auto: str) -> str:
    """The name a block goes by: its own if it has a valid one, else ``auto``."""
    return name_of(block, auto) if isinstance(block, dict) else auto


def valid_name(name: Any) -> bool:
    """ASCII identifiers only: every runtime spells them alike. Python folds "ﬁ" (a ligature) and
    fullwidth letters to plain ones (NFKC), so such a name would become another in a PyTorch
    module and no longer match its weights."""
    return isinstance(name, str) and len(name) <= MAX_NAME and name.isascii() and name.isidentifier()


def name_of(block: dict, auto: str) -> str:
    name = block.get("name")
    return name if valid_name(name) else auto


def check_name(i: int, kind: str, block: dict, auto: str, add) -> str:
    name = block.get("name")
    if name is None:
        return auto
    if valid_name(name):
        return name
    shown = _show(name) if not isinstance(name, str) or len(name) <= MAX_NAME else f"of {len(name):,} characters"
    add(Problem(f"block {i + 1} ({kind}): name {shown} must be a single word of at most {MAX_NAME} ASCII "
                f"letters, digits and underscores, not starting with a digit (e.g. \"{kind}_1\"), or left empty",
                block=i, kind=kind, field="name", value=name))
    return auto


def check_names_unique(infos: list, blocks: list, add) -> None:
    seen: dict[str, int] = {}
    for info in infos:
        first = seen.setdefault(info.name, info.index)
        if first == info.index:
            continue
        i = info.index
        explicit = isinstance(blocks[i], dict) and blocks[i].get("name") == info.name
        other = infos[first]
        other_explicit = isinstance(blocks[first], dict) and blocks[first].get("name") == other.name
        if not explicit and not other_explicit:
            continue  # two automatic names: only possible with unknown kinds, reported already
        if explicit:
            how = "automatic name" if not other_explicit else "name"
            add(Problem(f"block {i + 1} ({info.kind}): name {_show(info.name)} is already the {how} of block "
                        f"{first + 1} ({other.kind}); names must be unique",
                        block=i, kind=info.kind, field="name", value=info.name))
        else:  # our automatic name clashes with a name the user gave an earlier block
            add(Problem(f"block {first + 1} ({other.kind}): name {_show(other.name)} is also the automatic name "
                        f"of block {i + 1} ({info.kind}); choose another name",
                        block=first, kind=other.kind, field="name", value=other.name))
