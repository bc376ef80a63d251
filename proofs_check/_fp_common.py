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

from theorylab.pipelines import Stage

from ._evaluation import evaluate

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


def _model(run, name):
    return getattr(run, name)


def _evaluate(seed, p):
    # One network's sandwich over the regime's grid, exact solves at eps_eval where the
    # regime's norm and the network allow it (EXACT below).
    from theorylab.pipelines.feature_purification import fp_base, fp_run

    run = fp_run(seed, p) if p["_model"] == "adv" else fp_base(seed, p)
    model = _model(run, p["_model"])
    exact = (p["eps_eval"],) if p["_model"] in EXACT[p["_regime"]] else ()
    return evaluate(model, run.test.X, run.test.y, p["grid"], p["norm"], world=run.world,
                    exact_at=exact, seed=seed)


# Networks solved exactly at eps_eval: all three in linf (the MILP needs ~2 binaries per
# point); in l2 the clean network's ~75 unstable neurons per point are beyond branch and
# bound (measured: 189 of 1000 points unresolved after 19 minutes), and its claim
# (non-robustness) is judged on witnesses anyway.
# Pixel-space linf (a dense dictionary) makes every neuron's interval ~sqrt(d) wider: the
# MILP needs many binaries per point (738 s for one check's three seeds), so no exact solve
# there; its networks are reported with their unresolved counts.
EXACT = {"l2": ("adv", "oracle"), "linf": ("clean", "adv", "oracle"), "linf_dense": ()}
EVALUATION = Stage("fp.evaluation", "1", None, _evaluate)


def _stage_params(params, name):
    from theorylab.pipelines.feature_purification import ADV_KEYS, CLEAN_KEYS

    keys = CLEAN_KEYS + (("dictionary", "n_test") if name != "adv" else ADV_KEYS)
    out = {k: params.get(k) for k in keys}
    out.update({k: params[k] for k in ("grid", "norm", "eps_eval")})
    out["_model"] = name
    out["_regime"] = ("l2" if str(params["norm"]) in ("2", "2.0") else
                      "linf" if params.get("dictionary", "identity") == "identity" else
                      "linf_dense")
    return out


def evaluated(run, params, models=("clean", "adv", "oracle"), seed=None):
    """The sandwich (:class:`theorylab.evaluate.Robustness`) of each requested network.

    A cached pipeline stage: the clean network's and the oracle's evaluations depend only
    on the clean stage, the dictionary and the test set, so every check of a regime (and
    the mutation tests' runs with the same base) shares them.
    """
    seed = run.shared_key[0] if seed is None else seed
    return {name: EVALUATION(seed, _stage_params(params, name)) for name in models}


def linear_rule_margins(run, params):
    """Exact worst-case margins of the Bayes-direction linear rule u = M w* (spec 3.3(ii)).

    For a linear rule the worst case is closed-form: the point survives radius
    eps iff y <u, x> > eps ||u||_dual.
    """
    u = run.world.label_direction
    dual = {2: 2, "2": 2, "inf": 1, np.inf: 1}[params["norm"]]
    return run.test.y * (run.test.X @ u) / np.linalg.norm(u, ord=dual)


def linear_rule_curve(run, params):
    """Robust accuracy of the linear rule over the grid (exact), and its clean accuracy."""
    margin = linear_rule_margins(run, params)
    return np.array([float(np.mean(margin > e)) for e in params["grid"]]), float(np.mean(margin > 0))


def nearest_index(grid, eps):
    return int(np.argmin(np.abs(np.asarray(grid) - eps)))
