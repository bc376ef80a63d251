"""Attacks, robust accuracy and robustness curves: the *attack side* of robustness.

Every attack is one module of this package that registers itself in the name
table (:func:`get`, :func:`names`, :data:`ATTACKS`); importing the package
imports them all, and each module's ``__all__`` becomes part of this namespace.
An attack only ever shows that a point is *not* robust; certificates and exact
answers are in :mod:`theorylab.verify`, the sandwich of both in
:func:`theorylab.evaluate.robustness`.

Attacks return the perturbation ``delta`` (same shape as ``X``); nothing is
clipped to a box; a zero gradient gives a zero perturbation.  Models declare the
attack loops they compile in ``model.capabilities.compiled``; those run instead
of the NumPy loops (``compiled_loops(False)`` forces the NumPy code).
"""

from __future__ import annotations

import importlib
import pkgutil

from ._core import compiled_loops, project, sample_ball, steepest_ascent
from ._registry import ATTACKS, Attack, get, names, register

__all__ = ["ATTACKS", "Attack", "get", "names", "register", "compiled_loops", "project",
           "sample_ball", "steepest_ascent"]



def _import_attack_modules():
    # Each public module registers its attack and exports its __all__ here.
    exported = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            mod = importlib.import_module(f"{__name__}.{info.name}")
            for name in getattr(mod, "__all__", ()):
                globals()[name] = getattr(mod, name)
                exported.append(name)
    return exported


__all__ += _import_attack_modules()
