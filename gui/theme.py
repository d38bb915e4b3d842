"""The look of the app in one place: a calm light palette, kind accent colours, fonts and block icons.

Views import colours from here instead of writing hex values of their own; the icon generator
(resources/icons/make_icons.py) reads the accent colours too, so icons and cards always match.
"""
from __future__ import annotations

from functools import lru_cache

from PySide6.QtGui import QColor, QFont, QIcon

from netbuilder.core.resources import resource_path

ICONS_DIR = resource_path("icons")

# --- surfaces and text ---------------------------------------------------------------------
BACKGROUND = "#f4f6f8"      # canvas and panel background
SURFACE = "#ffffff"         # cards, lists
BORDER = "#cfd6de"          # card outlines, separators
BORDER_HOVER = "#90a4ae"
TEXT = "#263238"            # main text
MUTED = "#6b7b86"           # secondary text (settings, counts)
FAINT = "#a7b3bc"           # "shape unknown", disabled text
ARROW = "#9aa7b2"           # arrows between cards

SELECTION = "#1e88e5"       # selected card ring, insertion marker
SELECTION_FILL = "#e8f2fd"

ERROR = "#c62828"
ERROR_FILL = "#fdecea"
WARNING = "#e09b00"         # amber marks
WARNING_TEXT = "#8a5a00"    # amber is unreadable as text on white; this darker tone is not
WARNING_FILL = "#fff6df"

BANNER = "#fff3cd"          # the "pipeline locked" banner
BANNER_BORDER = "#e0b84a"
BANNER_TEXT = "#6d4c00"

# --- kind accents: distinct but muted, readable next to red and amber ------------------------
ACCENTS = {
    "conv": "#4f74b8",       # blue
    "pool": "#2f9384",       # teal
    "dense": "#8460b0",      # purple
    "flatten": "#a9803e",    # ochre
    "activation": "#c0683f", # terracotta
    "dropout": "#6f7f8c",    # slate grey
    "input": "#455a64",
    "output": "#455a64",
}
UNKNOWN_ACCENT = "#90a4ae"


def accent(kind: str) -> QColor:
    """The accent colour of a block kind (grey for kinds the app does not know)."""
    return QColor(ACCENTS.get(kind, UNKNOWN_ACCENT))


def tint(color: str | QColor, alpha: float) -> QColor:
    """``color`` blended over white at ``alpha`` (0..1): opaque, so overlapping shapes stay clean."""
    c = QColor(color)
    return QColor(round(255 + (c.red() - 255) * alpha), round(255 + (c.green() - 255) * alpha),
                  round(255 + (c.blue() - 255) * alpha))


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
    if kind == "pool":
        mode = block.get("mode", "max")
        return f"pool_{mode}" if mode in ("max", "average", "sum") else "pool_max"
    return kind if isinstance(kind, str) else "unknown"


@lru_cache(maxsize=None)
def _icon(stem: str) -> QIcon:
    path = ICONS_DIR / f"{stem}.svg"
    return QIcon(str(path)) if path.exists() else QIcon()


def block_icon(block: dict | str) -> QIcon:
    """The icon of a block dict or a name such as "conv", "pool_sum", "input" (null icon if none)."""
    return _icon(icon_name(block))
