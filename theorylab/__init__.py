"""theorylab: checking the theory of adversarial training by computation.

Public subpackages: :mod:`theorylab.worlds`, :mod:`theorylab.models`,
:mod:`theorylab.attacks`, :mod:`theorylab.verify`, :mod:`theorylab.evaluate`,
:mod:`theorylab.training`, :mod:`theorylab.pipelines`, :mod:`theorylab.metrics`,
:mod:`theorylab.theory`, :mod:`theorylab.datasets`, :mod:`theorylab.images`,
:mod:`theorylab.sweep`, :mod:`theorylab.plots`, :mod:`theorylab.testing`.

They are imported on first use (``theorylab.models`` works after a bare
``import theorylab``), so the command line starts without compiling anything.
"""

import importlib

__version__ = "0.1.0"

_SUBMODULES = ("attacks", "datasets", "evaluate", "images", "metrics", "models", "pipelines",
               "plots", "sweep", "testing", "theory", "training", "verify", "worlds")

__all__ = list(_SUBMODULES) + ["__version__"]


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_SUBMODULES))
