"""Learners: every model has decision_function, predict, loss, input_gradient, save."""

from .cnn import SmoothedReLUCNN
from .io import load, register
from .linear import LinearClassifier
from .ntk import NTKClassifier
from .polynomial import PolynomialClassifier
from .two_layer import THRESHOLD_RULES, TwoLayerReLU

register(TwoLayerReLU)
register(SmoothedReLUCNN)
register(LinearClassifier)
register(PolynomialClassifier)
register(NTKClassifier)

__all__ = ["TwoLayerReLU", "SmoothedReLUCNN", "LinearClassifier", "PolynomialClassifier",
           "NTKClassifier", "THRESHOLD_RULES", "load", "register"]
