"""The look of the app in one place: light and dark palettes, kind accent colours, fonts and icons.

Views import colours from here instead of writing hex values of their own; the icon generator
(gui/icon_drawings.py) reads the accent colours too, so icons and cards always match.
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from functools import cache

import shiboken6
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QColor, QFont, QIcon, QPalette
from PySide6.QtWidgets import QApplication, QWidget

from netbuilder.core.blocks import KINDS
from netbuilder.core.resources import resource_path

ICONS_DIR = resource_path("icons")

# --- surfaces and text: one palette per colour scheme --------------------------------------
# The names below are rebound by ``apply_scheme``; read them as ``theme.TEXT`` at paint time
# (never copy one into a module constant) and dark mode just works.
LIGHT = {
    "BACKGROUND": "#f4f6f8",      # canvas and panel background
    "SURFACE": "#ffffff",         # cards, lists, plots
    "UNKNOWN_FILL": "#fafbfc",    # a card whose shape is unknown
    "BORDER": "#cfd6de",          # card outlines, separators
    "BORDER_HOVER": "#90a4ae",
    "TEXT": "#263238",            # main text
    "MUTED": "#56656f",           # secondary text (settings, counts)
    "FAINT": "#a7b3bc",           # "shape unknown", disabled text
    "ARROW": "#9aa7b2",           # arrows between cards
    "SELECTION": "#1e6fc4",       # selected card ring, insertion marker, links
    "SELECTION_FILL": "#e8f2fd",
    "ERROR": "#c62828",
    "ERROR_FILL": "#fdecea",
    "WARNING": "#e09b00",         # amber marks
    "WARNING_TEXT": "#7a4f00",    # amber is unreadable as text on white; this darker tone is not
    "WARNING_FILL": "#fff6df",
    "BANNER": "#fff3cd",          # the "pipeline locked" banner
    "BANNER_BORDER": "#e0b84a",
    "BANNER_TEXT": "#6d4c00",
}
DARK = {
    "BACKGROUND": "#1d2125",
    "SURFACE": "#262b30",
    "UNKNOWN_FILL": "#22272b",
    "BORDER": "#3e474f",
    "BORDER_HOVER": "#66737e",
    "TEXT": "#e4e9ed",
    "MUTED": "#a9b6bf",
    "FAINT": "#6c7984",
    "ARROW": "#75828c",
    "SELECTION": "#5aa9f0",
    "SELECTION_FILL": "#1e3550",
    "ERROR": "#f07b7b",
    "ERROR_FILL": "#3e2327",
    "WARNING": "#e8a93a",
    "WARNING_TEXT": "#f0c36a",
    "WARNING_FILL": "#36301f",
    "BANNER": "#3b3420",
    "BANNER_BORDER": "#8a7430",
    "BANNER_TEXT": "#f2d690",
}
SCHEMES = {"light": LIGHT, "dark": DARK}
SCHEME = "light"
# The current scheme's colours: the light ones until ``apply_scheme`` rebinds them.
BACKGROUND = LIGHT["BACKGROUND"]
SURFACE = LIGHT["SURFACE"]
UNKNOWN_FILL = LIGHT["UNKNOWN_FILL"]
BORDER = LIGHT["BORDER"]
BORDER_HOVER = LIGHT["BORDER_HOVER"]
TEXT = LIGHT["TEXT"]
MUTED = LIGHT["MUTED"]
FAINT = LIGHT["FAINT"]
ARROW = LIGHT["ARROW"]
SELECTION = LIGHT["SELECTION"]
SELECTION_FILL = LIGHT["SELECTION_FILL"]
ERROR = LIGHT["ERROR"]
ERROR_FILL = LIGHT["ERROR_FILL"]
WARNING = LIGHT["WARNING"]
WARNING_TEXT = LIGHT["WARNING_TEXT"]
WARNING_FILL = LIGHT["WARNING_FILL"]
BANNER = LIGHT["BANNER"]
BANNER_BORDER = LIGHT["BANNER_BORDER"]
BANNER_TEXT = LIGHT["BANNER_TEXT"]

# --- kind accents: distinct but muted, readable next to red and amber ------------------------
ACCENTS = {**{kind: spec.accent for kind, spec in KINDS.items()}, "input": "#455a64", "output": "#455a64"}
UNKNOWN_ACCENT = "#90a4ae"


def accent(kind: str) -> QColor:
    """The accent colour of a block kind (grey for kinds the app does not know)."""
    return QColor(ACCENTS.get(kind, UNKNOWN_ACCENT))


def tint(color: str | QColor, alpha: float, over: str | QColor = "#ffffff") -> QColor:
    """``color`` blended over ``over`` (white) at ``alpha`` (0..1): opaque, so overlapping shapes
    stay clean. Cards pass ``theme.SURFACE`` so their tints follow the colour scheme."""
    c, b = QColor(color), QColor(over)
    return QColor(round(b.red() + (c.red() - b.red()) * alpha), round(b.green() + (c.green() - b.green()) * alpha),
                  round(b.blue() + (c.blue() - b.blue()) * alpha))


# --- fonts -----------------------------------------------------------------------------------
def font(point_delta: float = 0.0, bold: bool = False, italic: bool = False) -> QFont:
    """The application font, ``point_delta`` points larger (or smaller when negative)."""
    f = QFont()
    if point_delta:
        f.setPointSizeF(max(6.0, f.pointSizeF() + point_delta))
    f.setBold(bold)
    f.setItalic(italic)
    return f


# --- icons -----------------------------------------------------------------------------------
def icon_name(block: dict | str) -> str:
    """The icon file stem of a block (or kind): pooling has one per mode ("pool_max")."""
    if isinstance(block, str):
        return block
    kind = block.get("kind")
    spec = KINDS.get(kind) if isinstance(kind, str) else None
    if spec is not None:
        return spec.icon(block)
    return kind if isinstance(kind, str) else "unknown"


@cache
def _icon(stem: str) -> QIcon:
    path = ICONS_DIR / f"{stem}.svg"
    return QIcon(str(path)) if path.exists() else QIcon()


def block_icon(block: dict | str) -> QIcon:
    """The icon of a block dict or a name such as "conv", "pool_sum", "input" (null icon if none)."""
    return _icon(icon_name(block))


APP_ICON = "netbuilder"  # resources/icons/netbuilder.svg: the application's own icon, not a block's


def app_icon() -> QIcon:
    return _icon(APP_ICON)


# --- colour schemes --------------------------------------------------------------------------
STYLE_PROPERTY = "netbuilderStyle"  # a widget's style sheet template, re-filled on a scheme change
TEXT_PROPERTY = "netbuilderText"  # a label's rich text with {MUTED}-style colour names, likewise
_COLOUR_NAME = re.compile(r"\{([A-Z_]+)\}")


class _Notifier(QObject):
    # The colour scheme changed ("light" or "dark"): views that cache colours restyle themselves.
    schemeChanged = Signal(str)


_notifier: _Notifier | None = None


def notifier() -> _Notifier:
    global _notifier
    if _notifier is None:
        _notifier = _Notifier()
    return _notifier


def scheme_for(desktop: Qt.ColorScheme) -> str:
    """The scheme to use for the desktop's colour scheme: dark only when the desktop says dark."""
    return "dark" if desktop == Qt.ColorScheme.Dark else "light"


