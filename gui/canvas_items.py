"""The items the pipeline canvas draws: block cards, a group's frame and join, the wires between
them, the insertion marker and the empty pipeline's drop zone.

Items only draw what they are given (``CardItem.set_content``); the canvas places them.
"""
from __future__ import annotations

import html

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFontMetrics, QIcon, QPainter, QPainterPath, QPen, QPolygonF
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

from netbuilder.gui import theme
from netbuilder.gui.card_content import CardContent, short_message

CARD_WIDTH = 400
CARD_HEIGHT = 52            # two text lines
MESSAGE_LINES = 3           # an error or warning takes at most this many lines under the settings
STRIP = 46                  # the accent strip with the icon and the block's number
PAD = 12
NARROW = 300                # a card narrower than this (in a branch path) has a thinner strip and padding
BADGE_R = 9                 # the "!" badge on a card's corner


class CardItem(QGraphicsItem):
    """One card of the pipeline: the input, a block, or the output."""

    def __init__(self, role: str, index: int = -1, address: tuple = ()):
        super().__init__()
        self.role = role
        self.index = index          # the block's index in its pipeline for block cards; -1 for input/output
        self.address = address or ((index,) if index >= 0 else ())  # where the block is (core.addresses)
        self.width = CARD_WIDTH
        self.content: CardContent | None = None
        self.selected = False
        self.hovered = False
        self.dimmed = False         # the card being dragged
        self._lines: list[str] = []  # the message, wrapped
        self._line_h = 0
        self.setAcceptHoverEvents(True)
        if role == "block":
            self.setCursor(Qt.CursorShape.OpenHandCursor)

    # --- state ----------------------------------------------------------------------------
    @property
    def has_error(self) -> bool:
        return bool(self.content and self.content.errors)

    @property
    def has_warning(self) -> bool:
        return bool(self.content and self.content.warnings)

    @property
    def unknown(self) -> bool:
        return bool(self.content and self.content.unknown)

    @property
    def shape_text(self) -> str:
        return self.content.shape_text if self.content else ""

    @property
    def message(self) -> str:
        """The line under the settings: the first error, else the first warning ("" if none)."""
        c = self.content
        if c is None or not (c.errors or c.warnings):
            return ""
        found = c.errors or c.warnings
        more = f"  (+{len(found) - 1} more)" if len(found) > 1 else ""
        return short_message(found[0]) + more

    def height(self) -> float:
        return CARD_HEIGHT + (len(self._lines) * self._line_h + 8 if self._lines else 0)

    def set_content(self, content: CardContent, width: float = CARD_WIDTH) -> bool:
        """Show ``content`` on a card ``width`` wide; returns whether anything changed."""
        if content == self.content and width == self.width:
            return False
        self.prepareGeometryChange()
        self.content, self.width = content, width
        self._lines = self._wrap(self.message, bool(content.errors))
        self.setToolTip(self._tooltip_html())
        self.update()
        return True

    def _wrap(self, text: str, error: bool) -> list[str]:
        """``text`` broken into at most MESSAGE_LINES lines of the card's width, the last elided."""
        if not text:
            return []
        metrics = QFontMetrics(theme.font(-0.5, bold=error))
        self._line_h = metrics.height()
        strip, pad = self._margins
        return _wrapped(metrics, text, int(self.width - strip - 2 * pad - BADGE_R), MESSAGE_LINES)

    @property
    def _margins(self) -> tuple[int, int]:
        """(accent strip width, text padding): narrow cards give the text more of their width."""
        return (STRIP, PAD) if self.width >= NARROW else (36, 8)

    def set_selected(self, selected: bool) -> None:
        if selected != self.selected:
            self.selected = selected
            self.update()

    def set_dimmed(self, dimmed: bool) -> None:
        if dimmed != self.dimmed:
            self.dimmed = dimmed
            self.update()

    def tooltip_text(self) -> str:
        """The tooltip as plain text: what the block is, then every problem."""
        c = self.content
        if c is None:
            return ""
        lines = [f"{c.title}: {c.settings}" if c.settings else c.title]
        if c.help:
            lines.append(c.help)
        lines += [f"Error: {m}" for m in c.errors]
        lines += [f"Warning: {m}" for m in c.warnings]
        lines += [f"Note: {m}" for m in c.notes]
        return "\n".join(lines)

    def _tooltip_html(self) -> str:
        c = self.content
        esc = html.escape
        out = [f"<b>{esc(c.title)}</b>" + (f" &nbsp;{esc(c.settings)}" if c.settings else "")]
        if c.help:
            out.append(esc(c.help))
        out += [f"<span style='color:{theme.ERROR}'><b>Error:</b> {esc(m)}</span>" for m in c.errors]
        out += [f"<span style='color:{theme.WARNING_TEXT}'><b>Warning:</b> {esc(m)}</span>" for m in c.warnings]
        out += [f"<span style='color:{theme.MUTED}'>Note: {esc(m)}</span>" for m in c.notes]
        if c.unknown:
            out.append(f"<span style='color:{theme.MUTED}'>Its shape is unknown until the problem above it "
                       "is fixed.</span>")
        return "<p style='white-space:pre-wrap'>" + "<br>".join(out) + "</p>"

    # --- QGraphicsItem ---------------------------------------------------------------------
    def boundingRect(self) -> QRectF:
        # the selection ring is drawn 4 px outside; the badge sits on the top-right corner
        return QRectF(-5, -BADGE_R - 1, self.width + BADGE_R + 6, self.height() + BADGE_R + 6)

    def hoverEnterEvent(self, event) -> None:
        self.hovered = True
        self.update()

    def hoverLeaveEvent(self, event) -> None:
        self.hovered = False
        self.update()

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        c = self.content
        if c is None:
            return
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.TextAntialiasing)
        if self.dimmed:
            painter.setOpacity(0.4)
        h = self.height()
        rect = QRectF(0, 0, self.width, h)
        error, warning = bool(c.errors), bool(c.warnings)

        if self.selected:
            painter.setPen(QPen(QColor(theme.SELECTION), 2.5))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(rect.adjusted(-3.5, -3.5, 3.5, 3.5), 10, 10)

        fill = theme.ERROR_FILL if error else theme.SELECTION_FILL if self.selected else theme.SURFACE
        if c.unknown and not error:
            fill = theme.UNKNOWN_FILL
        if error:
            pen = QPen(QColor(theme.ERROR), 2)
        elif warning:
            pen = QPen(QColor(theme.WARNING), 1.6)
        elif c.unknown:
            pen = QPen(QColor(theme.FAINT), 1.3, Qt.PenStyle.DashLine)
        else:
            pen = QPen(QColor(theme.BORDER_HOVER if self.hovered else theme.BORDER), 1.2)
        painter.setPen(pen)
        painter.setBrush(QColor(fill))
        painter.drawRoundedRect(rect, 8, 8)

        # accent strip with the icon and the block's number
        strip = QPainterPath()
        strip.addRoundedRect(rect.adjusted(1, 1, -1, -1), 7, 7)
        clip = QPainterPath()
        strip_w, pad = self._margins
        clip.addRect(QRectF(0, 0, strip_w, h))
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(theme.tint(theme.accent(c.kind), 0.07 if c.unknown else 0.16, theme.SURFACE))
        painter.drawPath(strip.intersected(clip))
        painter.setPen(QPen(theme.tint(theme.accent(c.kind), 0.5, theme.SURFACE), 1))
        painter.drawLine(QPointF(strip_w, 1), QPointF(strip_w, h - 1))
        icon = theme.block_icon(c.icon)
        if not icon.isNull():
            mode = QIcon.Mode.Disabled if c.unknown else QIcon.Mode.Normal
            icon.paint(painter, QRectF((strip_w - 24) / 2, 5, 24, 24).toRect(), Qt.AlignmentFlag.AlignCenter, mode)
        if c.number:
            painter.setPen(QColor(theme.MUTED))
            painter.setFont(theme.font(-1, bold=True))
            painter.drawText(QRectF(0, 30, strip_w, 16), Qt.AlignmentFlag.AlignCenter, c.number)

        left = strip_w + pad
        right = self.width - pad - (BADGE_R if error or warning else 0)
        width = right - left
        # line 1: name, output shape
        bold = theme.font(0.5, bold=True)
        shape_font = theme.font(0.5, bold=not c.unknown, italic=c.unknown and not error)
        shape_w = QFontMetrics(shape_font).horizontalAdvance(c.shape_text) + 4
        painter.setFont(shape_font)
        painter.setPen(QColor(theme.ERROR if error and c.shape_text == "shape unknown" else
                              theme.FAINT if c.unknown else theme.TEXT))
        line1 = QRectF(left, 5, width, 22)
        painter.drawText(line1, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, c.shape_text)
        painter.setFont(bold)
        painter.setPen(QColor(theme.ERROR if error else theme.TEXT))
        title = QFontMetrics(bold).elidedText(c.title, Qt.TextElideMode.ElideRight, int(width - shape_w - 8))
        painter.drawText(line1, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, title)
        # line 2: settings, parameter count
        small = theme.font(-0.5)
        metrics = QFontMetrics(small)
        painter.setFont(small)
        line2 = QRectF(left, 27, width, 19)
        painter.setPen(QColor(theme.FAINT if c.unknown else theme.MUTED))
        params_w = metrics.horizontalAdvance(c.params_text) + 4 if c.params_text else 0
        painter.drawText(line2, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, c.params_text)
        painter.setPen(QColor(theme.MUTED))
        settings = metrics.elidedText(c.settings, Qt.TextElideMode.ElideRight, int(width - params_w - 10))
        painter.drawText(line2, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, settings)
        # then the first problem, wrapped
        if self._lines:
            painter.setPen(QColor(theme.ERROR if error else theme.WARNING_TEXT))
            painter.setFont(theme.font(-0.5, bold=error))
            for n, line in enumerate(self._lines):
                painter.drawText(QRectF(left, CARD_HEIGHT - 5 + n * self._line_h, width, self._line_h),
                                 Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, line)
        if error or warning:
            self._badge(painter, QPointF(self.width - 2, 2), theme.ERROR if error else theme.WARNING)

    @staticmethod
    def _badge(painter: QPainter, centre: QPointF, colour: str) -> None:
        painter.setPen(QPen(QColor(theme.SURFACE), 1.5))
        painter.setBrush(QColor(colour))
        painter.drawEllipse(centre, BADGE_R, BADGE_R)
        painter.setPen(QColor(theme.SURFACE))
        painter.setFont(theme.font(0, bold=True))
        painter.drawText(QRectF(centre.x() - BADGE_R, centre.y() - BADGE_R, 2 * BADGE_R, 2 * BADGE_R),
                         Qt.AlignmentFlag.AlignCenter, "!")


