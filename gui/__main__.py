"""``python -m netbuilder.gui [PROJECT.json]``: the same as running ``netbuilder`` with no command."""
import sys

from netbuilder.gui.app import main

sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None))
