"""The items the pipeline canvas draws (block cards, the arrows between them, the insertion marker)
and what each card shows, derived from the project and its inference.

Items only draw what they are given (``CardItem.set_content``); the canvas places them.
"""
from __future__ import annotations

import html
import os
from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFontMetrics, QIcon, QPainter, QPainterPath, QPen, QPolygonF
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

from netbuilder.core.errors import ERROR, NOTE, WARNING
from netbuilder.core.inference import Inference
from netbuilder.core.project import Project
from netbuilder.core.summary import format_shape, short_settings
from netbuilder.gui import theme
from netbuilder.gui.palette import block_help

CARD_WIDTH = 400
CARD_HEIGHT = 52            # two text lines
MESSAGE_LINES = 3           # an error or warning takes at most this many lines under the settings
STRIP = 46                  # the accent strip with the icon and the block's number
PAD = 12
BADGE_R = 9                 # the "!" badge on a card's corner


@dataclass(frozen=True)
class CardContent:
    """What a card shows; equal contents mean nothing to repaint."""

    role: str                       # "block", "input" or "output"
    kind: str                       # for the accent colour
    icon: str                       # icon stem ("conv", "pool_max", "input")
    number: str                     # "3" (1-based) for blocks, "" for input/output
    title: str                      # block name, "Input", "Output"
    settings: str                   # short settings, dataset, ...
    shape_text: str                 # "6 x 28 x 28", "shape unknown", "10 classes"
    params_text: str                # "156 params", "" for input/output
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    unknown: bool = False           # shape unknown because of a problem upstream
    help: str = ""                  # what the block does, for the tooltip


def _short(message: str) -> str:
    """A problem message without its "block 3 (conv): " prefix: the card already says which block."""
    head, sep, rest = message.partition("): ")
    return rest if sep and head.startswith("block ") and "(" in head else message


class CardItem(QGraphicsItem):
    """One card of the pipeline: the input, a block, or the output."""

    def __init__(self, role: str, index: int = -1):
        super().__init__()
        self.role = role
        self.index = index          # the block's index for block cards; -1 for input/output
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
        return _short(found[0]) + more

    def height(self) -> float:
        return CARD_HEIGHT + (len(self._lines) * self._line_h + 8 if self._lines else 0)

    def set_content(self, content: CardContent) -> bool:
        """Show ``content``; returns whether anything changed."""
        if content == self.content:
            return False
        self.prepareGeometryChange()
        self.content = content
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
        width = CARD_WIDTH - STRIP - 2 * PAD - BADGE_R
        lines: list[str] = []
        rest = text
        while rest and len(lines) < MESSAGE_LINES:
            if len(lines) == MESSAGE_LINES - 1 or metrics.horizontalAdvance(rest) <= width:
                lines.append(metrics.elidedText(rest, Qt.TextElideMode.ElideRight, width))
                break
            # the longest run of whole words that fits
            cut = len(rest)
            while cut > 0 and metrics.horizontalAdvance(rest[:cut]) > width:
                space = rest.rfind(" ", 0, cut)
                cut = space if space > 0 else cut - 1
            cut = max(cut, 1)
            lines.append(rest[:cut])
            rest = rest[cut:].lstrip()
        return lines

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
        return QRectF(-5, -BADGE_R - 1, CARD_WIDTH + BADGE_R + 6, self.height() + BADGE_R + 6)

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
        rect = QRectF(0, 0, CARD_WIDTH, h)
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
        clip.addRect(QRectF(0, 0, STRIP, h))
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(theme.tint(theme.accent(c.kind), 0.07 if c.unknown else 0.16, theme.SURFACE))
        painter.drawPath(strip.intersected(clip))
        painter.setPen(QPen(theme.tint(theme.accent(c.kind), 0.5, theme.SURFACE), 1))
        painter.drawLine(QPointF(STRIP, 1), QPointF(STRIP, h - 1))
        icon = theme.block_icon(c.icon)
        if not icon.isNull():
            mode = QIcon.Mode.Disabled if c.unknown else QIcon.Mode.Normal
            icon.paint(painter, QRectF(11, 5, 24, 24).toRect(), Qt.AlignmentFlag.AlignCenter, mode)
        if c.number:
            painter.setPen(QColor(theme.MUTED))
            painter.setFont(theme.font(-1, bold=True))
            painter.drawText(QRectF(0, 30, STRIP, 16), Qt.AlignmentFlag.AlignCenter, c.number)

        left = STRIP + PAD
        right = CARD_WIDTH - PAD - (BADGE_R if error or warning else 0)
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
            self._badge(painter, QPointF(CARD_WIDTH - 2, 2), theme.ERROR if error else theme.WARNING)

    @staticmethod
    def _badge(painter: QPainter, centre: QPointF, colour: str) -> None:
        painter.setPen(QPen(QColor(theme.SURFACE), 1.5))
        painter.setBrush(QColor(colour))
        painter.drawEllipse(centre, BADGE_R, BADGE_R)
        painter.setPen(QColor(theme.SURFACE))
        painter.setFont(theme.font(0, bold=True))
        painter.drawText(QRectF(centre.x() - BADGE_R, centre.y() - BADGE_R, 2 * BADGE_R, 2 * BADGE_R),
                         Qt.AlignmentFlag.AlignCenter, "!")


