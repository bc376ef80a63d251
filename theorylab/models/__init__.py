"""Learners: every model has decision_function, predict, loss, input_gradient, save."""

from .io import load, register
from .two_layer import THRESHOLD_RULES, TwoLayerReLU

register(TwoLayerReLU)

__all__ = ["TwoLayerReLU", "THRESHOLD_RULES", "load", "register"]
