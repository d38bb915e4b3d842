"""netbuilder: build convolutional neural networks visually, train them live, export them.

This folder is the top of the import package; pyproject.toml's ``package-dir`` maps the
repository's ``core/``, ``gui/`` and ``resources/`` in beneath it as ``netbuilder.core`` (the
headless engine), ``netbuilder.gui`` (the PySide6 app) and ``netbuilder.resources``.
"""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("netbuilder")
except PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "0+unknown"
