"""Light and dark: the window follows the desktop's colour scheme (or the user's choice), plots,
canvas and labels included, and text stays readable; the app has its own icon."""
from __future__ import annotations

from collections import Counter

import pytest
from PySide6.QtCore import QPoint, QSettings, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QApplication, QLabel

from netbuilder.gui import theme
from netbuilder.gui.main_window import MainWindow


@pytest.fixture
def window(qtbot, doc, tmp_path):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    w = MainWindow(doc, settings)
    qtbot.addWidget(w)
    w.resize(1280, 800)
    w.show()
    qtbot.waitExposed(w)
    yield w
    theme.apply_scheme("light")  # the other tests expect the app's default look


def luminance(colour: QColor) -> float:
    return theme.contrast(colour, "#000000")  # 1 for black, 21 for white


def rendered_text_contrast(window, label: QLabel) -> float | None:
    """The contrast of a label's text against what is drawn behind it, read off the window's
    pixels: the commonest colour is the background, the one farthest from it the text."""
    shot = window.grab().toImage()
    top_left = label.mapTo(window, QPoint(0, 0))
    image = shot.copy(top_left.x(), top_left.y(), label.width(), label.height())
    colours = Counter(image.pixel(x, y) for x in range(image.width()) for y in range(image.height()))
    if len(colours) < 2:
        return None  # nothing written
    background = QColor.fromRgb(colours.most_common(1)[0][0])
    return max(theme.contrast(background, QColor.fromRgb(c)) for c in colours)


def visible_text_labels(window):
    return [lb for lb in window.findChildren(QLabel) if lb.isVisible() and lb.text().strip() and lb.width() > 4
            and lb.pixmap().isNull()]


def test_the_desktop_going_dark_turns_the_window_plots_and_canvas_dark(window, qtbot):
    assert theme.SCHEME == "light" and window.appearance() == "auto"
    QApplication.styleHints().colorSchemeChanged.emit(Qt.ColorScheme.Dark)  # as the desktop does
    qtbot.wait(10)
    assert theme.SCHEME == "dark"
    app_palette = QApplication.palette()
    assert luminance(app_palette.color(app_palette.ColorRole.Window)) < 2
    assert luminance(window.canvas.backgroundBrush().color()) < 2
    for plot in (window.curves.graphics, window.gradients.norm_plot, window.gradients.dead_plot):
        assert luminance(plot.backgroundBrush().color()) < 2
    QApplication.styleHints().colorSchemeChanged.emit(Qt.ColorScheme.Light)
    qtbot.wait(10)
    assert theme.SCHEME == "light" and luminance(window.canvas.backgroundBrush().color()) > 15


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("mode", ["build", "train"])
def test_every_label_is_readable_in_both_schemes(window, qtbot, scheme, mode):
    window.set_appearance(scheme)
    window.set_mode(mode)
    qtbot.wait(50)
    labels = visible_text_labels(window)
    assert len(labels) >= 5
    poor = []
    for label in labels:
        ratio = rendered_text_contrast(window, label)
        if ratio is not None and ratio < 4.5:
            poor.append(f"{label.objectName() or label.text()[:30]!r}: {ratio:.2f}")
    assert poor == []


def test_the_chosen_appearance_wins_over_the_desktop_and_is_remembered(window, qtbot, doc, tmp_path):
    window.appearance_actions["dark"].trigger()
    assert theme.SCHEME == "dark" and window.appearance_actions["dark"].isChecked()
    QApplication.styleHints().colorSchemeChanged.emit(Qt.ColorScheme.Light)
    assert theme.SCHEME == "dark"  # the user chose dark
    again = MainWindow(doc, QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(again)
    assert again.appearance() == "dark" and again.appearance_actions["dark"].isChecked()
    window.appearance_actions["auto"].trigger()
    assert theme.SCHEME == theme.scheme_for(QApplication.styleHints().colorScheme())


def test_text_colours_have_the_contrast_text_needs_in_both_palettes():
    for name, colours in theme.SCHEMES.items():
        for text, background in (("TEXT", "BACKGROUND"), ("TEXT", "SURFACE"), ("MUTED", "BACKGROUND"),
                                 ("MUTED", "SURFACE"), ("ERROR", "ERROR_FILL"), ("ERROR", "SURFACE"),
                                 ("WARNING_TEXT", "WARNING_FILL"), ("WARNING_TEXT", "SURFACE"),
                                 ("BANNER_TEXT", "BANNER"), ("SELECTION", "SURFACE")):
            assert theme.contrast(colours[text], colours[background]) >= 4.5, (name, text, background)


def test_the_app_has_its_own_icon_and_every_block_icon_loads():
    assert not theme.app_icon().isNull()
    assert theme.app_icon().cacheKey() != theme.block_icon("conv").cacheKey()
    for name in ("conv", "pool_max", "pool_average", "pool_sum", "dense", "flatten", "activation", "dropout",
                 "input", "output"):
        assert not theme.block_icon(name).isNull(), name


def test_the_committed_block_icons_are_what_the_drawings_and_accents_make():
    from netbuilder.core.resources import resource_path
    from netbuilder.gui.icon_drawings import DRAWINGS, svg

    for stem in DRAWINGS:
        assert resource_path("icons", f"{stem}.svg").read_text(encoding="utf-8") == svg(stem), stem
