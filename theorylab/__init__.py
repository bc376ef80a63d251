"""theorylab: checking the theory of adversarial training by computation.

Public subpackages: :mod:`theorylab.worlds`, :mod:`theorylab.models`,
:mod:`theorylab.attacks`, :mod:`theorylab.training`, :mod:`theorylab.metrics`.
"""

__version__ = "0.1.0"

from . import attacks, metrics, models, training, worlds  # noqa: E402

__all__ = ["attacks", "metrics", "models", "training", "worlds", "__version__"]
