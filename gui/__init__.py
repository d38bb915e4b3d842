"""netbuilder's PySide6 application. It depends on ``core``; ``core`` knows nothing of it."""
