"""The pipeline canvas: the network as a column of cards, from the input to the output, with each
group drawn as a framed lane of its own cards (see ``canvas_layout``).

It reads the document's project and inference and redraws on their signals; every edit (drop,
reorder, delete, duplicate, paste, wrap) goes to the document as an undoable command. Selection
is the document's: a block's address, and with Shift the consecutive blocks of its pipeline.
"""
from __future__ import annotations

import os

from PySide6.QtCore import QMimeData, QPoint, QPointF, QRect, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QColor,
    QContextMenuEvent,
    QDrag,
    QGuiApplication,
    QKeyEvent,
    QKeySequence,
    QMouseEvent,
    QPainter,
    QPixmap,
    QTransform,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QGraphicsScene,
    QGraphicsSimpleTextItem,
    QGraphicsView,
    QLabel,
    QMenu,
    QStyleOptionGraphicsItem,
    QWidget,
)

from netbuilder.core.addresses import Address, lane_of, walk
from netbuilder.core.block_names import automatic_names, effective_name
from netbuilder.core.blocks import kind_of
from netbuilder.core.errors import ERROR, NOTE
from netbuilder.gui import theme
from netbuilder.gui.canvas_drops import MIME_ORIGIN, CanvasDrops
from netbuilder.gui.canvas_items import (
    CARD_WIDTH,
    CardItem,
    FrameItem,
    InsertionMarker,
    JoinItem,
    PlaceholderItem,
    WiresItem,
)
from netbuilder.gui.canvas_layout import GAP, Gap, Placer
from netbuilder.gui.canvas_menu import context_menu
from netbuilder.gui.card_content import JOIN_FIELDS, block_content, input_content, output_content
from netbuilder.gui.document import ProjectDocument
from netbuilder.gui.mime import blocks_mime, read_blocks_mime

MARGIN = 18
HINT_SPACE = 26             # room for the hint line above the input card
MIN_ZOOM, MAX_ZOOM = 0.25, 2.5
ZOOM_STEP = 1.15
_HINT = "Drop blocks between the cards · drag a card to move it · right-click for more"


