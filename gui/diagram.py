"""The pipeline as a picture: SVG (vector, for papers) or PNG (for slides), drawn by the same
canvas items the window shows, so the diagram is exactly what the builder shows, in light colours.

``netbuilder diagram PROJECT -o net.svg`` reaches ``export_diagram_file`` through an entry point
(core never imports Qt); File > Export Diagram… calls ``write_pipeline`` with the open project.
"""
from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QBuffer, QIODevice, QRectF, QSize
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtSvg import QSvgGenerator
from PySide6.QtWidgets import QApplication

from netbuilder.core.atomic import write_atomically
from netbuilder.core.project import Project
from netbuilder.gui import theme

MARGIN = 16  # pixels of background around the cards
PNG_SCALE = 2  # PNG pixels per scene unit: sharp on high-density screens and projectors


def export_diagram_file(project: Project, path: str | os.PathLike) -> Path:
    """Headless: draw ``project``'s pipeline into ``path`` (.svg or .png), with no display needed."""
    if QApplication.instance() is None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    _app = QApplication.instance() or QApplication([])  # noqa: F841 - widgets need one alive
    return write_pipeline(project, path)


def write_pipeline(project: Project, path: str | os.PathLike) -> Path:
    """Draw the cards of ``project`` (shapes, parameter counts, red cards with their reasons) into
    ``path``, written atomically; the suffix chooses SVG or PNG."""
    from netbuilder.gui.canvas import PipelineCanvas
    from netbuilder.gui.document import ProjectDocument

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".svg", ".png"):
        raise ValueError(f"{path.name}: a diagram is written as .svg or .png")
    doc = ProjectDocument(project.copy())
    canvas = PipelineCanvas(doc)
    try:
        canvas.refresh()
        canvas.hint.hide()  # "drag blocks here" is for the window, not for a paper
        scene = canvas.scene()
        rect = QRectF()
        for item in scene.items():  # the cards and arrows; not the hidden marker or hint
            if item.isVisible() and item.parentItem() is None:
                rect = rect.united(item.sceneBoundingRect())
        rect = rect.adjusted(-MARGIN, -MARGIN, MARGIN, MARGIN)
        with theme.colours("light"):  # a figure on paper is light whatever the window shows
            data = _svg(scene, rect, project.name) if suffix == ".svg" else _png(scene, rect)
    finally:
        canvas.deleteLater()
        doc.deleteLater()
    write_atomically(path, lambda fh: fh.write(data))
    return path


def _svg(scene, rect: QRectF, title: str) -> bytes:
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    generator = QSvgGenerator()
    generator.setOutputDevice(buffer)
    generator.setSize(QSize(round(rect.width()), round(rect.height())))
    generator.setViewBox(QRectF(0, 0, rect.width(), rect.height()))
    generator.setTitle(title)
    generator.setDescription("netbuilder pipeline diagram")
    painter = QPainter(generator)
    try:
        painter.fillRect(QRectF(0, 0, rect.width(), rect.height()), QColor(theme.BACKGROUND))
        scene.render(painter, QRectF(0, 0, rect.width(), rect.height()), rect)
    finally:
        painter.end()
    return bytes(buffer.data())


def _png(scene, rect: QRectF) -> bytes:
    image = QImage(round(rect.width() * PNG_SCALE), round(rect.height() * PNG_SCALE),
                   QImage.Format.Format_ARGB32)
    image.fill(QColor(theme.BACKGROUND))
    painter = QPainter(image)
    try:
        painter.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.TextAntialiasing)
        scene.render(painter, QRectF(0, 0, image.width(), image.height()), rect)
    finally:
        painter.end()
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buffer, "PNG"):
        raise OSError("the PNG image could not be encoded")
    return bytes(buffer.data())
