"""V4: the feature-purification principle, and how far weights move from their init.

Paper [C] (talk abstract): for most neurons w_i = beta_i w'_i + v_i with
||beta_i w'_i|| > ||v_i|| (w'_i after adversarial training started from w_i),
and both are nearly uncorrelated with the init.  theorylab adds two guards
[D]: adversarial training must actually have moved the weights, and what it
removed (v_i) must be the dense mixture, i.e. aligned with M w*.  Without them
a run that did not train adversarially at all (w' = w) would "pass".
"""

from __future__ import annotations

import numpy as np

from theorylab import metrics
from theorylab._linalg import row_norms
from theorylab.pipelines.feature_purification import fp_clean as clean_stage
from theorylab.pipelines.feature_purification import fp_run

from ._fp_common import REGIMES
from ._harness import Check, Criterion, convergence_measurements, register
from ._papers import FP


def _principle(r):
    p = metrics.purification(r.clean.W, r.adv.W, r.clean.W_init)
    V = r.clean.W - p["beta"][:, None] * r.adv.W
    M = None if r.world.identity else r.world.M
    Vc = V if M is None else V @ M
    u = r.world.w_star / np.linalg.norm(r.world.w_star)
    vn = row_norms(Vc)
    cos = np.where(vn > 0, (Vc @ u) / np.where(vn > 0, vn, 1.0), 0.0)
    return p, vn / row_norms(r.clean.W), cos


def run(seed, params):
    r = fp_run(seed, params)
    p, moved, cos = _principle(r)
    return {
        **convergence_measurements({"clean": r.clean_history, "adv": r.adv_history}),
        "principle_fraction": p["fraction"],
        "principle_ratio_median": float(np.median(p["ratio"])),
        "removed_fraction_median": float(np.median(moved)),
        "removed_alignment_median": float(np.median(cos)),
        "corr_init_clean_median": float(np.median(p["corr_init_clean"])),
        "corr_init_adv_median": float(np.median(p["corr_init_adv"])),
        "extra": {"fit": np.abs(p["beta"]) * row_norms(r.adv.W),
                  "resid": moved * row_norms(r.clean.W)},
    }


def figure(results):
    from theorylab.plots.fp import purification_scatter

    e = results[0]["extra"]
    return purification_scatter(e["fit"], e["resid"])


CRITERIA = [
    Criterion("principle_fraction", ">=", 0.8,
              "'most neurons' [C]; the pilot measured 0.83-1.00 over seven runs"),
    Criterion("removed_fraction_median", ">=", 0.05,
              "adversarial training moved the weights: the removed part is at least 5% of "
              "||w_i|| (continuing clean training moves them far less)"),
    Criterion("removed_alignment_median", ">=", 0.3,
              "what adversarial training removed is the dense mixture along M w* (cos >= "
              "0.3, ~3.4 sigma of a random direction at d = 128)"),
]

for name in ("l2", "linf"):
    register(Check(
        id=f"fp.v4_principle_{name}",
        paper=FP,
        claim="For most neurons the clean weight is beta_i w'_i + v_i with ||beta_i w'_i|| > "
              "||v_i||: adversarial training keeps the learned feature and removes a dense "
              "mixture along M w*.",
        provenance="[C]",
        regimes=REGIMES[name],
        criteria=CRITERIA,
        run=run,
        figure=figure,
        notes="Correlations with the init are reported (corr_init_*) but judged in "
              "fp.v4_init_correlation." + (
                  " linf is sensitive to k: with k = 5 instead of 4 (d = 128, seeds 0-2) the "
                  "principle held for 75% of neurons (criterion >= 0.8 fails), 71% after 3x "
                  "more FGSM steps." if name == "linf" else ""),
    ))


def run_corr(seed, params):
    # The trend uses clean training only; the adversarial weights' correlation is
    # reported at the largest d (the run the other checks share).
    extra = {"d": [], "corr_clean": []}
    histories = {}
    for d in params["d_grid"]:
        clean, _, histories[f"clean_d{d}"], _ = clean_stage(seed, dict(params, d=d))
        cos = np.abs(metrics.purification(clean.W, clean.W, clean.W_init)["corr_init_clean"])
        extra["d"].append(d)
        extra["corr_clean"].append(float(np.median(cos)))
    r = fp_run(seed, dict(params, d=params["d_grid"][-1]))
    c = extra["corr_clean"]
    # The judged trend is the clean runs'; the adversarial run is reported only.
    return {**convergence_measurements(histories), "corr_init_clean_dmin": c[0], "corr_init_clean_dmax": c[-1],
            "corr_ratio_dmax_over_dmin": c[-1] / c[0],
            "corr_init_adv_dmax": float(np.median(
                metrics.purification(r.clean.W, r.adv.W, r.clean.W_init)["corr_init_adv"])),
            "extra": extra}


def figure_corr(results):
    from theorylab.plots.fp import trend

    ex = [r["extra"] for r in results]
    return trend(ex[0]["d"], {"clean weights": [e["corr_clean"] for e in ex]},
                 xlabel="d", ylabel="median |cos(w_i, w_i^0)|",
                 title="correlation with the initialisation")


# Full spans d = 64..256 (4x, twice the quick span).  It was 128..512: the d = 512 runs
# (m = 1024, 3000 + 1500 steps of batch 1024) made this check 1128 s of the full run's
# 2877 s of check time over 3 seeds (24:45 wall on 2 cores, target 20 min); larger d is a
# sweep's job (``theorylab sweep``), not the check's.  At d = 256 the clean and the
# adversarial run are the l2 full regime's (cosines with the init do not depend on the
# dictionary's rotation), so the full check adds only the two smaller clean runs.
_CORR = {
    "quick": dict(REGIMES["l2"]["quick"], d_grid=[64, 128]),
    "full": dict(REGIMES["l2"]["full"], d_grid=[64, 128, 256]),
}

register(Check(
    id="fp.v4_init_correlation",
    paper=FP,
    claim="Clean and adversarially trained weights are nearly uncorrelated with their "
          "initialisation; measured as the trend of the median |cos(w_i, w_i^0)| with d.",
    provenance="[C]",
    regimes=_CORR,
    criteria=[
        Criterion("corr_ratio_dmax_over_dmin", "<", 1.0,
                  "the correlation with init falls as d grows (pilot: 0.64, 0.29, 0.17 at "
                  "d = 256, 512, 1024), the direction of the paper's 'nearly zero' in the "
                  "poly(d) limit"),
    ],
    run=run_corr,
    figure=figure_corr,
    notes="Honest caveat: at these sizes the correlation is not near zero (the pilot "
          "measured 0.17-0.64); the weights grow only 10-40x from sigma_0 = 1/d and winning "
          "neurons are selected by their init. The check asserts the trend, and reports the "
          "absolute values.",
))
