"""Evaluation helpers shared by the lower-bound checks (``lb_*``).

This module registers no check.  Learners come from the public pipeline
:mod:`theorylab.pipelines.lower_bounds` (re-exported here).

Robust accuracy is measured as strongly as each model allows:

* exact worst case when the model certifies it (linear models in any norm;
  separable polynomials with M = I in linf);
* the purified network with M = I in linf (:class:`PurifiedSeparable`): the
  dense-direction attack, which is exact there (each neuron's output is
  non-decreasing in its own coordinate times w*_j, so the worst point of the
  box is x - y tau w*);
* otherwise PGD *and* the dense-direction attack (a point survives only if it
  survives both), as the fp checks do.
"""

from __future__ import annotations

import numpy as np

from theorylab import attacks
from theorylab.models import LinearClassifier, PolynomialClassifier
from theorylab.pipelines.lower_bounds import (LEARNERS, IdentityWorld, PurifiedSeparable, build,
                                              child_seed, hash_tag, purified_worst_margins,
                                              reference, soft_threshold_q)

__all__ = ["LEARNERS", "build", "soft_threshold_q", "robust_correct", "robust_curve",
           "IdentityWorld", "PurifiedSeparable", "evaluated_exactly",
           "purified_worst_margins", "reference", "child_seed", "hash_tag", "loglog_slope",
           "tau50_bisect"]


def evaluated_exactly(model):
    """Whether :func:`robust_correct` tries the model's exact worst case first.

    Linear models, every polynomial classifier (the kernel form then falls back to
    the attacks) and the purified separable network: the checks give these the
    larger evaluation set.
    """
    return isinstance(model, (LinearClassifier, PolynomialClassifier, PurifiedSeparable))


def robust_correct(model, X, y, eps, norm, world=None, *, pgd_steps=10):
    """Per sample: correct against the strongest attack available for ``model`` (see module doc)."""
    p = {2: 2.0, "2": 2.0, "l2": 2.0, "inf": np.inf, "linf": np.inf, np.inf: np.inf}[norm]
    if eps == 0:
        return model.margins(X, y) > 0
    if p in model.capabilities.exact:
        return model.worst_case_margin(X, y, eps, p) > 0
    ok = model.margins(X + attacks.pgd(model, X, y, eps, p, steps=pgd_steps), y) > 0
    if world is not None:
        ok &= model.margins(X + attacks.dense_direction(world, y, eps, p), y) > 0
    return ok


def robust_curve(model, X, y, grid, norm, world=None, *, pgd_steps=10):
    """Robust accuracy at each radius of ``grid`` (see :func:`robust_correct`).

    Cumulative (:func:`theorylab.attacks.cumulative_survival`): a point broken at
    a radius counts as broken at every larger one, and only survivors are attacked.
    """
    ok = attacks.cumulative_survival(
        lambda e, idx: robust_correct(model, X[idx], y[idx], e, norm, world,
                                      pgd_steps=pgd_steps), grid, X.shape[0])
    return ok.mean(axis=1)


def tau50_bisect(acc_at, grid, clean, steps=8):
    """Radius where ``acc_at(tau)`` first falls below 0.5: coarse grid, then bisection.

    Same definition as :func:`theorylab.attacks.tau50` (first crossing, linear
    interpolation) on the grid refined by ``steps`` geometric bisections of the
    bracketing interval: 2^steps times finer for len(grid) + steps evaluations.
    """
    grid = [float(g) for g in grid]
    if clean < 0.5:
        return 0.0
    lo, a_lo = 0.0, clean
    for g in grid:
        a = acc_at(g)
        if a < 0.5:
            hi, a_hi = g, a
            break
        lo, a_lo = g, a
    else:
        return float("inf")
    for _ in range(steps if lo > 0 else 0):
        mid = float(np.sqrt(lo * hi))
        a = acc_at(mid)
        if a < 0.5:
            hi, a_hi = mid, a
        else:
            lo, a_lo = mid, a
    return lo + (a_lo - 0.5) * (hi - lo) / (a_lo - a_hi)


def loglog_slope(x, y):
    """Least-squares slope of log y against log x (nan if any y is not positive and finite)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if not (np.all(np.isfinite(y)) and np.all(y > 0)):
        return float("nan")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])