def style(widget: QWidget, template: str) -> None:
    """Set ``widget``'s style sheet from ``template``, with ``{TEXT}``-style names filled in from the
    current scheme, and again whenever the scheme changes."""
    widget.setProperty(STYLE_PROPERTY, template)
    widget.setStyleSheet(fill(template))


@contextmanager
def colours(name: str):
    """Paint with scheme ``name``'s colours inside the block (a diagram, a picture for a file),
    without restyling any widget; the current scheme's colours come back after."""
    before = SCHEMES[SCHEME]
    globals().update(SCHEMES[name])
    try:
        yield
    finally:
        globals().update(before)


def fill(template: str) -> str:
    """``template`` with every ``{NAME}`` of a theme colour replaced by its current value (other
    braces, e.g. in a class name, are left alone)."""
    colours = SCHEMES[SCHEME]
    return _COLOUR_NAME.sub(lambda m: colours.get(m.group(1), m.group(0)), template)


def set_text(label, template: str) -> None:
    """Set a label's rich text from ``template`` (``<span style='color:{MUTED}'>``), filled in from
    the current scheme now and again whenever the scheme changes."""
    label.setProperty(TEXT_PROPERTY, template)
    label.setText(fill(template))


def apply_scheme(name: str, app: QApplication | None = None) -> None:
    """Switch the whole app to the ``light`` or ``dark`` palette: widgets, style sheets set with
    ``style``, pyqtgraph plots, and (through ``schemeChanged``) everything that paints itself."""
    global SCHEME
    if name not in SCHEMES:
        raise ValueError(f"unknown colour scheme {name!r}; expected one of {', '.join(SCHEMES)}")
    SCHEME = name
    globals().update(SCHEMES[name])
    app = app or QApplication.instance()
    if app is None:
        return
    app.setPalette(palette())
    import pyqtgraph as pg

    pg.setConfigOptions(background=SURFACE, foreground=TEXT)
    # The widgets of the open windows, listed first: restyling one may delete or add others.
    widgets = [w for top in app.topLevelWidgets() for w in (top, *top.findChildren(QWidget))]
    for widget in widgets:
        if not shiboken6.isValid(widget):
            continue
        template = widget.property(STYLE_PROPERTY)
        if template:
            widget.setStyleSheet(fill(template))
        text = widget.property(TEXT_PROPERTY)
        if text:
            widget.setText(fill(text))
        if isinstance(widget, pg.GraphicsView):
            style_plots(widget)
    notifier().schemeChanged.emit(name)