class PipelineCanvas(CanvasDrops, QGraphicsView):
    """Input card, one card per block (groups framed with their inner cards), output card; drop,
    reorder, select, delete, copy, paste, wrap, zoom."""

    # A block card was double-clicked (its top-level index): the window may bring the inspector forward.
    blockActivated = Signal(int)
    # The input card was double-clicked: the user wants to choose the data.
    dataRequested = Signal()

    def __init__(self, doc: ProjectDocument, parent: QWidget | None = None):
        super().__init__(parent)
        self.doc = doc
        self._origin = f"{os.getpid()}:{id(doc)}".encode()
        self._scene = QGraphicsScene(self)
        self.setScene(self._scene)
        self.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.TextAntialiasing)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.BoundingRectViewportUpdate)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAcceptDrops(True)
        self.setMouseTracking(True)

        self.cards: list[CardItem] = []  # the network's own blocks' cards, by index (a group's is its header)
        self.cards_at: dict[Address, CardItem] = {}  # every block's card, inner ones included
        self.frames: dict[Address, FrameItem] = {}
        self.joins: dict[Address, JoinItem] = {}
        self.column_width = CARD_WIDTH
        self.input_card = CardItem("input")
        self.output_card = CardItem("output")
        self.arrows = WiresItem()
        self.marker = InsertionMarker()
        self.placeholder = PlaceholderItem()
        self.hint = QGraphicsSimpleTextItem(_HINT)
        self.hint.setFont(theme.font(-1))
        for item in (self.input_card, self.output_card, self.arrows, self.marker, self.placeholder, self.hint):
            self._scene.addItem(item)
        self._shown = None  # the Inference the cards show
        self._gaps: list[Gap] = []  # every place a drop can land, in every pipeline
        self.marker_index: int | None = None  # where a drop would land while a drag is over the canvas
        self.marker_lane: Address | None = None  # ... and in which pipeline
        self._zoom = 1.0
        self._press: tuple[QPoint, Address] | None = None  # left press on a card: (viewport pos, address)
        self._scroll_step = 0  # auto-scroll while a drag hovers near the top or bottom edge
        self._scroll_timer = QTimer(self)
        self._scroll_timer.setInterval(30)
        self._scroll_timer.timeout.connect(self._auto_scroll)
        self._restyle()
        theme.notifier().schemeChanged.connect(self._restyle)

        self.banner = QLabel(self)
        self.banner.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.banner.setWordWrap(True)
        theme.style(self.banner, "background: {BANNER}; color: {BANNER_TEXT}; "
                                 "border-bottom: 1px solid {BANNER_BORDER}; padding: 7px; font-weight: bold;")
        self.banner.hide()

        self._make_actions()
        # Every edit re-infers, and structural ones also emit blocksChanged: _sync skips the repeat.
        doc.blocksChanged.connect(self._sync)
        doc.inferenceChanged.connect(self._sync)
        doc.projectReplaced.connect(self.refresh)
        doc.selectionChanged.connect(self._on_selection)
        doc.lockChanged.connect(self._on_lock)
        QGuiApplication.clipboard().dataChanged.connect(self._update_actions)
        self.refresh()
        self._on_lock(doc.lock_reason)

    # --- actions -----------------------------------------------------------------------------

    def _restyle(self, *_) -> None:
        """Colours of the current scheme; the cards read theme colours when they paint."""
        self.setBackgroundBrush(QColor(theme.BACKGROUND))
        self.hint.setBrush(QColor(theme.MUTED))
        self._scene.update()
    def _make_actions(self) -> None:
        def action(text: str, slot, *keys, tip: str = "") -> QAction:
            a = QAction(text, self)
            a.setShortcuts([QKeySequence(k) for k in keys])
            # Only while the canvas has focus: Delete or Ctrl+C in an inspector field edit that field.
            a.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            a.setStatusTip(tip)
            a.triggered.connect(slot)
            self.addAction(a)
            return a

        self.delete_action = action("&Delete block", self.delete_selected, QKeySequence.StandardKey.Delete,
                                    Qt.Key.Key_Backspace, tip="Remove the selected blocks")
        self.duplicate_action = action("D&uplicate block", self.duplicate_selected, "Ctrl+D",
                                       tip="Insert a copy of the selected block after it")
        self.copy_action = action("&Copy block", self.copy_selected, QKeySequence.StandardKey.Copy,
                                  tip="Copy the selected block to the clipboard")
        self.paste_action = action("&Paste block", lambda: self.paste(), QKeySequence.StandardKey.Paste,
                                   tip="Insert the copied block after the selection (or at the end)")
        self.move_up_action = action("Move &up", lambda: self._move_selected(-1), "Alt+Up",
                                     tip="Move the selected block one place up")
        self.move_down_action = action("Move do&wn", lambda: self._move_selected(1), "Alt+Down",
                                       tip="Move the selected block one place down")
        self.zoom_in_action = action("Zoom &in", lambda: self.set_zoom(self._zoom * ZOOM_STEP),
                                     QKeySequence.StandardKey.ZoomIn, "Ctrl+=")
        self.zoom_out_action = action("Zoom &out", lambda: self.set_zoom(self._zoom / ZOOM_STEP),
                                      QKeySequence.StandardKey.ZoomOut)
        self.zoom_fit_action = action("&Fit pipeline", self.zoom_to_fit, "Ctrl+0",
                                      tip="Show the whole pipeline (never larger than 100%)")

    def _update_actions(self) -> None:
        editable = not self.doc.locked
        address, count = self.doc.selected_path, self.doc.selected_count
        has_block = self.doc.block_at(address) is not None
        n = len(self.doc.pipeline_at(lane_of(address)) or []) if has_block else 0
        self.delete_action.setEnabled(editable and has_block)
        self.duplicate_action.setEnabled(editable and has_block)
        self.copy_action.setEnabled(has_block)
        self.paste_action.setEnabled(editable and self.clipboard_blocks() is not None)
        self.move_up_action.setEnabled(editable and has_block and count == 1 and address[-1] > 0)
        self.move_down_action.setEnabled(editable and has_block and count == 1 and address[-1] < n - 1)

    # --- edits ---------------------------------------------------------------------------------
    def _selection(self) -> tuple[Address, list[int]]:
        """The selected blocks' lane and their indices in it (none when nothing is selected)."""
        address, count = self.doc.selected_path, self.doc.selected_count
        if self.doc.block_at(address) is None:
            return (), []
        return lane_of(address), list(range(address[-1], address[-1] + count))

    def is_selected(self, address: Address) -> bool:
        lane, indices = self._selection()
        return bool(indices) and lane_of(address) == lane and address[-1] in indices

    def delete_selected(self) -> None:
        lane, indices = self._selection()
        if not indices:
            return
        self.doc.remove_blocks(indices, lane)
        # keep a selection so pressing Delete again goes on removing (the group once its lane is empty)
        left = len(self.doc.pipeline_at(lane) or [])
        self.doc.select_path((*lane, min(indices[0], left - 1)) if left else lane[:-1])

    def duplicate_selected(self) -> None:
        lane, indices = self._selection()
        if indices:
            blocks = self.doc.pipeline_at(lane)[indices[0]:indices[-1] + 1]
            self.doc.insert_blocks(blocks, indices[-1] + 1, text="Duplicate block" if len(blocks) == 1
                                   else "Duplicate blocks", lane=lane)

    def copy_selected(self) -> None:
        lane, indices = self._selection()
        if indices:
            blocks = self.doc.pipeline_at(lane)[indices[0]:indices[-1] + 1]
            QGuiApplication.clipboard().setMimeData(blocks_mime(blocks, "clipboard"))

    def paste(self, index: int | None = None, lane: Address | None = None) -> None:
        """Insert the clipboard's blocks at ``index`` of ``lane``; by default after the selection,
        or at the end of the network."""
        blocks = self.clipboard_blocks()
        if not blocks:
            return
        if lane is None:
            lane, indices = self._selection()
            index = indices[-1] + 1 if indices else None
        self.doc.insert_blocks(blocks, index, text="Paste block" if len(blocks) == 1 else "Paste blocks", lane=lane)

    def clipboard_blocks(self) -> list[dict] | None:
        mime = QGuiApplication.clipboard().mimeData()
        payload = read_blocks_mime(mime) if mime is not None else None
        return payload["blocks"] if payload and payload["blocks"] else None

    def _move_selected(self, step: int) -> None:
        lane, indices = self._selection()
        if len(indices) == 1:
            self.doc.move_block(indices[0], indices[0] + step, lane)

    # --- building the picture from the document --------------------------------------------------
    def _sync(self, *_args) -> None:
        if self.doc.inference is not self._shown or len(self.cards) != len(self.doc.project.blocks):
            self.refresh()

    def refresh(self) -> None:
        """Bring every card, frame and join up to date with the document (items are reused by
        address; those no longer needed removed), then lay them out."""
        project = self.doc.project
        self._shown = self.doc.inference  # kept alive, so an identity check cannot be fooled by a reused id
        used: set[Address] = set()  # cards laid out
        joined: set[Address] = set()  # groups laid out (their frames and joins)
        placer = Placer(lambda a, w: self._size_card(a, w, used), lambda a, w: self._size_join(a, w, joined))
        self.input_card.set_content(input_content(project, self._shown))
        self.output_card.set_content(output_content(project, self._shown))
        x = -CARD_WIDTH / 2
        self.input_card.setPos(x, 0)
        y = self.input_card.height()
        self.placeholder.setVisible(not project.blocks)
        if project.blocks:
            y = placer.lane((), project.blocks, 0, CARD_WIDTH, y, (-1e9, 1e9))
        else:
            self.placeholder.setPos(x, y + GAP)
            placer.out.gaps.append(Gap((), 0, x, -x, y + GAP + PlaceholderItem.HEIGHT / 2))
            placer.out.arrows.append((0, y, y + GAP))
            y += GAP + PlaceholderItem.HEIGHT
        out = placer.out
        out.arrows.append((0, y, y + GAP))
        self.output_card.setPos(x, y + GAP)
        bottom = y + GAP + self.output_card.height()
        self._gaps = out.gaps
        self._drop_unused(self.cards_at, used)
        self._drop_unused(self.joins, joined)
        self._drop_unused(self.frames, joined)
        for placed in out.cards:
            self.cards_at[placed.address].setPos(placed.x, placed.y)
        for frame in out.frames:
            item = self.frames.get(frame.address)
            if item is None:
                item = self.frames[frame.address] = FrameItem(frame.address)
                self._scene.addItem(item)
            errors = any(p.severity == ERROR and p.address[:len(frame.address)] == frame.address
                         for p in self._shown.problems)
            item.set_frame(kind_of(self.doc.block_at(frame.address)).kind, QRectF(*frame.rect), frame.labels, errors)
            self.joins[frame.address].setPos(frame.join[0], frame.join[1])
        self.cards = [self.cards_at[(i,)] for i in range(len(project.blocks))]
        for address, card in self.cards_at.items():
            card.set_selected(self.is_selected(address))
        self.arrows.setPos(0, 0)
        self.arrows.set_wires(out.arrows, out.lines, out.skips)
        self.hint.setText(_HINT if project.blocks else "Build the network between the input and the output")
        self.hint.setPos(-self.hint.boundingRect().width() / 2, -HINT_SPACE + 4)
        left, right = min(out.left, x), max(out.right, -x)
        self._scene.setSceneRect(QRectF(left - MARGIN, -HINT_SPACE - MARGIN, right - left + 2 * MARGIN,
                                        bottom + HINT_SPACE + 2 * MARGIN))
        self._update_actions()

    def _size_card(self, address: Address, width: float, used: set) -> float:
        """The card of the block at ``address``, made or reused and given its content; its height."""
        card = self.cards_at.get(address)
        if card is None:
            card = self.cards_at[address] = CardItem("block", address[-1], address)
            self._scene.addItem(card)
            if self.doc.locked:
                card.setCursor(Qt.CursorShape.ArrowCursor)
        card.set_content(block_content(self.doc.project, self._shown, address), width)
        used.add(address)
        return card.height()

    def _size_join(self, address: Address, width: float, used: set) -> float:
        """The join of the group at ``address`` (⊕ or the merge), with the problems of how its lanes meet."""
        join = self.joins.get(address)
        if join is None:
            join = self.joins[address] = JoinItem(address)
            self._scene.addItem(join)
        info = self._shown.info_at(address)
        spec = kind_of(self.doc.block_at(address))
        glyph, text = spec.join_text(info) if info is not None else ("+", "")
        problems = [p for p in self._shown.problems_at(address) if p.field in JOIN_FIELDS]
        join.set_join(glyph, text, tuple(p.message for p in problems if p.severity != NOTE),
                      tuple(p.message for p in problems if p.severity == NOTE), width)
        used.add(address)
        return join.height()

    def _drop_unused(self, items: dict, used: set) -> None:
        for address in [a for a in items if a not in used]:
            self._scene.removeItem(items.pop(address))

    def lane_names(self, lane: Address) -> list[str]:
        """The names of the blocks of ``lane``, as their cards show them."""
        blocks = self.doc.pipeline_at(lane) or []
        return [effective_name(b, auto) if isinstance(b, dict) else "?"
                for b, auto in zip(blocks, automatic_names(blocks))]

    # --- geometry, for drops and tests -----------------------------------------------------------
    def card_rect(self, i: int | Address) -> QRect:
        """The rectangle, in viewport coordinates, of block card ``i`` (an index or an address)."""
        card = self.cards[i] if isinstance(i, int) else self.cards_at[tuple(i)]
        return self.mapFromScene(card.mapRectToScene(QRectF(0, 0, card.width, card.height()))).boundingRect()

    def card_at(self, pos: QPoint | QPointF) -> CardItem | None:
        """The block card under viewport ``pos`` (None over the input, output or empty space)."""
        for item in self.items(QPointF(pos).toPoint()):
            if isinstance(item, CardItem) and item.role == "block":
                return item
        return None

    def mime_for_card(self, i: int | Address) -> QMimeData:
        """What dragging card ``i`` (an index or an address) carries: the block, its address and
        this canvas's origin."""
        address = (i,) if isinstance(i, int) else tuple(i)
        mime = blocks_mime([self.doc.block_at(address)], "pipeline", address[-1], address)
        mime.setData(MIME_ORIGIN, self._origin)
        return mime

    # --- selection, locking -----------------------------------------------------------------------
    def _on_selection(self, _index: int) -> None:
        for address, card in self.cards_at.items():
            card.set_selected(self.is_selected(address))
        card = self.cards_at.get(self.doc.selected_path)
        if card is not None:
            self.ensureVisible(card, 16, 24)
        self._update_actions()

    def _on_lock(self, reason: str) -> None:
        if reason:
            self.banner.setText(f"{reason} — the pipeline is locked until it stops")
        self.banner.setVisible(bool(reason))
        self._place_banner()
        for card in self.cards_at.values():
            card.setCursor(Qt.CursorShape.ArrowCursor if reason else Qt.CursorShape.OpenHandCursor)
        self._update_actions()

    def _place_banner(self) -> None:
        geometry = self.viewport().geometry()
        self.banner.setFixedWidth(geometry.width())
        self.banner.adjustSize()
        self.banner.move(geometry.topLeft())

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._place_banner()

    # --- zoom --------------------------------------------------------------------------------------
    @property
    def zoom(self) -> float:
        return self._zoom

    def set_zoom(self, zoom: float) -> None:
        self._zoom = max(MIN_ZOOM, min(MAX_ZOOM, zoom))
        self.setTransform(QTransform.fromScale(self._zoom, self._zoom))

    def zoom_to_fit(self) -> None:
        """Fit the whole pipeline in view, but never above 100%: on a short pipeline this resets the zoom."""
        rect = self.sceneRect()
        view = self.viewport().size()
        self.set_zoom(min(1.0, view.width() / rect.width(), view.height() / rect.height()))
        self.centerOn(rect.center())

    def wheelEvent(self, event: QWheelEvent) -> None:
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            steps = event.angleDelta().y() / 120
            if steps:
                self.set_zoom(self._zoom * ZOOM_STEP ** steps)
            event.accept()
            return
        super().wheelEvent(event)

    # --- mouse and keyboard --------------------------------------------------------------------------
    def mousePressEvent(self, event: QMouseEvent) -> None:
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        pos = event.position().toPoint()
        card = self.card_at(pos)
        if event.button() == Qt.MouseButton.LeftButton and card is not None and (
                event.modifiers() & Qt.KeyboardModifier.ShiftModifier):
            self._extend_selection(card.address)
        elif event.button() == Qt.MouseButton.LeftButton or (
                event.button() == Qt.MouseButton.RightButton and not (card and self.is_selected(card.address))):
            self.doc.select_path(card.address if card else ())
        self._press = (pos, card.address) if card and event.button() == Qt.MouseButton.LeftButton else None
        event.accept()

    def _extend_selection(self, address: Address) -> None:
        """Shift+click: select from the selected block to ``address`` when both are in one pipeline."""
        current = self.doc.selected_path
        if not current or lane_of(current) != lane_of(address):
            self.doc.select_path(address)
            return
        first, last = sorted((current[-1], address[-1]))  # from the first selected one (the anchor)
        self.doc.select_path((*lane_of(address), first), last - first + 1)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        card = self.card_at(event.position().toPoint())
        if card is not None and event.button() == Qt.MouseButton.LeftButton:
            self.blockActivated.emit(card.address[0])
        elif (event.button() == Qt.MouseButton.LeftButton
              and self.input_card.sceneBoundingRect().contains(self.mapToScene(event.position().toPoint()))):
            self.dataRequested.emit()
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._press and event.buttons() & Qt.MouseButton.LeftButton:
            start, address = self._press
            if (event.position().toPoint() - start).manhattanLength() >= QApplication.startDragDistance():
                self._press = None
                if not self.doc.locked and address in self.cards_at:
                    self._drag_card(address)
                return
        super().mouseMoveEvent(event)  # hover highlight and tooltips

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        self._press = None
        super().mouseReleaseEvent(event)

    def _drag_card(self, address: Address) -> None:
        card = self.cards_at[address]
        drag = QDrag(self)
        drag.setMimeData(self.mime_for_card(address))
        drag.setPixmap(self._card_pixmap(card))
        drag.setHotSpot(QPoint(24, 20))
        card.set_dimmed(True)
        try:
            drag.exec(Qt.DropAction.MoveAction | Qt.DropAction.CopyAction, Qt.DropAction.MoveAction)
        finally:
            if card.scene() is not None:
                card.set_dimmed(False)

    def _card_pixmap(self, card: CardItem) -> QPixmap:
        ratio = self.devicePixelRatioF()
        size = card.boundingRect().size().toSize() * self._zoom
        pixmap = QPixmap(size * ratio)
        pixmap.setDevicePixelRatio(ratio)
        # opaque: without a compositor (plain X11) transparent drag pixmaps show black corners
        pixmap.fill(QColor(theme.BACKGROUND))
        painter = QPainter(pixmap)
        painter.scale(self._zoom, self._zoom)
        painter.translate(-card.boundingRect().topLeft())
        card.paint(painter, QStyleOptionGraphicsItem())
        painter.end()
        return pixmap

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key, mods = event.key(), event.modifiers()
        if mods == Qt.KeyboardModifier.NoModifier and key in (Qt.Key.Key_Up, Qt.Key.Key_Down) and self.cards:
            # every card in reading order, inner ones included
            order = [a for a in walk(self.doc.project.blocks) if a in self.cards_at]
            current = self.doc.selected_path
            if current not in order:
                self.doc.select_path(order[0] if key == Qt.Key.Key_Down else order[-1])
            else:
                i = order.index(current) + (1 if key == Qt.Key.Key_Down else -1)
                self.doc.select_path(order[max(0, min(len(order) - 1, i))])
            return
        if key == Qt.Key.Key_Escape and self.doc.selected_path:
            self.doc.select(-1)
            return
        super().keyPressEvent(event)

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:
        self.context_menu_at(event.pos()).exec(event.globalPos())

    def context_menu_at(self, pos: QPoint) -> QMenu:
        """The menu for a right-click at viewport ``pos``: block actions on a card, paste/add elsewhere."""
        return context_menu(self, pos)
