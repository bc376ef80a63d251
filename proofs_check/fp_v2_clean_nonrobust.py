"""V2: the clean network is non-robust, like a linear rule, and its weakness is the dense direction.

Paper [C]: clean training gives a network that is non-robust to small
perturbations.  The comparison with the linear rule's tau50 and the
dense-direction signature are theorylab's derived predictions [D] (spec
3.3(iv), 5 V2).
"""

from __future__ import annotations

import numpy as np

from theorylab import attacks
from theorylab.pipelines.feature_purification import fp_base

from ._fp_common import REGIMES, evaluated
from ._harness import Check, Criterion, register
from ._papers import FP


def run(seed, params):
    r = fp_base(seed, params)  # no adversarial training needed here
    ev = evaluated(r, params, models=("clean", "oracle", "linear"))
    grid = params["grid"]
    # Mutation switch: evaluate the purified oracle in place of the clean network.
    clean = ev["oracle"] if params.get("clean_learner") == "purified" else ev["clean"]
    t_clean = attacks.tau50(grid, clean["worst"], clean["clean"])
    t_lin = attacks.tau50(grid, ev["linear"]["worst"], ev["linear"]["clean"])
    t_oracle = attacks.tau50(grid, ev["oracle"]["worst"], ev["oracle"]["clean"])
    gap = np.asarray(clean["dense"]) - np.asarray(clean["pgd"])
    return {
        "tau50_clean": t_clean,
        "tau50_linear": t_lin,
        "tau50_oracle": t_oracle,
        "tau50_clean_over_linear": t_clean / t_lin,
        "tau50_clean_over_oracle": t_clean / t_oracle,
        "tau50_oracle_over_linear": t_oracle / t_lin,
        "dense_minus_pgd_max": float(gap.max()),
        "extra": {"grid": grid, "norm": str(params["norm"]), "clean_pgd": clean["pgd"], "clean_dense": clean["dense"],
                  "oracle": ev["oracle"]["worst"], "linear": ev["linear"]["worst"]},
    }


def figure(results):
    from theorylab.plots.fp import robustness_curves

    ex = [r["extra"] for r in results]
    curves = {"clean": [e["clean_pgd"] for e in ex],
              "clean (dense attack)": [e["clean_dense"] for e in ex],
              "oracle": [e["oracle"] for e in ex], "linear": [e["linear"] for e in ex]}
    return robustness_curves(ex[0]["grid"], curves, norm=ex[0].get("norm", ""),
                             title="clean network: PGD-20 vs the dense direction alone")


CRITERIA = [
    Criterion("tau50_oracle_over_linear", ">=", 2.0, kind="precondition",
              reason="a window exists between the linear rule's failure radius and the purified "
                     "network's (spec 3.4); without it 'non-robust at a radius where the "
                     "purified network is robust' cannot be tested"),
    Criterion("tau50_clean_over_oracle", "<=", 0.7,
              "non-robust [C]: the clean network loses half its accuracy at a radius well "
              "below the purified network's (pilot l2 d=256: 0.17 vs 0.42)"),
    Criterion("tau50_clean_over_linear", "<=", 3.0,
              "'within a small factor of the linear rule' (spec 5 V2); the l2 heuristic "
              "radii ratio sqrt(d)/k^1.5 : sqrt(k/d) is ~2-5 in these regimes"),
    Criterion("dense_minus_pgd_max", "<=", 0.1,
              "the dense direction alone is nearly as strong as PGD at every radius; 0.1 is "
              "6 standard errors of a 1000-point accuracy, and far below the purified "
              "network's gap"),
]

for name in ("l2", "linf", "linf_dense"):
    register(Check(
        id=f"fp.v2_clean_nonrobust_{name}",
        paper=FP,
        claim="The clean network is non-robust at small radius, close to the linear rule, and "
              "the dense label direction M w* is nearly as strong an attack as PGD.",
        provenance="[C]",
        regimes=REGIMES[name],
        criteria=CRITERIA,
        run=run,
        figure=figure,
        notes="tau50 uses the worse of PGD-20 and the dense attack per point, cumulative over "
              "the grid (a point broken at a radius stays broken at larger ones); the linear rule "
              "is u = M w*, attacked exactly (closed form).",
    ))
