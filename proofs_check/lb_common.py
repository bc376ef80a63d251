"""Evaluation helpers shared by the lower-bound checks (``lb_*``).

This module registers no check.  Learners come from the public pipeline
:mod:`theorylab.pipelines.lower_bounds` (re-exported here).

Robust accuracy is measured as strongly as each model allows, through the one
evaluation (:func:`theorylab.evaluate.robustness` under the checks' budget):

* exact worst case when the model has one in closed form (linear models in any
  norm; separable polynomials with M = I in linf; the purified network with M = I
  in linf, :class:`PurifiedSeparable`, whose minimum over the box is at x - y tau w*);
* otherwise the attack side (every attack of the suite, witnesses re-checked) for
  the learners, whose claim is non-robustness, and the certified side (certificate
  plus exact solver) for the reference network, whose claim is robustness.
"""

from __future__ import annotations

import numpy as np

from theorylab.evaluate import BROKEN, CERTIFIED
from theorylab.models import LinearClassifier, PolynomialClassifier
from theorylab.pipelines.lower_bounds import (ADVERSARIAL, LEARNERS, IdentityWorld,
                                              PurifiedSeparable, adversarially_trained, build,
                                              child_seed, hash_tag, purified_worst_margins,
                                              reference, soft_threshold_q)

from ._evaluation import evaluate, sandwich

__all__ = ["LEARNERS", "ADVERSARIAL", "adversarially_trained", "robust_sandwich", "build", "soft_threshold_q", "robust_correct", "robust_curve",
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


def robust_correct(model, X, y, eps, norm, world=None, *, side="attack", exact=False,
                   seed=0, pgd_steps=None):
    """Per point at radius ``eps``, from :func:`theorylab.evaluate.robustness`.

    ``side="attack"``: not broken by any attack (the upper side, for claims of
    non-robustness: a point counts as defended only if no witness was found);
    ``side="certified"``: proven robust (the lower side, for claims of robustness).
    Linear models and separable polynomials in linf are exact either way (closed
    form); ``exact=True`` also runs the exact solver on what remains.
    ``pgd_steps`` is ignored (the check budget's PGD-20 and the stronger attacks run).
    """
    p = {2: 2.0, "2": 2.0, "l2": 2.0, "inf": np.inf, "linf": np.inf, np.inf: np.inf}[norm]
    if eps == 0:
        return model.margins(X, y) > 0
    closed = p in model.capabilities.exact
    exact = exact or closed
    # The attack side alone needs no certificate (except a closed form, which is exact).
    res = evaluate(model, X, y, [eps], p, world=world, exact_at=(eps,) if exact else (),
                   seed=seed, certify=side == "certified" or closed)
    return res.verdict[0] == CERTIFIED if side == "certified" else res.verdict[0] != BROKEN


def robust_sandwich(model, X, y, eps, world=None, *, name="robust", seed=0):
    """The sandwich ``<name>_attack/_certified/_exact/_unresolved`` at radius ``eps`` (linf).

    Exact where the model has a closed form (linear, separable with M = I), the
    model's certificate where :mod:`theorylab.verify` has one (the frozen-gate
    NTK), and the whole attack suite (with the dense direction when ``world``
    is given) on what remains; the certified side is NaN where no certificate
    exists (the polynomial-kernel machine, the analytic NTK).
    """
    caps = model.capabilities
    exact = (eps,) if np.inf in caps.exact else ()
    res = evaluate(model, X, y, [eps], np.inf, world=world, exact_at=exact, seed=seed,
                   certify=bool({np.inf} & (caps.exact | caps.certify)))
    return sandwich(name, res, eps)


def robust_curve(model, X, y, grid, norm, world=None, *, side="attack", exact=False, seed=0,
                 pgd_steps=None):
    """Robust accuracy at each radius of ``grid`` on one side (see :func:`robust_correct`).

    Cumulative (one :func:`theorylab.evaluate.robustness` over the grid): a point broken at
    a radius counts as broken at every larger one.
    """
    p = {2: 2.0, "2": 2.0, "l2": 2.0, "inf": np.inf, "linf": np.inf, np.inf: np.inf}[norm]
    closed = p in model.capabilities.exact
    exact = exact or closed
    res = evaluate(model, X, y, grid, p, world=world, exact_at=list(grid) if exact else (),
                   seed=seed, certify=side == "certified" or closed)
    return res.certified_accuracy if side == "certified" else res.attack_accuracy


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
