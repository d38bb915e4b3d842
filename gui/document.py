"""The project being edited: the one object that owns it, its file and its undo stack.

Views (canvas, inspector, summary) read ``project`` and ``inference`` and listen to the signals;
they change the project only through the edit methods here, each an undoable command.
"""
from __future__ import annotations

import copy
import os
from dataclasses import fields
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoStack

from netbuilder.core.addresses import Address, after_removal, block_at, inside, lane_of, pipeline_at
from netbuilder.core.block_names import automatic_names, effective_name
from netbuilder.core.blocks import KINDS, default_block, kind_of
from netbuilder.core.inference import Inference, infer
from netbuilder.core.project import Project, TrainingSettings, load_project, save_project
from netbuilder.core.resources import resource_path
from netbuilder.gui import commands

EXAMPLES_DIR = resource_path("examples")


class ProjectDocument(QObject):
    """Owns the edited ``Project``, its path and undo stack; re-infers shapes after every edit."""

    # The block list changed in structure (insert, remove, move) or content: re-read everything.
    blocksChanged = Signal()
    # One block's field changed (index): views may refresh just that card.
    blockChanged = Signal(int)
    # A project-level value changed (key such as "input_shape" or "training.learning_rate").
    valueChanged = Signal(str)
    # Shape inference was re-run; carries the new Inference.
    inferenceChanged = Signal(object)
    # A different project was loaded or created (new, open): views rebuild from scratch.
    projectReplaced = Signal()
    # The selected block (index, -1 for none) changed. Selection is shared view state, not undoable.
    selectionChanged = Signal(int)
    # The file path changed (after open / save as); carries the path or "".
    pathChanged = Signal(str)
    # Whether there are unsaved changes.
    modifiedChanged = Signal(bool)
    # Editing was locked or unlocked (while training); carries the reason or "".
    lockChanged = Signal(str)

    def __init__(self, project: Project | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.undo_stack = QUndoStack(self)
        self.undo_stack.cleanChanged.connect(self._clean_changed)
        self._project = project if project is not None else Project()
        self._path: Path | None = None
        self._selected_path: Address = ()
        self._selected_count = 1
        self._lock_reason = ""
        self._inference = infer(self._project)

    # --- reading ----------------------------------------------------------------------------
    @property
    def project(self) -> Project:
        """The live project. Read it; change it only through this document's edit methods."""
        return self._project

    @property
    def inference(self) -> Inference:
        return self._inference

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def modified(self) -> bool:
        return not self.undo_stack.isClean()

    @property
    def selected(self) -> int:
        """The selected top-level block, or the group holding the selected inner block (-1: none)."""
        return self._selected_path[0] if self._selected_path else -1

    @property
    def selected_path(self) -> Address:
        """The selected block's address (block, lane, index, ...; see core.addresses); () for none."""
        return self._selected_path

    @property
    def selected_count(self) -> int:
        """How many consecutive blocks of the selected one's lane are selected, from it on (0: none)."""
        return self._selected_count if self._selected_path else 0

    def block_at(self, address: Address) -> dict | None:
        return block_at(self._project.blocks, address)

    def pipeline_at(self, lane: Address) -> list | None:
        return pipeline_at(self._project.blocks, lane)

    @property
    def locked(self) -> bool:
        return bool(self._lock_reason)

    @property
    def lock_reason(self) -> str:
        return self._lock_reason

    def get_value(self, key: str) -> Any:
        """A project-level value by key: "name", "input_shape", ..., or "training.<field>"."""
        if key.startswith("training."):
            return getattr(self._project.training, key.split(".", 1)[1])
        return getattr(self._project, key)

    # --- edits (each one undoable) ------------------------------------------------------------
    def add_block(self, kind: str, index: int | None = None) -> int:
        """Insert a new block of ``kind`` with default settings; returns its index."""
        if kind not in KINDS:
            raise ValueError(f"unknown block kind {kind!r}")
        return self.insert_blocks([default_block(kind)], index)

    def insert_blocks(self, blocks: list[dict], index: int | None = None, text: str | None = None,
                      lane: Address = (), keep_names: bool = False) -> int:
        """Insert copies of ``blocks`` at ``index`` of ``lane`` (default: the end of the network's
        pipeline); returns the first index. They get fresh names unless ``keep_names`` (a move)
        and no other block of the lane has theirs."""
        pipeline = self.pipeline_at(lane)
        if not blocks or pipeline is None or not self._can_edit():
            return -1
        n = len(pipeline)
        index = n if index is None else max(0, min(index, n))
        new = [copy.deepcopy(b) if keep_names else self._unnamed(b) for b in blocks]
        after = [*range(index), *new, *range(index, n)]
        pins, named = self._names_kept(after, lane)
        self._push_keeping_names(pins, commands.InsertBlocks(self, index, named, text, lane), lane)
        self.select_path((*lane, index + len(blocks) - 1))
        return index

    def remove_blocks(self, indices: list[int], lane: Address = ()) -> None:
        pipeline = self.pipeline_at(lane)
        if pipeline is None:
            return
        indices = [i for i in indices if 0 <= i < len(pipeline)]
        if indices and self._can_edit():
            gone = set(indices)
            pins, _ = self._names_kept([i for i in range(len(pipeline)) if i not in gone], lane)
            self._push_keeping_names(pins, commands.RemoveBlocks(self, indices, lane), lane)

    def duplicate_block(self, index: int, lane: Address = ()) -> int:
        pipeline = self.pipeline_at(lane)
        if pipeline is None or not 0 <= index < len(pipeline):
            return -1
        return self.insert_blocks([pipeline[index]], index + 1, text="Duplicate block", lane=lane)

    def wrap(self, kind: str, first: int, last: int, lane: Address = ()) -> int:
        """Put blocks ``first``..``last`` of ``lane`` inside a new group of ``kind`` (one undo step;
        see ``BlockKind.wrap``); returns the group's index, or -1 when nothing was wrapped."""
        pipeline = self.pipeline_at(lane)
        spec = KINDS.get(kind)
        if pipeline is None or spec is None or not (0 <= first <= last < len(pipeline)) or not self._can_edit():
            return -1
        group = spec.wrap(pipeline[first:last + 1])
        if group is None:
            return -1
        self.undo_stack.beginMacro(spec.wrap_label.replace("&", "").split(",")[0])
        self.remove_blocks(list(range(first, last + 1)), lane)
        index = self.insert_blocks([group], first, lane=lane)
        self.undo_stack.endMacro()
        self.select_path((*lane, index))
        return index

    def wrap_in_residual(self, first: int, last: int, lane: Address = ()) -> int:
        return self.wrap("residual", first, last, lane)

    def unwrap_group(self, index: int, lane: Address = ()) -> int:
        """Replace a residual group (or branches with one path that holds blocks) by its inner
        blocks, in one undo step; the first one's index, or -1 when it cannot be unwrapped."""
        block = self.block_at((*lane, index))
        spec = kind_of(block) if block is not None else None
        inner = spec.unwrap(block) if spec is not None else None
        if inner is None or not self._can_edit():
            return -1
        inner = copy.deepcopy(inner)
        self.undo_stack.beginMacro("Unwrap group")
        self.remove_blocks([index], lane)
        first = self.insert_blocks(inner, index, lane=lane) if inner else index
        self.undo_stack.endMacro()
        return first

    def move_block(self, source: int, target: int, lane: Address = ()) -> None:
        """Move a block so that it ends up at index ``target`` (both in ``lane``'s current list)."""
        pipeline = self.pipeline_at(lane)
        n = len(pipeline) if pipeline is not None else 0
        if not (0 <= source < n and 0 <= target < n) or source == target or not self._can_edit():
            return
        after = [i for i in range(n) if i != source]
        after.insert(target, source)
        pins, _ = self._names_kept(after, lane)
        self._push_keeping_names(pins, commands.MoveBlock(self, source, target, lane), lane)
        self.select_path((*lane, target))

    def move_to(self, source: Address, lane: Address, index: int) -> Address:
        """Move the block at ``source`` to ``index`` of ``lane``, which may be another pipeline
        (into, out of or between groups), in one undo step; ``index`` counts the lane as it is
        now. Returns the block's new address, or () when the move is impossible (a group into
        itself) or changes nothing."""
        block = self.block_at(source)
        target_list = self.pipeline_at(lane)
        if block is None or target_list is None or not self._can_edit() or inside(lane, source):
            return ()
        if lane_of(source) == tuple(lane):
            i = source[-1]
            target = index - 1 if index > i else index
            if target == i:
                return ()
            self.move_block(i, target, tuple(lane))
            return (*lane, target)
        moved = copy.deepcopy(block)
        lane = after_removal(tuple(lane), source)  # where the lane is once the block has left its own
        self.undo_stack.beginMacro(f"Move {block.get('name') or block.get('kind', 'block')}")
        self.remove_blocks([source[-1]], lane_of(source))
        # an index in the target lane does not change: the block left another pipeline
        self.insert_blocks([moved], index, text="Move block", lane=lane, keep_names=True)
        self.undo_stack.endMacro()
        return (*lane, index)

    def set_block_field(self, index: int, field: str, value: Any, lane: Address = ()) -> None:
        block = self.block_at((*lane, index))
        if block is None or block.get(field) == value and field in block or not self._can_edit():
            return
        self.undo_stack.push(commands.SetBlockField(self, index, field, value, lane=lane))

    def clear_block_field(self, index: int, field: str, lane: Address = ()) -> None:
        """Remove ``field`` from a block (an empty name goes back to the automatic one)."""
        block = self.block_at((*lane, index))
        if block is not None and field in block and self._can_edit():
            self.undo_stack.push(commands.SetBlockField(self, index, field, None, remove=True, lane=lane))

    def set_value(self, key: str, value: Any) -> None:
        """Set a project-level value ("input_shape", "training.epochs", ...) as one undo step.

        Training settings stay editable while the pipeline is locked (the live ones matter then).
        """
        if self.get_value(key) == value or (not key.startswith("training.") and not self._can_edit()):
            return
        self.undo_stack.push(commands.SetProjectValue(self, key, value))

    def restore_settings(self, project: Project, text: str = "Restore run settings") -> bool:
        """Make the network, data and training settings ``project``'s (a recorded run's) as one undo
        step (the name stays); False when nothing differs or the pipeline is locked."""
        if not self._can_edit():
            return False
        steps = [commands.SetProjectValue(self, key, value) for key, value in (
            ("input_shape", tuple(project.input_shape)), ("num_classes", project.num_classes),
            ("dataset", project.dataset), *((f"training.{f.name}", getattr(project.training, f.name))
                                            for f in fields(TrainingSettings))) if self.get_value(key) != value]
        if project.blocks != self._project.blocks:  # the whole pipeline, as it was in the run
            network = [commands.RemoveBlocks(self, list(range(len(self._project.blocks))))] if self._project.blocks \
                else []
            steps = network + [commands.InsertBlocks(self, 0, project.blocks)] * bool(project.blocks) + steps
        if not steps:
            return False
        self.undo_stack.beginMacro(text)
        for step in steps:
            self.undo_stack.push(step)
        self.undo_stack.endMacro()
        return True

    # --- selection and locking --------------------------------------------------------------
    def select(self, index: int) -> None:
        """Select top-level block ``index`` (-1 or out of range: nothing)."""
        self.select_path((index,) if 0 <= index < len(self._project.blocks) else ())

    def select_path(self, address: Address, count: int = 1) -> None:
        """Select the block at ``address`` and the ``count - 1`` after it in its lane (() for none)."""
        address = tuple(address)
        if self.block_at(address) is None:
            address = ()
        count = max(1, min(count, len(self.pipeline_at(lane_of(address))) - address[-1])) if address else 1
        if (address, count) != (self._selected_path, self._selected_count):
            self._selected_path, self._selected_count = address, count
            self.selectionChanged.emit(self.selected)

    def set_locked(self, reason: str) -> None:
        """Forbid pipeline edits (while training) with a reason the canvas shows; "" unlocks."""
        if reason != self._lock_reason:
            self._lock_reason = reason
            self.lockChanged.emit(reason)

    # --- files ------------------------------------------------------------------------------
    def new_project(self, template: str | None = None) -> None:
        """Replace the project with an example (by file stem, e.g. "lenet5") or an empty one."""
        project = load_project(EXAMPLES_DIR / f"{template}.json") if template else Project(
            name="Untitled", blocks=[], training=TrainingSettings())
        self._replace(project, None)

    def open(self, path: str | os.PathLike) -> None:
        """Load ``path``; on any error (ProjectError) the current project stays as it was."""
        project = load_project(path)
        self._replace(project, Path(path))

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write the project (atomically) to ``path`` or its current file; marks it unmodified."""
        target = Path(path) if path is not None else self._path
        if target is None:
            raise ValueError("the project has no file yet; choose where to save it")
        save_project(self._project, target)
        if target != self._path:
            self._path = target
            self.pathChanged.emit(str(target))
        self.undo_stack.setClean()
        return target

    @staticmethod
    def templates() -> list[tuple[str, str]]:
        """(stem, project name) of each example project shipped in resources/examples."""
        out = []
        for p in sorted(EXAMPLES_DIR.glob("*.json")):
            try:
                out.append((p.stem, load_project(p).name))
            except Exception:  # a broken example should not hide the others
                continue
        return out

    # --- mutators, called by the undo commands only ----------------------------------------
    def _insert(self, index: int, blocks: list[dict], lane: Address = ()) -> None:
        self.pipeline_at(lane)[index:index] = blocks
        self._changed()

    def _remove(self, indices: list[int], lane: Address = ()) -> None:
        pipeline = self.pipeline_at(lane)
        for i in sorted(indices, reverse=True):
            del pipeline[i]
        selected = self._selected_path
        if selected and (any(inside(selected, (*lane, i)) for i in indices) or self.block_at(selected) is None):
            self._selected_path = ()
            self.selectionChanged.emit(-1)
        self._changed()

    def _move(self, source: int, target: int, lane: Address = ()) -> None:
        pipeline = self.pipeline_at(lane)
        pipeline.insert(target, pipeline.pop(source))
        self._changed()

    def _set_field(self, index: int, field: str, value: Any, present: bool, lane: Address = ()) -> None:
        block = self.block_at((*lane, index))
        if present:
            block[field] = value
        else:
            block.pop(field, None)
        self._reinfer()
        self.blockChanged.emit(lane[0] if lane else index)

    def _set_value(self, key: str, value: Any) -> None:
        if key.startswith("training."):
            setattr(self._project.training, key.split(".", 1)[1], value)
        else:
            setattr(self._project, key, value)
        self._reinfer()
        self.valueChanged.emit(key)

    # --- internals --------------------------------------------------------------------------
    def _clean_changed(self, clean: bool) -> None:
        self.modifiedChanged.emit(not clean)

    def _can_edit(self) -> bool:
        return not self._lock_reason

    @staticmethod
    def _unnamed(block: dict) -> dict:
        """A copy without a "name": pasted and duplicated blocks get fresh names."""
        block = copy.deepcopy(block)
        block.pop("name", None)
        return block

    # --- names that stay --------------------------------------------------------------------
    # A block's name is what its weights are saved under. Automatic names follow positions
    # ("the second conv"), so an insert, removal or move would rename the blocks after it and
    # earlier weights would no longer fit: each such edit first pins, as the block's own name,
    # the name any existing block is about to lose, and a new block gets its name when created.
    def _names_kept(self, after: list, lane: Address = ()) -> tuple[list[tuple[int, str]], list[dict]]:
        """For the block list ``after`` of ``lane`` (each entry an existing block's index or a new
        block): (index, name) of the existing blocks whose name would change, and the new blocks,
        each with a name of its own that no other block of the lane has (its own if it has one)."""
        blocks = self.pipeline_at(lane)
        if lane:
            current = [effective_name(b, auto) for b, auto in zip(blocks, automatic_names(blocks))]
        else:
            current = [info.name for info in self._inference.blocks]
        result = [blocks[e] if isinstance(e, int) else e for e in after]
        autos = automatic_names(result)
        pins = [(e, current[e]) for e, block, auto in zip(after, result, autos)
                if isinstance(e, int) and effective_name(block, auto) != current[e]]
        taken = {current[e] for e in after if isinstance(e, int)}
        named = []
        for e, block, auto in zip(after, result, autos):
            if isinstance(e, int):
                continue
            name, k = block.get("name") or auto, 1
            while name in taken:
                k += 1
                name = f"{block.get('kind', 'block')}{k}"
            taken.add(name)
            named.append({**block, "name": name})
        return pins, named

    def _push_keeping_names(self, pins: list[tuple[int, str]], command, lane: Address = ()) -> None:
        """Push ``command`` after pinning ``pins``, all as one undo step named like the command."""
        if not pins:
            self.undo_stack.push(command)
            return
        self.undo_stack.beginMacro(command.text())
        for index, name in pins:
            self.undo_stack.push(commands.SetBlockField(self, index, "name", name, lane=lane))
        self.undo_stack.push(command)
        self.undo_stack.endMacro()

    def _replace(self, project: Project, path: Path | None) -> None:
        self._project = project
        self._path = path
        self._selected_path = ()
        self.undo_stack.clear()
        self._inference = infer(project)
        self.projectReplaced.emit()
        self.inferenceChanged.emit(self._inference)
        self.selectionChanged.emit(-1)
        self.pathChanged.emit(str(path) if path else "")
        self.modifiedChanged.emit(False)

    def _changed(self) -> None:
        self._reinfer()
        self.blocksChanged.emit()

    def _reinfer(self) -> None:
        self._inference = infer(self._project)
        self.inferenceChanged.emit(self._inference)
