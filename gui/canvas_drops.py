"""Drag and drop on the pipeline canvas: where a dragged block would land (any pipeline, a
group's inner ones included), the marker that shows it, the drop itself and auto-scrolling.

A mixin of ``PipelineCanvas``: it reads the canvas's layout (``_gaps``) and edits through its
document, so a drop is one undoable command like every other edit.
"""
from __future__ import annotations

from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QDragEnterEvent, QDragLeaveEvent, QDragMoveEvent, QDropEvent

from netbuilder.core.addresses import Address, inside
from netbuilder.gui.canvas_layout import Gap
from netbuilder.gui.mime import MIME_BLOCKS, read_blocks_mime

# Marks a drag that started on this document's canvas (a reorder) as opposed to a copy coming
# from another window or process that happens to carry "source": "pipeline".
MIME_ORIGIN = "application/x-netbuilder-origin"


class CanvasDrops:
    """Drop handling for ``PipelineCanvas`` (which provides doc, _gaps, marker, placeholder, cards)."""

    # --- where a drop lands -----------------------------------------------------------------
    def drop_target_at(self, pos: QPoint | QPointF) -> tuple[Address, int]:
        """(lane, index) a block dropped at viewport ``pos`` lands at: the nearest gap of the
        pipelines whose column the pointer is over, the innermost one when two are as near."""
        return self._gap_at(pos)[:2]

    def _gap_at(self, pos: QPoint | QPointF) -> tuple[Address, int, Gap | None]:
        if not self._gaps:
            return (), 0, None
        point = self.mapToScene(QPointF(pos).toPoint())
        x, y = point.x(), point.y()
        near = [g for g in self._gaps if g.left - 4 <= x <= g.right + 4] or [g for g in self._gaps if not g.lane]
        gap = min(near, key=lambda g: (round(abs(g.y - y), 1), -len(g.lane)))
        return gap.lane, gap.index, gap

    # --- the incoming drag ------------------------------------------------------------------
    def _drop_payload(self, event: QDropEvent) -> dict | None:
        """The blocks an incoming drag carries, or None when this canvas should refuse it."""
        mime = event.mimeData()
        if self.doc.locked or mime is None or not mime.hasFormat(MIME_BLOCKS):
            return None
        payload = read_blocks_mime(mime)
        return payload if payload and payload["blocks"] else None

    def _reorder_source(self, event: QDropEvent, payload: dict) -> Address | None:
        """The address of the block being moved when the drag is one of this canvas's own cards."""
        mime = event.mimeData()
        if payload.get("source") != "pipeline" or bytes(mime.data(MIME_ORIGIN)) != self._origin:
            return None
        address = payload.get("address") or [payload.get("index")]
        if not (isinstance(address, list) and address and all(type(a) is int for a in address)):
            return None
        address = tuple(address)
        return address if self.doc.block_at(address) is not None else None

    def _accept(self, event: QDragMoveEvent) -> bool:
        payload = self._drop_payload(event)
        lane, index, gap = self._gap_at(event.position())
        source = self._reorder_source(event, payload) if payload is not None else None
        if payload is None or (source is not None and inside(lane, source)):  # a group into itself
            event.ignore()
            self._show_marker(None)
            return False
        event.setDropAction(Qt.DropAction.MoveAction if source is not None else Qt.DropAction.CopyAction)
        event.accept()
        self._show_marker(gap)
        self._set_scroll_step(event.position().y())
        return True

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        self._accept(event)

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        self._accept(event)

    def dragLeaveEvent(self, event: QDragLeaveEvent) -> None:
        self._show_marker(None)
        self._set_scroll_step(None)
        event.accept()

    def dropEvent(self, event: QDropEvent) -> None:
        self._show_marker(None)
        self._set_scroll_step(None)
        payload = self._drop_payload(event)
        if payload is None:
            event.ignore()
            return
        lane, index = self.drop_target_at(event.position())
        source = self._reorder_source(event, payload)
        if source is not None:
            if inside(lane, source):
                event.ignore()
                return
            self.doc.move_to(source, lane, index)
            event.setDropAction(Qt.DropAction.MoveAction)
        else:
            self.doc.insert_blocks(payload["blocks"], index, lane=lane)
            event.setDropAction(Qt.DropAction.CopyAction)
        event.accept()

    # --- the marker -------------------------------------------------------------------------
    def _show_marker(self, gap: Gap | None) -> None:
        self.marker_index = gap.index if gap is not None else None
        self.marker_lane = gap.lane if gap is not None else None
        if gap is None:
            self.marker.hide()
            self.placeholder.set_active(False)
            return
        self.placeholder.set_active(not self.cards)
        self.marker.setVisible(bool(self.cards))
        left, right = (gap.left, gap.right) if gap.lane else (-self.column_width / 2, self.column_width / 2)
        self.marker.set_width(right - left)
        self.marker.setPos(left, gap.y)

    def marker_scene_y(self) -> float | None:
        """The marker's y in scene coordinates while shown (for tests)."""
        return self.marker.pos().y() if self.marker.isVisible() else None

    def gap_scene_y(self, index: int, lane: Address = ()) -> float:
        """The centre of gap ``index`` (before block ``index``) of ``lane`` in scene coordinates."""
        return next(g.y for g in self._gaps if g.lane == tuple(lane) and g.index == index)

    # --- scrolling while dragging near an edge ------------------------------------------------
    def _set_scroll_step(self, y: float | None) -> None:
        edge = 36
        height = self.viewport().height()
        if y is None or edge <= y <= height - edge:
            self._scroll_step = 0
            self._scroll_timer.stop()
            return
        self._scroll_step = -12 if y < edge else 12
        if not self._scroll_timer.isActive():
            self._scroll_timer.start()

    def _auto_scroll(self) -> None:
        bar = self.verticalScrollBar()
        bar.setValue(bar.value() + self._scroll_step)
        if self._scroll_step == 0 or bar.value() in (bar.minimum(), bar.maximum()):
            self._scroll_timer.stop()
