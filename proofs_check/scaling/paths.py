"""The theory's scaling paths: k = round(c d^gamma) through a check's quick regime.

Spec feature_purification.md 3.3(iv): the clean / purified separation in l2 lives in
the window d^(1/3) <~ k << d^(1/2).  A path k = c d^gamma with 1/3 < gamma < 1/2
moves *into* that window from both sides as d grows: k / d^(1/3) grows like
d^(gamma - 1/3) and k / d^(1/2) falls like d^(gamma - 1/2).  theorylab's paths use
gamma = 0.4, next to the window's log-midpoint 5/12, so that neither drift is
negligible over d = 64 ... 1024 (d^(0.067) = 1.2x and d^(-0.1) = 0.76x over the
16x range).  The prefactor c is fixed by an anchor, the check's quick regime:
c = k0 / d0^gamma with (d0, k0) = (128, 5) in l2 and (128, 4) in linf, so the path
passes through the regime every check is judged at.  Because that regime sits at
k ~ d^(1/3) (128^(1/3) = 5.04), the path runs along the lower edge of the window,
slightly inside it at large d: a property of the anchors, reported, not tuned.
"""

from __future__ import annotations

import math

__all__ = ["path_k", "path_c", "path_params", "GAMMA", "ANCHORS", "NORMS"]

GAMMA = 0.4
#: (d0, k0) of the quick regimes (proofs_check/_fp_common.py REGIMES[norm]["quick"]).
ANCHORS = {"l2": (128, 5), "linf": (128, 4)}
NORMS = tuple(ANCHORS)


def _positive_int(name, v, low=1):
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
    return v


def _gamma(gamma):
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0 < gamma < 1:
        raise ValueError(f"gamma must be a number in (0, 1), got {gamma!r}")
    return float(gamma)


def path_c(gamma, anchor_d, anchor_k):
    """The prefactor c of the path through (anchor_d, anchor_k): k0 / d0^gamma."""
    gamma = _gamma(gamma)
    return _positive_int("anchor_k", anchor_k) / _positive_int("anchor_d", anchor_d, 2) ** gamma


def path_k(d, gamma=GAMMA, anchor_d=128, anchor_k=5):
    """k on the path at dimension ``d``: round(k0 (d / d0)^gamma), halves rounded up.

    Parameters
    ----------
    d : int
        Dimension, >= 2.
    gamma : float
        Exponent, in (0, 1).
    anchor_d, anchor_k : int
        The point the path passes through exactly (a check's quick regime).

    Returns
    -------
    int
        k, at least 1 and below d.

    Raises
    ------
    ValueError
        Naming the parameter, before any work: d, gamma or an anchor out of range, or
        a k >= d (the world needs k < d).

    Examples
    --------
    >>> [path_k(d) for d in (64, 128, 256, 512, 1024)]
    [4, 5, 7, 9, 11]
    >>> [path_k(d, anchor_k=4) for d in (64, 128, 256, 512, 1024)]
    [3, 4, 5, 7, 9]
    """
    d = _positive_int("d", d, 2)
    c = path_c(gamma, anchor_d, anchor_k)
    # floor(x + 1/2), not round(): Python's round() rounds halves to even.
    k = max(1, int(math.floor(c * d ** float(gamma) + 0.5)))
    if k >= d:
        raise ValueError(f"d = {d} gives k = {k} >= d on the path (gamma = {gamma}, anchor "
                         f"({anchor_d}, {anchor_k})); use a larger d or a smaller anchor_k")
    return k


def path_params(params):
    """Validate a scaling cell's parameters; return them with ``k`` set from the path.

    Parameters
    ----------
    params : dict
        ``d``, ``norms`` (one norm, or both where the two paths share k at this d),
        ``gamma``, ``anchor_d``, ``anchor_k``; optional ``t_mult`` (default 1).

    Raises
    ------
    ValueError
        Naming the parameter (unknown norm, k given by hand, the values above).
    """
    if "k" in params:
        raise ValueError("k: a scaling cell takes k from its path (gamma, anchor_d, "
                         "anchor_k), not as a parameter")
    norms = params.get("norms")
    if not isinstance(norms, (list, tuple)) or not norms or set(norms) - set(NORMS):
        raise ValueError(f"norms must be a non-empty subset of {list(NORMS)}, got {norms!r}")
    for name in ("gamma", "anchor_d", "anchor_k"):
        if name not in params:
            raise ValueError(f"{name}: missing (a scaling cell needs its path)")
    out = dict(params)
    out.setdefault("t_mult", 1)
    out["k"] = path_k(params["d"], params["gamma"], params["anchor_d"], params["anchor_k"])
    return out
