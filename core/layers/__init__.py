"""The layers a network is made of; each keeps the ``Layer`` contract of ``core.layers.base``."""
from core.layers.activation import Activation
from core.layers.base import Layer
from core.layers.conv import Conv2D
from core.layers.dense import Dense
from core.layers.dropout import Dropout
from core.layers.flatten import Flatten
from core.layers.heap import keep_freed_memory
from core.layers.pool import Pool2D

keep_freed_memory()

__all__ = ["Activation", "Conv2D", "Dense", "Dropout", "Flatten", "Layer", "Pool2D"]
