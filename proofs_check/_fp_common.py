"""Regimes and evaluation helpers shared by the Feature Purification checks.

Regimes follow the spec's pilot (feature_purification.md section 5, "Practical
settings that worked"): online SGD with fresh batches, eta = 0.5, m = 2d,
sigma_0 = 1/d, threshold rule "max" with c ramped 1.0 -> 0.5 over the first half
of clean training, FGM adversarial training from the clean weights.  The
``full`` regimes are the pilot's sizes; the ``quick`` regimes shrink d, batch
and steps so that ``make check`` stays within its time budget, and keep k in the
l2 window d^(1/3) <~ k << d^(1/2) of spec 3.3(iv) where clean and purified
networks separate (k = 5 at d = 128).  The linf quick regime (M = I) uses k = 4, chosen
before any linf measurement.  Measured on seeds 0-2 with k = 5 instead: FGSM
training stayed 0.145 below the oracle at eps 0.04 and the principle held for 75%
of neurons (both criteria fail), against 0.078 and 98% at k = 4: linf
purification in this reconstruction weakens as k grows towards sqrt(d)/2.

Two regime choices were revised after a measured FAIL, for the reasons below;
the evidence was taken on seeds 10-12, not on the report's seeds 0-2.

* linf with M = I trains at the radius it is evaluated at (eps_train = eps_eval
  = 0.04), the paper's "robust to perturbations of the same radius" [C].  It
  used 0.08, the pilot's, and stayed 0.12 [0.08, 0.12] below the oracle on seeds
  0-2.  FGSM radius -> oracle gap at eps 0.04 (seeds 10-12, T_adv = 500):
  0.04 -> 0.08-0.10, 0.05 -> 0.08-0.12, 0.06 -> 0.09-0.13, 0.08 -> 0.12-0.16,
  0.12 -> 0.32-0.36; more FGSM steps at 0.08 gave 0.10-0.12 (3x) and a decaying
  step size did not help.  Part of the gap is atoms the clean network never
  learned (coverage 91-95%): the oracle restricted to the covered atoms reaches
  0.93-0.95 where the full oracle reaches 1.00 (reported as
  ``oracle_covered_minus_adv``).
* linf with a dense dictionary uses the l2 regime's k.  For an incoherent M a
  pixel-space linf ball of radius eps acts on the codes like an l2 ball of radius
  about 0.8 eps sqrt(d) (the dense attack moves <M w*/sqrt(d), x> by eps
  ||M w*||_1 / sqrt(d) ~ 0.8 eps sqrt(d); a sign attack on k Hadamard atoms
  moves each by ~0.75 eps sqrt(d) / sqrt(k)), so the clean/purified separation
  needs the l2 window d^(1/3) <~ k of spec 3.3(iv).  k = 4 sits below it at
  d = 128 (128^(1/3) = 5.04) and measured clean/oracle tau50 0.77 (> 0.7, FAIL)
  and an oracle-clean gap 0.155 (< 0.2, INCONCLUSIVE) on seeds 0-2; with k = 5
  (seeds 10-12) 0.54-0.56 and 0.25-0.28, and every criterion held.  The radii
  are the l2 regime's mapped by that factor (0.2 -> 0.022, 0.3 -> 0.033), and
  the clean run is the l2 regime's (same world parameters).
"""

from __future__ import annotations

import numpy as np

from theorylab import attacks

_BASE = dict(codes="pm1", noise=0.05, width_mult=2, init_scale=None, c0=1.0, c1=0.5,
             ramp_frac=0.5, lr=0.5, n_test=1000, pgd_steps=20)

L2_GRID = [0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6, 0.8]
LINF_GRID = [0.005, 0.01, 0.02, 0.03, 0.04, 0.06, 0.08, 0.12, 0.16, 0.24, 0.32]
# Pixel-space linf with a dense (Hadamard) dictionary: every radius acts ~sqrt(d)
# times more strongly on an atom (spec 3.3(iii)), so the grid is finer.
LINF_DENSE_GRID = [0.002, 0.004, 0.008, 0.012, 0.016, 0.024, 0.032, 0.048, 0.064]

