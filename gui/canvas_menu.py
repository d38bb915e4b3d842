"""The canvas's right-click menu: block actions on a card (and wrapping the selected blocks in a
group, or unwrapping one), paste and add in a gap."""
from __future__ import annotations

from PySide6.QtCore import QPoint
from PySide6.QtWidgets import QMenu

from netbuilder.core.addresses import lane_of
from netbuilder.core.blocks import KINDS, kind_of
from netbuilder.gui import theme
from netbuilder.gui.palette import PALETTE_ENTRIES


def context_menu(canvas, pos: QPoint) -> QMenu:
    """The menu for a right-click at viewport ``pos`` of ``canvas``."""
    doc = canvas.doc
    menu = QMenu(canvas)
    card = canvas.card_at(pos)
    if card is not None:
        if not canvas.is_selected(card.address):
            doc.select_path(card.address)
        for a in (canvas.delete_action, canvas.duplicate_action, canvas.copy_action, canvas.paste_action):
            menu.addAction(a)
        menu.addSeparator()
        menu.addAction(canvas.move_up_action)
        menu.addAction(canvas.move_down_action)
        _add_group_actions(canvas, menu)
        return menu
    lane, index = canvas.drop_target_at(pos)
    editable = not doc.locked
    paste = menu.addAction("&Paste here", lambda: canvas.paste(index, lane))
    paste.setEnabled(editable and canvas.clipboard_blocks() is not None)
    add = menu.addMenu("&Add block here")
    add.setEnabled(editable)
    for entry in PALETTE_ENTRIES:
        a = add.addAction(theme.block_icon(entry.block()), entry.label,
                          lambda e=entry: doc.insert_blocks([e.block()], index, lane=lane))
        a.setToolTip(entry.help)
    add.setToolTipsVisible(True)
    menu.addSeparator()
    menu.addAction(canvas.zoom_fit_action)
    return menu


def _add_group_actions(canvas, menu: QMenu) -> None:
    """Wrap the selected blocks (or, from the submenu, this block and those after it) in a new
    group of each group kind; unwrap a group."""
    doc = canvas.doc
    address, count = doc.selected_path, doc.selected_count
    lane, first = lane_of(address), address[-1]
    pipeline = doc.pipeline_at(lane)
    editable = not doc.locked
    names = canvas.lane_names(lane)
    menu.addSeparator()
    for spec in sorted(KINDS.values(), key=lambda s: s.position):
        if not spec.wrap_label:
            continue
        if count > 1:
            label = f"{spec.wrap_label} ({names[first]} … {names[first + count - 1]}, {count} blocks)"
            action = menu.addAction(theme.block_icon(spec.kind), label,
                                    lambda spec=spec: doc.wrap(spec.kind, first, first + count - 1, lane))
            action.setEnabled(editable)
            continue
        wrap = menu.addMenu(theme.block_icon(spec.kind), spec.wrap_label)
        wrap.setEnabled(editable)
        for last in range(first, min(first + 6, len(pipeline))):
            text = (f"{names[first]} alone" if last == first
                    else f"{names[first]} … {names[last]} ({last - first + 1} blocks)")
            wrap.addAction(text, lambda spec=spec, last=last: doc.wrap(spec.kind, first, last, lane))
    block = doc.block_at(address)
    spec = kind_of(block) if block is not None else None
    if count == 1 and spec is not None and spec.unwrap(block) is not None:
        unwrap = menu.addAction("&Unwrap group", lambda: doc.unwrap_group(first, lane))
        unwrap.setEnabled(editable)