class ArrowsItem(QGraphicsItem):
    """The arrows between consecutive cards, one item for all of them (``set_gaps``)."""

    def __init__(self):
        super().__init__()
        self._gaps: list[tuple[float, float]] = []
        self.setZValue(-1)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)

    def set_gaps(self, gaps: list[tuple[float, float]]) -> None:
        """(top, bottom) y of each arrow, drawn down the cards' centre line."""
        if gaps != self._gaps:
            self.prepareGeometryChange()
            self._gaps = list(gaps)
            self.update()

    def boundingRect(self) -> QRectF:
        if not self._gaps:
            return QRectF()
        return QRectF(CARD_WIDTH / 2 - 8, self._gaps[0][0], 16, self._gaps[-1][1] - self._gaps[0][0])

    def paint(self, painter: QPainter, option, widget=None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        colour = QColor(theme.ARROW)
        x = CARD_WIDTH / 2
        for top, bottom in self._gaps:
            painter.setPen(QPen(colour, 1.6))
            # the tip stops short of the card, clear of a selected card's ring
            painter.drawLine(QPointF(x, top + 3), QPointF(x, bottom - 11))
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(colour)
            painter.drawPolygon(QPolygonF([QPointF(x - 5, bottom - 13), QPointF(x + 5, bottom - 13),
                                           QPointF(x, bottom - 6)]))


class InsertionMarker(QGraphicsItem):
    """Where a dragged block will land: a bold line with round ends across the gap."""

    def __init__(self):
        super().__init__()
        self.setZValue(10)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self.hide()

    def boundingRect(self) -> QRectF:
        return QRectF(-20, -8, CARD_WIDTH + 40, 16)

    def paint(self, painter: QPainter, option, widget=None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        colour = QColor(theme.SELECTION)
        painter.setPen(QPen(colour, 3.5, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
        painter.drawLine(QPointF(-6, 0), QPointF(CARD_WIDTH + 6, 0))
        painter.setPen(QPen(QColor(theme.SURFACE), 2))
        painter.setBrush(colour)
        painter.drawEllipse(QPointF(-10, 0), 6, 6)
        painter.drawEllipse(QPointF(CARD_WIDTH + 10, 0), 6, 6)


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


# --- what each card shows, from the project and its inference --------------------------------
def _dataset_label(spec: object) -> str:
    if not isinstance(spec, dict):
        return "no dataset"
    kind = spec.get("kind", "shapes")
    if kind == "shapes":
        return "built-in shapes dataset"
    path = spec.get("path") or spec.get("train_images")
    return f"{kind} dataset" + (f" · {os.path.basename(str(path))}" if path else "")


def block_content(project: Project, inference: Inference, i: int) -> CardContent:
    """Block ``i``'s card: name, short settings, output shape, parameters and its problems."""
    block = project.blocks[i]
    info = inference.blocks[i] if i < len(inference.blocks) else None
    problems = inference.problems_for(i)
    kind = block.get("kind") if isinstance(block, dict) else None
    errors = tuple(p.message for p in problems if p.severity == ERROR)
    known = info is not None and info.output_shape is not None
    return CardContent(
        role="block",
        kind=kind if isinstance(kind, str) else "?",
        icon=theme.icon_name(block) if isinstance(block, dict) else "unknown",
        number=str(i + 1),
        title=info.name if info is not None else f"block {i + 1}",
        settings=short_settings(block),
        shape_text=format_shape(info.output_shape) if known else "shape unknown",
        params_text=f"{info.params:,} params" if known else "? params",
        errors=errors,
        warnings=tuple(p.message for p in problems if p.severity == WARNING),
        notes=tuple(p.message for p in problems if p.severity == NOTE),
        unknown=not known and not errors,
        help=block_help(block) if isinstance(block, dict) else "",
    )


def _project_problems(inference: Inference, fields: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(errors, warnings) not tied to a block whose field is one of ``fields``."""
    found = [p for p in inference.problems if p.block is None and p.field in fields]
    return (tuple(p.message for p in found if p.severity == ERROR),
            tuple(p.message for p in found if p.severity == WARNING))


def input_content(project: Project, inference: Inference) -> CardContent:
    shape = inference.input_shape
    errors, warnings = _project_problems(inference, ("input_shape", "dataset", "dataset.kind"))
    return CardContent(
        role="input", kind="input", icon="input", number="", title="Input",
        settings=_dataset_label(project.dataset),
        shape_text=format_shape(shape) if shape else "shape unknown", params_text="",
        errors=errors, warnings=warnings,
        help="What the network receives: channels x height x width of each image. "
             "Double-click to choose the data.")


def output_content(project: Project, inference: Inference) -> CardContent:
    classes = project.num_classes
    errors, warnings = _project_problems(inference, ("num_classes",))
    if classes is None:
        shape_text = "classes from the dataset"
    else:
        shape_text = "1 class (binary)" if classes == 1 else f"{classes} classes"
    if not project.blocks:
        settings = "the pipeline is empty"
    elif inference.output_shape is None:
        settings = "network output unknown"
    else:
        settings = f"network output {format_shape(inference.output_shape)}"
    return CardContent(
        role="output", kind="output", icon="output", number="", title="Output",
        settings=settings, shape_text=shape_text, params_text="", errors=errors, warnings=warnings,
        help="The network's answer: the last block must give one value per class.")