class WiresItem(QGraphicsItem):
    """Every connection line of the pipeline in one item: arrows down the gaps between cards, plain
    lines (a branch group's fan-out and fan-in) and residual skips (polylines ending in a head)."""

    def __init__(self):
        super().__init__()
        self._wires: tuple = ((), (), ())
        self._rect = QRectF()
        self.setZValue(-1)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)

    def set_wires(self, arrows, lines=(), skips=()) -> None:
        """``arrows``: (x, top, bottom) each; ``lines`` and ``skips``: sequences of (x, y) points."""
        wires = (tuple(arrows), tuple(tuple(p) for p in lines), tuple(tuple(p) for p in skips))
        if wires == self._wires:
            return
        self.prepareGeometryChange()
        self._wires = wires
        xs = [x for x, _, _ in arrows] + [p[0] for line in (*lines, *skips) for p in line]
        ys = [y for _, a, b in arrows for y in (a, b)] + [p[1] for line in (*lines, *skips) for p in line]
        self._rect = (QRectF(min(xs) - 8, min(ys) - 8, max(xs) - min(xs) + 16, max(ys) - min(ys) + 16)
                      if xs else QRectF())
        self.update()

    @property
    def arrows(self) -> tuple:
        return self._wires[0]

    @property
    def skips(self) -> tuple:
        return self._wires[2]

    def boundingRect(self) -> QRectF:
        return self._rect

    @staticmethod
    def _head(painter: QPainter, tip: QPointF, dx: float, dy: float) -> None:
        """A filled arrow head at ``tip`` pointing along the unit direction (dx, dy)."""
        back = QPointF(tip.x() - 7 * dx, tip.y() - 7 * dy)
        side = QPointF(-dy * 5, dx * 5)
        painter.drawPolygon(QPolygonF([back + side, back - side, tip]))

    def paint(self, painter: QPainter, option, widget=None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        colour = QColor(theme.ARROW)
        arrows, lines, skips = self._wires
        for x, top, bottom in arrows:
            painter.setPen(QPen(colour, 1.6))
            # the tip stops short of the card, clear of a selected card's ring
            painter.drawLine(QPointF(x, top + 3), QPointF(x, bottom - 11))
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(colour)
            self._head(painter, QPointF(x, bottom - 6), 0, 1)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        for line in lines:
            painter.setPen(QPen(colour, 1.6))
            painter.drawPolyline(QPolygonF([QPointF(*p) for p in line]))
        skip = QColor(theme.SELECTION)
        for line in skips:
            painter.setPen(QPen(skip, 2, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap, Qt.PenJoinStyle.RoundJoin))
            points = [QPointF(*p) for p in line]
            painter.drawPolyline(QPolygonF(points))
            a, b = points[-2], points[-1]
            length = max(1e-6, ((b.x() - a.x()) ** 2 + (b.y() - a.y()) ** 2) ** 0.5)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(skip)
            self._head(painter, b, (b.x() - a.x()) / length, (b.y() - a.y()) / length)
            painter.setBrush(Qt.BrushStyle.NoBrush)


class FrameItem(QGraphicsItem):
    """A group's lane: a tinted frame behind its header card, its inner cards and its join, with
    each branch path's label; red when anything inside has an error."""

    def __init__(self, address: tuple):
        super().__init__()
        self.address = address
        self.kind, self.error = "", False
        self._rect = QRectF()
        self._labels: tuple = ()
        self.setZValue(-2)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)

    def set_frame(self, kind: str, rect: QRectF, labels: tuple, error: bool) -> None:
        """``rect`` in scene coordinates (the item stays at the origin); ``labels``: (x, y, text)."""
        if (kind, rect, labels, error) != (self.kind, self._rect, self._labels, self.error):
            self.prepareGeometryChange()
            self.kind, self._rect, self._labels, self.error = kind, QRectF(rect), tuple(labels), error
            self.update()

    @property
    def rect(self) -> QRectF:
        return QRectF(self._rect)

    @property
    def labels(self) -> list[str]:
        return [text for _, _, text in self._labels]

    def boundingRect(self) -> QRectF:
        return self._rect.adjusted(-2, -2, 2, 2)

    def paint(self, painter: QPainter, option, widget=None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        accent = theme.accent(self.kind)
        border = QColor(theme.ERROR) if self.error else theme.tint(accent, 0.55, theme.SURFACE)
        painter.setPen(QPen(border, 1.6 if self.error else 1.2, Qt.PenStyle.SolidLine))
        painter.setBrush(theme.tint(accent, 0.07, theme.BACKGROUND))
        painter.drawRoundedRect(self._rect, 11, 11)
        painter.setPen(QColor(theme.MUTED))
        painter.setFont(theme.font(-1.5, italic=True))
        for x, y, text in self._labels:
            painter.drawText(QPointF(x + 14, y + 12), text)


class JoinItem(QGraphicsItem):
    """Where a group's lanes meet: ⊕ (the skip added) or the merge of branch paths, with the shape
    that comes out, or in red why they cannot meet."""

    HEIGHT = 30

    def __init__(self, address: tuple):
        super().__init__()
        self.address = address
        self.width = 300.0
        self.glyph, self.text = "+", ""
        self.errors: tuple[str, ...] = ()
        self.notes: tuple[str, ...] = ()
        self._lines: list[str] = []
        self._line_h = QFontMetrics(theme.font(-0.5, bold=True)).height()
        self.setAcceptHoverEvents(True)

    def set_join(self, glyph: str, text: str, errors: tuple, notes: tuple, width: float) -> None:
        if (glyph, text, errors, notes, width) == (self.glyph, self.text, self.errors, self.notes, self.width):
            return
        self.prepareGeometryChange()
        self.glyph, self.text, self.errors, self.notes, self.width = glyph, text, tuple(errors), tuple(notes), width
        metrics = QFontMetrics(theme.font(-0.5, bold=True))
        self._lines = _wrapped(metrics, short_message(errors[0]), int(width - 44)) if errors else []
        self.setToolTip("\n".join([text, *errors, *notes]))
        self.update()

    @property
    def message(self) -> str:
        return self.errors[0] if self.errors else ""

    def height(self) -> float:
        return self.HEIGHT + (len(self._lines) * self._line_h + 6 if self._lines else 0)

    def boundingRect(self) -> QRectF:
        return QRectF(-2, -2, self.width + 4, self.height() + 4)

    def paint(self, painter: QPainter, option, widget=None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        error = bool(self.errors)
        rect = QRectF(0, 0, self.width, self.height())
        painter.setPen(QPen(QColor(theme.ERROR if error else theme.BORDER), 2 if error else 1.2))
        painter.setBrush(QColor(theme.ERROR_FILL if error else theme.SURFACE))
        painter.drawRoundedRect(rect, self.HEIGHT / 2, self.HEIGHT / 2)
        centre = QPointF(18, self.HEIGHT / 2)
        painter.setPen(QPen(QColor(theme.ERROR if error else theme.SELECTION), 1.8))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawEllipse(centre, 9, 9)
        painter.setFont(theme.font(0, bold=True))
        painter.drawText(QRectF(centre.x() - 9, centre.y() - 9, 18, 18), Qt.AlignmentFlag.AlignCenter, self.glyph)
        painter.setPen(QColor(theme.ERROR if error else theme.TEXT))
        painter.setFont(theme.font(-0.5, bold=True))
        text = QFontMetrics(theme.font(-0.5, bold=True)).elidedText(self.text, Qt.TextElideMode.ElideRight,
                                                                     int(self.width - 44))
        painter.drawText(QRectF(34, 0, self.width - 44, self.HEIGHT), Qt.AlignmentFlag.AlignVCenter, text)
        for n, line in enumerate(self._lines):
            painter.drawText(QRectF(34, self.HEIGHT - 4 + n * self._line_h, self.width - 44, self._line_h),
                             Qt.AlignmentFlag.AlignVCenter, line)


def _wrapped(metrics: QFontMetrics, text: str, width: int, most: int = 4) -> list[str]:
    """``text`` broken at spaces into at most ``most`` lines of ``width`` pixels, the last elided."""
    lines: list[str] = []
    rest = text
    while rest and len(lines) < most:
        if len(lines) == most - 1 or metrics.horizontalAdvance(rest) <= width:
            lines.append(metrics.elidedText(rest, Qt.TextElideMode.ElideRight, width))
            break
        cut = len(rest)
        while cut > 0 and metrics.horizontalAdvance(rest[:cut]) > width:
            space = rest.rfind(" ", 0, cut)
            cut = space if space > 0 else cut - 1
        cut = max(cut, 1)
        lines.append(rest[:cut])
        rest = rest[cut:].lstrip()
    return lines


class InsertionMarker(QGraphicsItem):
    """Where a dragged block will land: a bold line with round ends across the gap."""

    def __init__(self):
        super().__init__()
        self.width = CARD_WIDTH
        self.setZValue(10)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self.hide()

    def set_width(self, width: float) -> None:
        if width != self.width:
            self.prepareGeometryChange()
            self.width = width

    def boundingRect(self) -> QRectF:
        return QRectF(-20, -8, self.width + 40, 16)

    def paint(self, painter: QPainter, option, widget=None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        colour = QColor(theme.SELECTION)
        painter.setPen(QPen(colour, 3.5, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
        painter.drawLine(QPointF(-6, 0), QPointF(self.width + 6, 0))
        painter.setPen(QPen(QColor(theme.SURFACE), 2))
        painter.setBrush(colour)
        painter.drawEllipse(QPointF(-10, 0), 6, 6)
        painter.drawEllipse(QPointF(self.width + 10, 0), 6, 6)


class PlaceholderItem(QGraphicsItem):
    """The empty pipeline: a dashed drop zone saying what to do."""

    HEIGHT = 96

    def __init__(self):
        super().__init__()
        self.active = False  # a drag hovers over it
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)

    def set_active(self, active: bool) -> None:
        if active != self.active:
            self.active = active
            self.update()

    def boundingRect(self) -> QRectF:
        return QRectF(-2, -2, CARD_WIDTH + 4, self.HEIGHT + 4)

    def paint(self, painter: QPainter, option, widget=None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        colour = QColor(theme.SELECTION if self.active else theme.BORDER_HOVER)
        painter.setPen(QPen(colour, 2 if self.active else 1.5, Qt.PenStyle.DashLine))
        painter.setBrush(QBrush(QColor(theme.SELECTION_FILL if self.active else theme.SURFACE)))
        rect = QRectF(0, 0, CARD_WIDTH, self.HEIGHT)
        painter.drawRoundedRect(rect, 10, 10)
        painter.setPen(QColor(theme.TEXT))
        painter.setFont(theme.font(1, bold=True))
        painter.drawText(rect.adjusted(0, 18, 0, -48), Qt.AlignmentFlag.AlignCenter,
                         "Drag blocks here from the palette")
        painter.setPen(QColor(theme.MUTED))
        painter.setFont(theme.font(-0.5))
        painter.drawText(rect.adjusted(12, 48, -12, -14), Qt.AlignmentFlag.AlignCenter,
                         "or double-click a palette entry · start with convolution or flatten")