REGIMES = {
    "l2": {
        "quick": dict(_BASE, d=128, k=5, dictionary="identity", norm=2, eps_train=0.3,
                      eps_eval=0.2, batch=512, T=1000, T_adv=500, grid=L2_GRID),
        "full": dict(_BASE, d=256, k=6, dictionary="orthogonal", norm=2, eps_train=0.3,
                     eps_eval=0.2, batch=1024, T=3000, T_adv=1500, grid=L2_GRID),
    },
    "linf": {
        "quick": dict(_BASE, d=128, k=4, dictionary="identity", norm="inf", eps_train=0.04,
                      eps_eval=0.04, batch=512, T=1000, T_adv=500, grid=LINF_GRID),
        "full": dict(_BASE, d=256, k=6, dictionary="identity", norm="inf", eps_train=0.04,
                     eps_eval=0.04, batch=1024, T=3000, T_adv=1500, grid=LINF_GRID),
    },
    # l2-equivalent regime (module docstring): k and the clean run are the l2 regime's,
    # radii are the l2 radii / (0.8 sqrt(d)), rounded to grid points.
    "linf_dense": {
        "quick": dict(_BASE, d=128, k=5, dictionary="hadamard", norm="inf", eps_train=0.032,
                      eps_eval=0.024, batch=512, T=1000, T_adv=500, grid=LINF_DENSE_GRID),
        "full": dict(_BASE, d=256, k=6, dictionary="hadamard", norm="inf", eps_train=0.024,
                     eps_eval=0.016, batch=1024, T=3000, T_adv=1500, grid=LINF_DENSE_GRID),
    },
}


def curves(model, run, params, attack_kinds=("pgd", "dense")):
    """Robust accuracy over the regime's grid for each attack kind, and the worst of them.

    Cumulative (:func:`theorylab.attacks.cumulative_survival`): a point broken at a
    radius stays broken at every larger grid radius, so each curve is monotone and
    the worst curve is the union of both attacks over all radii up to eps.  Only the
    points still standing are attacked (a clean network's PGD curve then costs a
    fraction of attacking all 1000 points at every radius).
    """
    X, y = run.test.X, run.test.y
    norm, steps = params["norm"], params["pgd_steps"]

    def correct_at(kind):
        def at(eps, idx):
            if kind == "pgd":
                delta = attacks.pgd(model, X[idx], y[idx], eps, norm, steps=steps)
            else:
                delta = attacks.dense_direction(run.world, y[idx], eps, norm)
            return model.correct(X[idx] + delta, y[idx])
        return at

    out = {}
    ok_all = None
    for kind in attack_kinds:
        ok = attacks.cumulative_survival(correct_at(kind), params["grid"], X.shape[0])
        out[kind] = ok.mean(axis=1)
        ok_all = ok if ok_all is None else ok_all & ok
    out["worst"] = ok_all.mean(axis=1)
    out["clean"] = float(np.mean(model.correct(X, y)))
    return out


def linear_rule_curve(run, params):
    """Exact robust accuracy of the Bayes-direction linear rule u = M w* (spec 3.3(ii)).

    For a linear rule the worst case is closed-form: the point survives radius
    eps iff y <u, x> > eps ||u||_dual.
    """
    u = run.world.label_direction
    dual = {2: 2, "2": 2, "inf": 1, np.inf: 1}[params["norm"]]
    margin = run.test.y * (run.test.X @ u) / np.linalg.norm(u, ord=dual)
    return np.array([float(np.mean(margin > e)) for e in params["grid"]]), float(np.mean(margin > 0))


def tau50(curve, grid):
    return attacks.tau50(grid, curve["worst"], curve["clean"])


def nearest_index(grid, eps):
    return int(np.argmin(np.abs(np.asarray(grid) - eps)))


_SHARED = {}  # curves of models that depend only on the clean stage, across runs


def evaluated(run, params, models=("clean", "adv", "oracle", "linear")):
    """Robustness curves of the requested models (memoised).

    Clean, oracle and linear curves depend only on the clean stage, the dictionary and the
    test set, so they are shared by every run with the same base (e.g. eps_train = 0 in
    the mutation tests); the adversarial curve belongs to the run.
    """
    key = ("curves", tuple(params["grid"]), params["pgd_steps"], str(params["norm"]))
    out = {}
    for name in models:
        store = run.cache if name == "adv" else _SHARED.setdefault(run.shared_key + key, {})
        if name not in store:
            if name == "linear":
                lin, lin_clean = linear_rule_curve(run, params)
                store[name] = {"worst": lin, "clean": lin_clean}
            else:
                store[name] = curves(getattr(run, name), run, params)
        out[name] = store[name]
    return out
