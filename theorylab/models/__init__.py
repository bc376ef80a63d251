"""Learners: every model has decision_function, predict, loss, input_gradient, save."""

from .cnn import SmoothedReLUCNN
from .io import load, register
from .two_layer import THRESHOLD_RULES, TwoLayerReLU

register(TwoLayerReLU)
register(SmoothedReLUCNN)

__all__ = ["TwoLayerReLU", "SmoothedReLUCNN", "THRESHOLD_RULES", "load", "register"]
