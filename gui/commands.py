"""Undoable edits of a project. ``redo``/``undo`` change the model only (through the document's
private mutators, which emit its signals); views update by listening, never from here."""
from __future__ import annotations

import copy
import weakref
from typing import TYPE_CHECKING, Any

from PySide6.QtGui import QUndoCommand

if TYPE_CHECKING:
    from netbuilder.gui.document import ProjectDocument

_SET_FIELD_ID = 1001  # consecutive edits of one field (typing in a spin box) merge into one step
# Project values whose every change is an undo step of its own (never merged with the one before).
_OWN_STEPS = ("dataset", "training.augmentation", "training.schedule", "training.early_stopping",
              "training.class_weights")


class _DocumentCommand(QUndoCommand):
    """A command that reaches its document through a weak reference.

    The undo stack (a child of the document) owns the commands; a strong reference back would
    make a cycle that Python's garbage collector may take apart in the wrong order, deleting
    commands under the stack (a crash). With a weak one the document dies first, as in C++.
    """

    def __init__(self, doc: ProjectDocument, text: str):
        super().__init__(text)
        self._doc = weakref.ref(doc)

    @property
    def doc(self) -> ProjectDocument:
        return self._doc()


def _describe(block: dict) -> str:
    return block.get("name") or block.get("kind", "block")


# Each edit names the pipeline it happens in by its lane (see core.addresses): () for the network's,
# or one inside a group.
class InsertBlocks(_DocumentCommand):
    """Insert blocks at ``index`` (add, paste, duplicate)."""

    def __init__(self, doc: ProjectDocument, index: int, blocks: list[dict], text: str | None = None,
                 lane: tuple = ()):
        default = f"Add {_describe(blocks[0])}" if len(blocks) == 1 else f"Add {len(blocks)} blocks"
        super().__init__(doc, text or default)
        self.index, self.blocks, self.lane = index, copy.deepcopy(blocks), tuple(lane)

    def redo(self) -> None:
        self.doc._insert(self.index, copy.deepcopy(self.blocks), self.lane)

    def undo(self) -> None:
        self.doc._remove(list(range(self.index, self.index + len(self.blocks))), self.lane)


class RemoveBlocks(_DocumentCommand):
    """Remove blocks; remembers where each was, so undo puts every one back in its place."""

    def __init__(self, doc: ProjectDocument, indices: list[int], lane: tuple = ()):
        indices = sorted(set(indices))
        pipeline = doc.pipeline_at(lane)
        blocks = [pipeline[i] for i in indices]
        super().__init__(doc, f"Delete {_describe(blocks[0])}" if len(blocks) == 1 else f"Delete {len(blocks)} blocks")
        self.indices, self.blocks, self.lane = indices, copy.deepcopy(blocks), tuple(lane)

    def redo(self) -> None:
        self.doc._remove(self.indices, self.lane)

    def undo(self) -> None:
        for i, block in zip(self.indices, self.blocks):  # ascending: each lands where it was
            self.doc._insert(i, [copy.deepcopy(block)], self.lane)


class MoveBlock(_DocumentCommand):
    """Move the block at ``source`` so that it ends up at index ``target``."""

    def __init__(self, doc: ProjectDocument, source: int, target: int, lane: tuple = ()):
        super().__init__(doc, f"Move {_describe(doc.pipeline_at(lane)[source])}")
        self.source, self.target, self.lane = source, target, tuple(lane)

    def redo(self) -> None:
        self.doc._move(self.source, self.target, self.lane)

    def undo(self) -> None:
        self.doc._move(self.target, self.source, self.lane)


class SetBlockField(_DocumentCommand):
    """Set one field of one block, or with ``remove`` take the key out (e.g. back to an automatic name)."""

    def __init__(self, doc: ProjectDocument, index: int, field: str, value: Any, remove: bool = False,
                 lane: tuple = ()):
        block = doc.block_at((*lane, index))
        super().__init__(doc, f"{'Reset' if remove else 'Change'} {_describe(block)} {field}")
        self.index, self.field, self.lane = index, field, tuple(lane)
        self.had = field in block
        self.old = copy.deepcopy(block.get(field))
        self.new = copy.deepcopy(value)
        self.keep = not remove

    def id(self) -> int:
        return _SET_FIELD_ID

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, SetBlockField) or (other.lane, other.index, other.field) != (
                self.lane, self.index, self.field):
            return False
        self.new, self.keep = copy.deepcopy(other.new), other.keep
        return True

    def redo(self) -> None:
        self.doc._set_field(self.index, self.field, copy.deepcopy(self.new), present=self.keep, lane=self.lane)

    def undo(self) -> None:
        self.doc._set_field(self.index, self.field, copy.deepcopy(self.old), present=self.had, lane=self.lane)


class SetProjectValue(_DocumentCommand):
    """Set a project-level value: ``name``, ``input_shape``, ``num_classes``, ``dataset`` or
    ``training.<field>``."""

    def __init__(self, doc: ProjectDocument, key: str, value: Any, text: str | None = None):
        super().__init__(doc, text or f"Change {key.replace('training.', '').replace('_', ' ')}")
        self.key = key
        self.old = copy.deepcopy(doc.get_value(key))
        self.new = copy.deepcopy(value)

    def id(self) -> int:
        return _SET_FIELD_ID + 1

    def mergeWith(self, other: QUndoCommand) -> bool:
        # Typing into a field merges; choosing another dataset, or changing one augmentation setting
        # (a field of its own in the Data tab), is a deliberate step of its own.
        if not isinstance(other, SetProjectValue) or other.key != self.key or self.key in _OWN_STEPS:
            return False
        self.new = copy.deepcopy(other.new)
        return True

    def redo(self) -> None:
        self.doc._set_value(self.key, copy.deepcopy(self.new))

    def undo(self) -> None:
        self.doc._set_value(self.key, copy.deepcopy(self.old))
