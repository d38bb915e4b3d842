"""The layers a network is made of; each keeps the ``Layer`` contract of ``netbuilder.core.layers.base``."""
from netbuilder.core.layers.activation import Activation
from netbuilder.core.layers.base import Layer
from netbuilder.core.layers.conv import Conv2D
from netbuilder.core.layers.dense import Dense
from netbuilder.core.layers.dropout import Dropout
from netbuilder.core.layers.flatten import Flatten
from netbuilder.core.layers.pool import Pool2D

__all__ = ["Activation", "Conv2D", "Dense", "Dropout", "Flatten", "Layer", "Pool2D"]
