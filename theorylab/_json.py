"""The one JSON form of results: reports, sweep stores, CLI ``--json`` output.

Rules (strict JSON, readable by any parser): NumPy arrays become lists, NumPy
scalars Python scalars, dict keys strings, tuples lists; a non-finite float
becomes the string ``"nan"``, ``"inf"`` or ``"-inf"`` (JSON has no NaN);
anything else is written as its ``repr``.  :func:`from_jsonable` undoes the
float rule, so a value read back is the value written.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["to_jsonable", "from_jsonable", "NONFINITE"]

NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def to_jsonable(obj):
    """``obj`` as plain JSON values under the rules of the module docstring."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else ("nan" if f != f else ("inf" if f > 0 else "-inf"))
    if obj is None or isinstance(obj, str):
        return obj
    return repr(obj)


def from_jsonable(obj):
    """Values read from JSON with the strings "nan", "inf", "-inf" turned back into floats."""
    if isinstance(obj, dict):
        return {k: from_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [from_jsonable(v) for v in obj]
    if isinstance(obj, str) and obj in NONFINITE:
        return NONFINITE[obj]
    return obj
