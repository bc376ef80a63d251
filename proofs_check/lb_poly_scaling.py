"""Derived failure radius of low-degree separable polynomials, spec 3.3(v) and V6.

Under the dense linf attack delta = -y tau w* (M = I), each of the ~d - k
inactive coordinates of f(x) = sum_j w*_j q(x_j) moves by about q(tau), so a
polynomial whose lowest power is D flips once (d - k) tau^D exceeds the margin:

    tau50 ~ (sqrt(k) / d)^(1/D),   slope of log tau50 in log d = -1/D   [D].

Two members of the oracle family are measured:

* the soft threshold q(t) = ((D+2) t^D - D t^(D+2)) / 2 (flat at +-1, order D
  at 0): only the inactive-coordinate mechanism acts at first order, so its
  slope tests the exponent -1/D;
* the monomial q(t) = t^D: it also loses D tau per active code (a
  d-independent mechanism the derivation ignores), so its tau50 can only be
  *below* the formula; its slope is reported, not judged.

The crossing: at the largest d the polynomial's tau50 must be below the
purified network's radius 1/(2 sqrt(k)) (spec 3.3(iii)).
"""

from __future__ import annotations

import numpy as np

from theorylab import theory

from ._papers import FP
from . import lb_common as lb
from ._harness import Check, Criterion, register

QUICK = dict(ds=(256, 1024, 4096), k=6, noise=0.05, degree=3, n_test=1000,
             grid=tuple(np.geomspace(0.004, 1.0, 13).round(6)), bisect=8,
             learner_soft="poly_soft", learner_mono="poly_oracle", pgd_steps=10)
FULL = dict(QUICK, ds=(256, 1024, 4096, 16384, 65536), n_test=2000, bisect=10)


def _tau50(name, world, test, p):
    model = lb.build(name, world, test, degree=p["degree"])
    X, y = test.X, test.y
    clean = float(np.mean(model.margins(X, y) > 0))
    if np.inf in model.capabilities.exact:
        # A separable polynomial: the spec's dense attack delta = -y tau sign(M w*), on
        # arrays validated once (the array protocol without re-validation).
        step = y[:, None] * np.sign(world.label_direction)[None, :]

        def acc_at(tau):
            return float(np.mean(model.correct(X - tau * step, y, check_input=False)))
    else:  # a broken learner of the mutation tests: its strongest attack
        def acc_at(tau):
            return float(np.mean(lb.robust_correct(model, X, y, tau, "inf", world,
                                                   pgd_steps=p["pgd_steps"])))
    return lb.tau50_bisect(acc_at, p["grid"], clean, p["bisect"])


def run(seed, params):
    p = params
    soft, mono = [], []
    for d in p["ds"]:
        world = lb.IdentityWorld(d, p["k"], noise=p["noise"], seed=lb.child_seed(seed, "w", d))
        test = world.sample(p["n_test"], lb.child_seed(seed, "test", d))
        soft.append(_tau50(p["learner_soft"], world, test, p))
        mono.append(_tau50(p["learner_mono"], world, test, p))
    formula = [theory.polynomial_failure_radius(p["k"], d, p["degree"]) for d in p["ds"]]
    return {
        "slope_soft": lb.loglog_slope(p["ds"], soft),
        "slope_predicted": theory.polynomial_tau50_slope(p["degree"]),
        "slope_soft_minus_predicted": lb.loglog_slope(p["ds"], soft)
        - theory.polynomial_tau50_slope(p["degree"]),
        "slope_monomial": lb.loglog_slope(p["ds"], mono),
        "monomial_over_formula_max": float(np.max(np.array(mono) / np.array(formula))),
        "soft_at_dmax_over_purified": soft[-1] / theory.purified_radius(p["k"], "inf"),
        "extra": {"ds": list(p["ds"]), "tau50_soft": soft, "tau50_monomial": mono,
                  "formula": formula, "degree": p["degree"]},
    }


def figure(results):
    from theorylab.plots.lower_bounds import tau50_scaling
    series = {"soft-threshold oracle": ("tau50_soft", "-o"),
              "monomial oracle t^D": ("tau50_monomial", "-s"),
              "derived (sqrt(k)/d)^(1/D)": ("formula", "--")}
    return tau50_scaling([r["extra"] for r in results], series, predicted=results[0][
        "slope_predicted"], title="separable degree-3 polynomials, dense linf attack")


register(Check(
    id="lb.poly_tau50_scaling",
    paper=FP,
    claim=("Degree-D separable polynomials fail the dense linf attack at tau50 ~ "
           "(sqrt(k)/d)^(1/D): slope -1/D in d at fixed k, never above the formula, and "
           "below the purified network's radius 1/(2 sqrt(k)) at large d."),
    provenance="[D]",
    regimes={"quick": QUICK, "full": FULL},
    criteria=[
        Criterion("slope_soft_minus_predicted", ">=", -0.08,
                  reason="exponent -1/D (D=3): the d/(d-k) correction moves the slope by < "
                         "0.01 for d >= 256 and the second-order active terms bias it by a "
                         "few 0.01; +-0.08 (a quarter of the exponent) still fails a "
                         "d-independent radius (slope 0) or a linear-like one (slope -1)."),
        Criterion("slope_soft_minus_predicted", "<=", 0.08, reason="see the lower limit."),
        Criterion("monomial_over_formula_max", "<=", 1.25,
                  reason="the formula keeps only the inactive-coordinate mechanism at the "
                         "typical margin sqrt(k) (>= the median margin at k=6); the active "
                         "mechanism can only lower tau50; 1.25 covers tau50's sampling "
                         "error (bisection to < 1% of tau, n_test >= 1000: ~3%)."),
        Criterion("soft_at_dmax_over_purified", "<", 1.0,
                  reason="derived crossing below the purified radius once d >~ "
                         "k^((D+1)/2) = 36 (spec V6), far below the largest d."),
    ],
    run=run,
    figure=figure,
    notes=("Oracle polynomials need no training, so d reaches 4096 (quick) and 65536 "
           "(full) with an O(n d) sampler of the same world law (lb_common.IdentityWorld).  "
           "The dense attack is the spec's (V6) and exact for the monotone t^D; for the "
           "soft threshold the exact worst case (pushing active codes past the flat top) "
           "is slightly stronger, see tests/test_baselines.py."),
))
