"""Data distributions drawn exactly as the theory defines them."""

from .patches import RobustNonRobustPatches
from .sparse_coding import Sample, SparseCoding, make_dictionary

__all__ = ["SparseCoding", "Sample", "make_dictionary", "RobustNonRobustPatches"]
