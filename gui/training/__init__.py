"""Training in the window: the controller the views listen to, and the worker that trains off the GUI thread."""
from netbuilder.gui.training.controller import TrainingController

__all__ = ["TrainingController"]
