"""The palette: the block kinds a person drags into the pipeline (or double-clicks to append).

Each entry carries a complete block dict; a drag carries it as ``blocks_mime([block], "palette")``,
the same data the canvas accepts from a copy or a reorder.
"""
from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QMimeData, QModelIndex, QRect, QSize, Qt
from PySide6.QtGui import QColor, QDrag, QFontMetrics, QKeyEvent, QPainter, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from netbuilder.core.blocks import KINDS, default_block
from netbuilder.gui import theme
from netbuilder.gui.document import ProjectDocument
from netbuilder.gui.mime import blocks_mime

_BLOCK_ROLE = Qt.ItemDataRole.UserRole
_HINT_ROLE = Qt.ItemDataRole.UserRole + 1
_KIND_ROLE = Qt.ItemDataRole.UserRole + 2


@dataclass(frozen=True)
class PaletteEntry:
    """One palette line: the block it creates, its label, a few-word hint and a one-sentence help
    (what the kind's module declares in its ``palette``)."""

    kind: str
    label: str
    hint: str
    help: str
    preset: tuple = ()  # fields set on the new block (pooling's mode)

    @property
    def mode(self) -> str | None:
        return dict(self.preset).get("mode")

    def block(self) -> dict:
        block = default_block(self.kind)
        block.update(dict(self.preset))
        return block


PALETTE_ENTRIES: tuple[PaletteEntry, ...] = tuple(
    PaletteEntry(e.kind, e.label, e.subtitle, e.help, e.preset) for spec in KINDS.values() for e in spec.palette)


def block_help(block: dict) -> str:
    """The one-sentence help of a block's palette entry (pooling per mode); "" for unknown kinds."""
    entries = [e for e in PALETTE_ENTRIES if e.kind == block.get("kind")]
    entry = next((e for e in entries if all(block.get(k) == v for k, v in e.preset)), entries[0] if entries else None)
    return entry.help if entry else ""


class _EntryDelegate(QStyledItemDelegate):
    """Draws an entry as a small card: accent strip with the icon, bold label, muted hint."""

    HEIGHT = 46
    STRIP = 40

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        return QSize(180, self.HEIGHT)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        enabled = bool(option.state & QStyle.StateFlag.State_Enabled)
        hovered = bool(option.state & QStyle.StateFlag.State_MouseOver)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        rect = option.rect.adjusted(4, 3, -4, -3)
        kind = index.data(_KIND_ROLE)
        border = theme.SELECTION if selected else theme.BORDER_HOVER if hovered else theme.BORDER
        painter.setPen(QColor(border))
        painter.setBrush(QColor(theme.SURFACE))
        painter.drawRoundedRect(rect.adjusted(0, 0, -1, -1), 6, 6)
        strip = QRect(rect.left() + 1, rect.top() + 1, self.STRIP, rect.height() - 2)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(theme.tint(theme.accent(kind), 0.14, theme.BACKGROUND))
        painter.drawRoundedRect(strip, 5, 5)
        icon = index.data(Qt.ItemDataRole.DecorationRole)
        if icon is not None:
            mode = icon.Mode.Normal if enabled else icon.Mode.Disabled
            icon.paint(painter, strip.adjusted(8, 0, -8, 0), Qt.AlignmentFlag.AlignCenter, mode)
        text_left = strip.right() + 8
        width = rect.right() - text_left - 4
        painter.setPen(QColor(theme.TEXT if enabled else theme.FAINT))
        bold = theme.font(0, bold=True)
        painter.setFont(bold)
        line = QFontMetrics(bold).height()
        top = rect.top() + (rect.height() - 2 * line) // 2
        painter.drawText(QRect(text_left, top, width, line), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                         index.data(Qt.ItemDataRole.DisplayRole))
        small = theme.font(-1)
        painter.setFont(small)
        painter.setPen(QColor(theme.MUTED if enabled else theme.FAINT))
        hint = QFontMetrics(small).elidedText(index.data(_HINT_ROLE), Qt.TextElideMode.ElideRight, width)
        painter.drawText(QRect(text_left, top + line, width, line),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, hint)
        painter.restore()


