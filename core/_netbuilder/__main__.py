"""``python -m netbuilder``: the same as the ``netbuilder`` command."""
import sys

from netbuilder.core.cli import main

sys.exit(main())
