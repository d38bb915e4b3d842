"""The pipeline canvas: the network as a column of cards, from the input to the output.

It reads the document's project and inference and redraws on their signals; every edit (drop,
reorder, delete, duplicate, paste) goes to the document as an undoable command.
"""
from __future__ import annotations

import os

from PySide6.QtCore import QMimeData, QPoint, QPointF, QRect, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QColor,
    QContextMenuEvent,
    QDrag,
    QDragEnterEvent,
    QDragLeaveEvent,
    QDragMoveEvent,
    QDropEvent,
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

from netbuilder.core.blocks import kind_of
from netbuilder.gui import theme
from netbuilder.gui.canvas_items import (
    CARD_WIDTH,
    ArrowsItem,
    CardItem,
    InsertionMarker,
    PlaceholderItem,
    block_content,
    input_content,
    output_content,
)
from netbuilder.gui.document import ProjectDocument
from netbuilder.gui.mime import MIME_BLOCKS, blocks_mime, read_blocks_mime
from netbuilder.gui.palette import PALETTE_ENTRIES

GAP = 26                    # vertical space between cards, where the arrows (and drops) go
MARGIN = 18
HINT_SPACE = 26             # room for the hint line above the input card
MIN_ZOOM, MAX_ZOOM = 0.25, 2.5
ZOOM_STEP = 1.15
# Marks a drag that started on this document's canvas (a reorder) as opposed to a copy coming
# from another window or process that happens to carry "source": "pipeline".
MIME_ORIGIN = "application/x-netbuilder-origin"
_HINT = "Drop blocks between the cards · drag a card to move it · right-click for more"


