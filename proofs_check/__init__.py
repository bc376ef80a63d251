"""Every claim of the two papers as a runnable check with a verdict.

Check modules are the ``fp_*``, ``lb_*`` and ``ll_*`` modules of this package
(Feature Purification; its lower bounds; Li & Li's robust / non-robust
features).  Importing :func:`load_checks` imports them all, which registers
their checks in :data:`REGISTRY`.  Run them with ``python -m proofs_check`` or
``theorylab check``.
"""

from __future__ import annotations

import importlib
import pkgutil

from ._harness import (FAIL, INCONCLUSIVE, PASS, REGISTRY, Check, CheckResult, Criterion,
                       evaluate, register)

__all__ = ["Check", "Criterion", "CheckResult", "evaluate", "register", "REGISTRY",
           "load_checks", "PASS", "FAIL", "INCONCLUSIVE"]

_PREFIXES = ("fp_", "lb_", "ll_", "img_")


def load_checks():
    """Import every check module once and return the registry (id -> Check)."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith(_PREFIXES):
            importlib.import_module(f"{__name__}.{info.name}")
    return REGISTRY