def palette() -> QPalette:
    """Fusion's palette in the current scheme's colours (the canvas colours are made for these)."""
    p = QPalette()
    roles = {
        QPalette.ColorRole.Window: BACKGROUND, QPalette.ColorRole.Base: SURFACE,
        QPalette.ColorRole.AlternateBase: BACKGROUND, QPalette.ColorRole.Button: BACKGROUND,
        QPalette.ColorRole.WindowText: TEXT, QPalette.ColorRole.Text: TEXT, QPalette.ColorRole.ButtonText: TEXT,
        QPalette.ColorRole.ToolTipBase: SURFACE, QPalette.ColorRole.ToolTipText: TEXT,
        QPalette.ColorRole.PlaceholderText: MUTED, QPalette.ColorRole.Highlight: SELECTION,
        QPalette.ColorRole.HighlightedText: SURFACE, QPalette.ColorRole.Link: SELECTION,
        QPalette.ColorRole.BrightText: SURFACE,
        # Fusion draws frames and bevels from these: derived from the surfaces, so they follow too.
        QPalette.ColorRole.Light: tint(SURFACE, 0.6, BACKGROUND), QPalette.ColorRole.Midlight: BORDER,
        QPalette.ColorRole.Mid: BORDER_HOVER, QPalette.ColorRole.Dark: BORDER_HOVER,
        QPalette.ColorRole.Shadow: FAINT,
    }
    for role, colour in roles.items():
        p.setColor(role, QColor(colour))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor(FAINT))
    return p


def style_plots(view) -> None:
    """Give a pyqtgraph view (PlotWidget, GraphicsLayoutWidget) the scheme's colours: its
    background, axes and their labels, legends and notes."""
    import pyqtgraph as pg

    view.setBackground(SURFACE)
    for item in view.scene().items():
        if isinstance(item, pg.AxisItem):
            item.setPen(pg.mkPen(BORDER))
            item.setTextPen(pg.mkPen(MUTED))
            item.labelStyle = {**item.labelStyle, "color": MUTED}
            item._updateLabel()  # re-renders the label's HTML with the new colour (no public call does)
        elif isinstance(item, pg.LegendItem):
            item.setLabelTextColor(TEXT)
        elif isinstance(item, pg.LabelItem):  # plot titles
            item.setText(item.text, color=TEXT)
        elif isinstance(item, pg.TextItem):
            item.setColor(MUTED)


def contrast(a: str | QColor, b: str | QColor) -> float:
    """WCAG contrast ratio of two colours, 1 (same) to 21 (black on white); text needs 4.5."""
    def luminance(c: QColor) -> float:
        def channel(v: float) -> float:
            return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4
        return 0.2126 * channel(c.redF()) + 0.7152 * channel(c.greenF()) + 0.0722 * channel(c.blueF())
    la, lb = sorted((luminance(QColor(a)), luminance(QColor(b))), reverse=True)
    return (la + 0.05) / (lb + 0.05)
