"""``python -m netbuilder.gui [PROJECT.json]``: the window, as ``netbuilder-gui`` opens it."""
import sys

from netbuilder.gui.app import run

sys.exit(run())