class PaletteList(QListWidget):
    """The entries; a drag carries the entry's block in the app's mime type."""

    def __init__(self, palette: Palette):
        super().__init__(palette)
        self._palette = palette
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setItemDelegate(_EntryDelegate(self))
        self.setMouseTracking(True)  # hover highlight
        self.setFrameShape(QListWidget.Shape.NoFrame)
        self.setSpacing(0)
        theme.style(self, "QListWidget { background: {BACKGROUND}; }")

    def startDrag(self, supported: Qt.DropAction) -> None:
        row = self.currentRow()
        if row < 0:
            return
        drag = QDrag(self)
        drag.setMimeData(self._palette.mime_for_row(row))
        drag.setPixmap(self._drag_pixmap(row))
        drag.exec(Qt.DropAction.CopyAction)

    def _drag_pixmap(self, row: int) -> QPixmap:
        """A picture of the entry under the pointer while dragging."""
        rect = self.visualItemRect(self.item(row))
        ratio = self.devicePixelRatioF()
        pixmap = QPixmap(rect.size() * ratio)
        pixmap.setDevicePixelRatio(ratio)
        pixmap.fill(QColor(theme.BACKGROUND))  # opaque: no black corners without a compositor
        painter = QPainter(pixmap)
        option = QStyleOptionViewItem()
        self.initViewItemOption(option)
        option.rect = QRect(0, 0, rect.width(), rect.height())
        option.state |= QStyle.StateFlag.State_Enabled
        self.itemDelegate().paint(painter, option, self.model().index(row, 0))
        painter.end()
        return pixmap

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentRow() >= 0:
            self._palette.append_row(self.currentRow())
            return
        super().keyPressEvent(event)


class Palette(QWidget):
    """The block kinds, each with icon, label and tooltip; drag into the pipeline or double-click to append."""

    def __init__(self, doc: ProjectDocument, parent: QWidget | None = None):
        super().__init__(parent)
        self.doc = doc
        self.setObjectName("palette")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 10, 8, 8)
        layout.setSpacing(2)
        self.header = QLabel("Drag a block into the pipeline")
        self.header.setFont(theme.font(1, bold=True))
        self.header.setWordWrap(True)
        theme.style(self.header, "color: {TEXT};")
        self.subheader = QLabel("or double-click one to add it at the end")
        self.subheader.setFont(theme.font(-1))
        self.subheader.setWordWrap(True)
        theme.style(self.subheader, "color: {MUTED};")
        layout.addWidget(self.header)
        layout.addWidget(self.subheader)
        layout.addSpacing(6)
        self.list = PaletteList(self)
        layout.addWidget(self.list, 1)
        for entry in PALETTE_ENTRIES:
            item = QListWidgetItem(theme.block_icon(entry.block()), entry.label)
            item.setData(_BLOCK_ROLE, entry.block())
            item.setData(_HINT_ROLE, entry.hint)
            item.setData(_KIND_ROLE, entry.kind)
            item.setToolTip(f"<b>{entry.label}</b><br>{entry.help}<br>"
                            f"<i>Drag it into the pipeline, or double-click to add it at the end.</i>")
            self.list.addItem(item)
        self.list.itemDoubleClicked.connect(lambda item: self.append_row(self.list.row(item)))
        self.setAutoFillBackground(True)  # the app palette's window colour: theme.BACKGROUND
        doc.lockChanged.connect(self._on_lock)
        self._on_lock(doc.lock_reason)

    # --- for drags, double-clicks and tests ------------------------------------------------
    def entry_count(self) -> int:
        return self.list.count()

    def block_for_row(self, row: int) -> dict:
        """A fresh copy of the block that entry ``row`` creates."""
        return PALETTE_ENTRIES[row].block()

    def mime_for_row(self, row: int) -> QMimeData:
        """What dragging entry ``row`` carries: ``blocks_mime([block], "palette")``."""
        return blocks_mime([self.block_for_row(row)], "palette")

    def append_row(self, row: int) -> int:
        """Append entry ``row``'s block to the pipeline; its index, or -1 when the pipeline is locked."""
        if not 0 <= row < len(PALETTE_ENTRIES):
            return -1
        return self.doc.insert_blocks([self.block_for_row(row)])

    def _on_lock(self, reason: str) -> None:
        self.list.setEnabled(not reason)
        self.subheader.setText("locked while training" if reason else "or double-click one to add it at the end")