class PipelineCanvas(QGraphicsView):
    """Input card, one card per block, output card; drop, reorder, select, delete, copy, paste, zoom."""

    # A block card was double-clicked (index): the window may bring the inspector forward.
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

        self.cards: list[CardItem] = []
        self.input_card = CardItem("input")
        self.output_card = CardItem("output")
        self.arrows = ArrowsItem()
        self.marker = InsertionMarker()
        self.placeholder = PlaceholderItem()
        self.hint = QGraphicsSimpleTextItem(_HINT)
        self.hint.setFont(theme.font(-1))
        for item in (self.input_card, self.output_card, self.arrows, self.marker, self.placeholder, self.hint):
            self._scene.addItem(item)
        self._shown = None  # the Inference the cards show
        self._gap_y: list[float] = []  # the centre of each gap a drop can land in (one more than blocks)
        self.marker_index: int | None = None  # where a drop would land while a drag is over the canvas
        self._zoom = 1.0
        self._press: tuple[QPoint, int] | None = None  # left press on a card: (viewport pos, index)
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
                                    Qt.Key.Key_Backspace, tip="Remove the selected block")
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
        has_block = 0 <= self.doc.selected < len(self.doc.project.blocks)
        n = len(self.doc.project.blocks)
        self.delete_action.setEnabled(editable and has_block)
        self.duplicate_action.setEnabled(editable and has_block)
        self.copy_action.setEnabled(has_block)
        self.paste_action.setEnabled(editable and self._clipboard_blocks() is not None)
        self.move_up_action.setEnabled(editable and has_block and self.doc.selected > 0)
        self.move_down_action.setEnabled(editable and has_block and self.doc.selected < n - 1)

    # --- edits ---------------------------------------------------------------------------------
    def delete_selected(self) -> None:
        i = self.doc.selected
        if 0 <= i < len(self.doc.project.blocks):
            self.doc.remove_blocks([i])
            # keep a selection so pressing Delete again goes on removing
            self.doc.select(min(i, len(self.doc.project.blocks) - 1))

    def duplicate_selected(self) -> None:
        if self.doc.selected >= 0:
            self.doc.duplicate_block(self.doc.selected)

    def copy_selected(self) -> None:
        i = self.doc.selected
        if 0 <= i < len(self.doc.project.blocks):
            QGuiApplication.clipboard().setMimeData(blocks_mime([self.doc.project.blocks[i]], "clipboard"))

    def paste(self, index: int | None = None) -> None:
        """Insert the clipboard's blocks at ``index``; by default after the selection, or at the end."""
        blocks = self._clipboard_blocks()
        if not blocks:
            return
        if index is None:
            index = self.doc.selected + 1 if self.doc.selected >= 0 else None
        self.doc.insert_blocks(blocks, index, text="Paste block" if len(blocks) == 1 else "Paste blocks")

    def _clipboard_blocks(self) -> list[dict] | None:
        mime = QGuiApplication.clipboard().mimeData()
        payload = read_blocks_mime(mime) if mime is not None else None
        return payload["blocks"] if payload and payload["blocks"] else None

    def _move_selected(self, step: int) -> None:
        i = self.doc.selected
        if 0 <= i < len(self.doc.project.blocks):
            self.doc.move_block(i, i + step)

    # --- building the picture from the document --------------------------------------------------
    def _sync(self, *_args) -> None:
        if self.doc.inference is not self._shown or len(self.cards) != len(self.doc.project.blocks):
            self.refresh()

    def refresh(self) -> None:
        """Bring every card up to date with the document (cards are reused; extra ones removed)."""
        project, inference = self.doc.project, self.doc.inference
        self._shown = inference  # kept alive, so an identity check cannot be fooled by a reused id
        blocks = project.blocks
        while len(self.cards) < len(blocks):
            card = CardItem("block", len(self.cards))
            self._scene.addItem(card)
            self.cards.append(card)
        while len(self.cards) > len(blocks):
            self._scene.removeItem(self.cards.pop())
        for i, card in enumerate(self.cards):
            card.index = i
            card.set_content(block_content(project, inference, i))
            card.set_selected(i == self.doc.selected)
        self.input_card.set_content(input_content(project, inference))
        self.output_card.set_content(output_content(project, inference))
        self._layout()
        self._update_actions()

    def _layout(self) -> None:
        """Stack the cards top to bottom and draw the arrows in the gaps."""
        x = -CARD_WIDTH / 2
        y = 0.0
        self.hint.setText(_HINT if self.cards else "Build the network between the input and the output")
        self.hint.setPos(-self.hint.boundingRect().width() / 2, y - HINT_SPACE + 4)
        self.input_card.setPos(x, y)
        y += self.input_card.height()
        gaps = []
        self._gap_y = []
        self.placeholder.setVisible(not self.cards)
        if not self.cards:
            gaps.append((y, y + GAP))
            self.placeholder.setPos(x, y + GAP)
            self._gap_y.append(y + GAP + PlaceholderItem.HEIGHT / 2)
            y += GAP + PlaceholderItem.HEIGHT
        for card in self.cards:
            gaps.append((y, y + GAP))
            self._gap_y.append(y + GAP / 2)
            y += GAP
            card.setPos(x, y)
            y += card.height()
        gaps.append((y, y + GAP))
        if self.cards:
            self._gap_y.append(y + GAP / 2)
        y += GAP
        self.output_card.setPos(x, y)
        y += self.output_card.height()
        self.arrows.setPos(x, 0)
        self.arrows.set_gaps(gaps)
        self._scene.setSceneRect(QRectF(x - MARGIN, -HINT_SPACE - MARGIN, CARD_WIDTH + 2 * MARGIN,
                                        y + HINT_SPACE + 2 * MARGIN))

    # --- geometry, for drops and tests -----------------------------------------------------------
    def card_rect(self, i: int) -> QRect:
        """Block card ``i``'s rectangle in viewport coordinates."""
        card = self.cards[i]
        return self.mapFromScene(card.mapRectToScene(QRectF(0, 0, CARD_WIDTH, card.height()))).boundingRect()

    def insertion_index_at(self, pos: QPoint | QPointF) -> int:
        """The index a block dropped at viewport ``pos`` gets: the gap nearest above or below the pointer."""
        y = self.mapToScene(QPointF(pos).toPoint()).y()
        return sum(1 for card in self.cards if card.pos().y() + card.height() / 2 < y)

    def card_at(self, pos: QPoint | QPointF) -> CardItem | None:
        """The block card under viewport ``pos`` (None over the input, output or empty space)."""
        for item in self.items(QPointF(pos).toPoint()):
            if isinstance(item, CardItem) and item.role == "block":
                return item
        return None

    def mime_for_card(self, i: int) -> QMimeData:
        """What dragging card ``i`` carries: ``blocks_mime([block], "pipeline", i)`` plus this canvas's origin."""
        mime = blocks_mime([self.doc.project.blocks[i]], "pipeline", i)
        mime.setData(MIME_ORIGIN, self._origin)
        return mime

    # --- selection, locking -----------------------------------------------------------------------
    def _on_selection(self, index: int) -> None:
        for card in self.cards:
            card.set_selected(card.index == index)
        if 0 <= index < len(self.cards):
            self.ensureVisible(self.cards[index], 16, 24)
        self._update_actions()

    def _on_lock(self, reason: str) -> None:
        if reason:
            self.banner.setText(f"{reason} — the pipeline is locked until it stops")
        self.banner.setVisible(bool(reason))
        self._place_banner()
        for card in self.cards:
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
        if event.button() in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
            self.doc.select(card.index if card else -1)
        self._press = (pos, card.index) if card and event.button() == Qt.MouseButton.LeftButton else None
        event.accept()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        card = self.card_at(event.position().toPoint())
        if card is not None and event.button() == Qt.MouseButton.LeftButton:
            self.blockActivated.emit(card.index)
        elif (event.button() == Qt.MouseButton.LeftButton
              and self.input_card.sceneBoundingRect().contains(self.mapToScene(event.position().toPoint()))):
            self.dataRequested.emit()
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._press and event.buttons() & Qt.MouseButton.LeftButton:
            start, index = self._press
            if (event.position().toPoint() - start).manhattanLength() >= QApplication.startDragDistance():
                self._press = None
                if not self.doc.locked and 0 <= index < len(self.cards):
                    self._drag_card(index)
                return
        super().mouseMoveEvent(event)  # hover highlight and tooltips

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        self._press = None
        super().mouseReleaseEvent(event)

    def _drag_card(self, index: int) -> None:
        card = self.cards[index]
        drag = QDrag(self)
        drag.setMimeData(self.mime_for_card(index))
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
        n = len(self.doc.project.blocks)
        key, mods = event.key(), event.modifiers()
        if mods == Qt.KeyboardModifier.NoModifier and key in (Qt.Key.Key_Up, Qt.Key.Key_Down) and n:
            current = self.doc.selected
            if current < 0:
                self.doc.select(0 if key == Qt.Key.Key_Down else n - 1)
            else:
                self.doc.select(max(0, min(n - 1, current + (1 if key == Qt.Key.Key_Down else -1))))
            return
        if key == Qt.Key.Key_Escape and self.doc.selected >= 0:
            self.doc.select(-1)
            return
        super().keyPressEvent(event)

    def _add_group_actions(self, menu: QMenu, index: int) -> None:
        """Wrap this block (and those after it) in a residual group; unwrap a group."""
        blocks = self.doc.project.blocks
        editable = not self.doc.locked
        menu.addSeparator()
        wrap = menu.addMenu(theme.block_icon("residual"), "&Wrap in residual group")
        wrap.setEnabled(editable)
        names = [info.name for info in self.doc.inference.blocks]
        for last in range(index, min(index + 6, len(blocks))):
            label = (f"{names[index]} alone" if last == index
                     else f"{names[index]} … {names[last]} ({last - index + 1} blocks)")
            wrap.addAction(label, lambda last=last: self.doc.wrap_in_residual(index, last))
        spec = kind_of(blocks[index]) if 0 <= index < len(blocks) else None
        if spec is not None and spec.unwrap(blocks[index]) is not None:
            unwrap = menu.addAction("&Unwrap group", lambda: self.doc.unwrap_group(index))
            unwrap.setEnabled(editable)

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:
        self.context_menu_at(event.pos()).exec(event.globalPos())

    def context_menu_at(self, pos: QPoint) -> QMenu:
        """The menu for a right-click at viewport ``pos``: block actions on a card, paste/add elsewhere."""
        menu = QMenu(self)
        card = self.card_at(pos)
        if card is not None:
            self.doc.select(card.index)
            for a in (self.delete_action, self.duplicate_action, self.copy_action, self.paste_action):
                menu.addAction(a)
            menu.addSeparator()
            menu.addAction(self.move_up_action)
            menu.addAction(self.move_down_action)
            self._add_group_actions(menu, card.index)
            return menu
        index = self.insertion_index_at(pos)
        editable = not self.doc.locked
        paste = menu.addAction("&Paste here", lambda: self.paste(index))
        paste.setEnabled(editable and self._clipboard_blocks() is not None)
        add = menu.addMenu("&Add block here")
        add.setEnabled(editable)
        for entry in PALETTE_ENTRIES:
            a = add.addAction(theme.block_icon(entry.block()), entry.label,
                              lambda e=entry: self.doc.insert_blocks([e.block()], index))
            a.setToolTip(entry.help)
        add.setToolTipsVisible(True)
        menu.addSeparator()
        menu.addAction(self.zoom_fit_action)
        return menu

    # --- drag and drop -----------------------------------------------------------------------------
    def _drop_payload(self, event: QDropEvent) -> dict | None:
        """The blocks an incoming drag carries, or None when this canvas should refuse it."""
        mime = event.mimeData()
        if self.doc.locked or mime is None or not mime.hasFormat(MIME_BLOCKS):
            return None
        payload = read_blocks_mime(mime)
        return payload if payload and payload["blocks"] else None

    def _is_reorder(self, event: QDropEvent, payload: dict) -> bool:
        mime = event.mimeData()
        return (payload.get("source") == "pipeline" and bytes(mime.data(MIME_ORIGIN)) == self._origin
                and isinstance(payload.get("index"), int) and 0 <= payload["index"] < len(self.doc.project.blocks))

    def _accept(self, event: QDragMoveEvent) -> bool:
        payload = self._drop_payload(event)
        if payload is None:
            event.ignore()
            self._show_marker(None)
            return False
        action = Qt.DropAction.MoveAction if self._is_reorder(event, payload) else Qt.DropAction.CopyAction
        event.setDropAction(action)
        event.accept()
        pos = event.position()
        self._show_marker(self.insertion_index_at(pos))
        self._set_scroll_step(pos.y())
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
        index = self.insertion_index_at(event.position())
        if self._is_reorder(event, payload):
            source = payload["index"]
            # the gap index counts the moved block itself when it lies above the gap
            target = index - 1 if index > source else index
            if target != source:
                self.doc.move_block(source, target)
            event.setDropAction(Qt.DropAction.MoveAction)
        else:
            self.doc.insert_blocks(payload["blocks"], index)
            event.setDropAction(Qt.DropAction.CopyAction)
        event.accept()

    def _show_marker(self, index: int | None) -> None:
        self.marker_index = index
        if index is None or not self._gap_y:
            self.marker.hide()
            self.placeholder.set_active(False)
            return
        self.placeholder.set_active(not self.cards)
        self.marker.setVisible(bool(self.cards))
        self.marker.setPos(-CARD_WIDTH / 2, self._gap_y[min(index, len(self._gap_y) - 1)])

    def marker_scene_y(self) -> float | None:
        """The marker's y in scene coordinates while shown (for tests)."""
        return self.marker.pos().y() if self.marker.isVisible() else None

    def gap_scene_y(self, index: int) -> float:
        """The centre of gap ``index`` (before block ``index``) in scene coordinates."""
        return self._gap_y[index]

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

