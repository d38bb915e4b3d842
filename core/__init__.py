"""netbuilder's headless engine: project format, layers, training, data and export.

Nothing in this package imports Qt; the GUI in ``gui/`` depends on it, never the reverse.
"""
