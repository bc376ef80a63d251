"""Li & Li (ICLR 2025), our derived scalings [D]: the erasure threshold and the feature race.

Spec ``robust_features.md`` 6.3 (3) and (4).  Both follow from the reconstructed
model, not from the paper's text:

* an l_inf perturbation -eps sign(v_y) removes eps ||v_y||_1 = eps sqrt(d) of the
  non-robust signal beta from every non-robust patch, so a network that relies on
  v breaks at eps* = beta / sqrt(d);
* in the polynomial phase of sigma each correlation grows like
  (#patches) (coefficient)^q Gamma^(q-1), so standard training learns v first
  when n_nonrobust beta^q > alpha^q and u first otherwise.
"""

from __future__ import annotations

import numpy as np

from theorylab.attacks import erasure_threshold

from ._papers import LL
from ._harness import Check, Criterion, convergence_measurements, register
from .ll_pipeline import BASE, pgd_accuracy, standard_run

# -- ll.threshold_scaling ------------------------------------------------------
# An absolute radius grid (independent of d) so that a network that never breaks
# hits the grid's top for every d and shows slope 0, not a spurious -1/2.
_GRID = tuple(np.round(np.geomspace(0.005, 0.4, 81), 6))


def run_threshold(seed, params):
    p = dict(BASE, **params)
    ds = p["ds"]
    taus, clean, pgd_past, histories = [], [], [], {}
    for d in ds:
        r = standard_run(seed, dict(params, d=d))
        histories[f"standard_d{d}"] = r["history"]
        model, world, test = r["model"], r["world"], r["test"]
        grid = np.asarray(p.get("grid", _GRID))
        tau = erasure_threshold(model, world, test, factors=grid / world.erasure_radius())
        taus.append(min(tau, float(grid[-1])))  # never broken: report the grid's top
        clean.append(model.accuracy(test.X, test.y))
        pgd_past.append(pgd_accuracy(model, test, 1.25 * world.erasure_radius(), p, seed))
    pred = [p["beta"] / np.sqrt(d) for d in ds]
    ratio = np.asarray(taus) / np.asarray(pred)
    slope = float(np.polyfit(np.log(ds), np.log(taus), 1)[0])
    return {
        **convergence_measurements(histories),
        "slope": slope,
        "threshold_over_prediction_min": float(ratio.min()),
        "threshold_over_prediction_max": float(ratio.max()),
        "clean_accuracy_min": float(min(clean)),
        "pgd_accuracy_past_max": float(max(pgd_past)),
        "extra": {"d": list(ds), "threshold": taus, "prediction": pred, "beta": p["beta"]},
    }


def _threshold_figure(results):
    from theorylab.plots.li_li import threshold_scaling

    ex = [r["extra"] for r in results]
    return threshold_scaling(ex[0]["d"], [e["threshold"] for e in ex], beta=ex[0]["beta"],
                             slopes=[r["slope"] for r in results])


register(Check(
    id="ll.threshold_scaling",
    paper=LL,
    claim="The standard network's robustness cliff under the -v_y attack sits at the erasure "
          "threshold beta / ||v||_1 = beta / sqrt(d): over d in {64, 128, 256, 512} the "
          "measured radius of 50% accuracy scales as d^(-1/2).",
    provenance="[D]",
    regimes={"quick": dict(BASE, ds=(64, 128, 256, 512)),
             "full": dict(BASE, ds=(64, 128, 256, 512, 1024), n_train=512, n_test=1000,
                          T_std=400, pgd_steps=20)},
    criteria=[
        Criterion("slope", "<=", -0.4,
                  "log-log slope of eps* against d is -1/2 by the l1/l2 norm ratio of a dense "
                  "sign vector; +-0.1 covers the grid resolution (5.5% steps) and seed noise "
                  "(pilot runs: -0.496)"),
        Criterion("slope", ">=", -0.6, "same, other side"),
        Criterion("threshold_over_prediction_min", ">=", 0.7,
                  "the cliff is at the predicted radius, not just parallel to it: measured "
                  "0.98 in our runs; the attack needs most of beta erased before the "
                  "softmax flips"),
        Criterion("threshold_over_prediction_max", "<=", 1.15,
                  "past beta / ||v||_1 the v-signal is gone, so the cliff cannot lie much "
                  "beyond it; 1.15 allows one grid step and seed noise"),
        Criterion("pgd_accuracy_past_max", "<=", 0.05,
                  "Theorem A (3) at every d: PGD breaks the network past the threshold"),
        Criterion("clean_accuracy_min", ">=", 0.98, kind="precondition",
                  reason="every network must be accurate before its cliff means anything"),
    ],
    run=run_threshold,
    figure=_threshold_figure,
    notes="Standard training as in ll.standard_nonrobust at each d (patch-noise norm fixed, "
          "so per-coordinate noise shrinks as 1/sqrt(d)).  eps* is the tau50 of the "
          "structured attack on an absolute log grid 0.005-0.4 (81 points).",
))


# -- ll.race -----------------------------------------------------------------------
def _winner_fraction(model, world):
    # Fraction of classes k whose filters correlate more with v_k than with u_k.
    cu = np.einsum("kmd,kd->km", model.W, world.U).max(axis=1)
    cv = np.einsum("kmd,kd->km", model.W, world.V).max(axis=1)
    return float(np.mean(cv > cu))


def _crossing(ratios, values, level):
    # First upward crossing of ``level``, interpolated linearly in log(ratio).
    lr_ = np.log(ratios)
    for i in range(len(values) - 1):
        a, b = values[i], values[i + 1]
        if a < level <= b and np.isfinite(lr_[i + 1]):
            return float(np.exp(lr_[i] + (level - a) * (lr_[i + 1] - lr_[i]) / (b - a)))
    return float("nan")


def run_race(seed, params):
    p = dict(BASE, **params)
    ratios, adv, wins, gus, gvs, histories = [], [], [], [], [], {}
    for beta in p["race_betas"]:
        r = standard_run(seed, dict(params, beta=beta))
        histories[f"standard_ratio{r['world'].race(p['q']):.3g}"] = r["history"]
        fin = r["history"].final
        gu, gv = fin["gamma_u"], fin["gamma_v"]
        # Mean-over-classes advantage in [-1, 1]: -1 only u learned, +1 only v learned
        # (finite even when a correlation stays at or below zero).
        adv.append((gv - gu) / max(abs(gu) + abs(gv), 1e-12))
        wins.append(_winner_fraction(r["model"], r["world"]))
        gus.append(gu)
        gvs.append(gv)
        ratios.append(r["world"].race(p["q"]))
    order = np.argsort(ratios)
    ratios = np.asarray(ratios, dtype=float)[order]
    adv, wins = np.asarray(adv)[order], np.asarray(wins)[order]
    gus, gvs = np.asarray(gus)[order], np.asarray(gvs)[order]
    return {
        **convergence_measurements(histories),
        "gamma_u_smallest_ratio": float(gus[0]),
        "gamma_v_largest_ratio": float(gvs[-1]),
        "v_wins_smallest_ratio": float(wins[0]),
        "v_wins_largest_ratio": float(wins[-1]),
        "crossing_ratio": _crossing(ratios, wins, 0.5),
        "advantage_crossing_ratio": _crossing(ratios, adv, 0.0),
        "non_monotone_steps": float(np.sum(np.diff(wins) < 0)),
        "extra": {"ratio": ratios.tolist(), "advantage": adv.tolist(), "v_wins": wins.tolist()},
    }


def _race_figure(results):
    from theorylab.plots.li_li import race

    ex = [r["extra"] for r in results]
    return race(ex[0]["ratio"], [e["advantage"] for e in ex], [e["v_wins"] for e in ex])


_RACE_BETAS = tuple(round((r / 4) ** (1 / 3), 4) for r in (0.125, 0.5, 1.0, 2.0, 8.0))
register(Check(
    id="ll.race",
    paper=LL,
    claim="Which feature standard training learns is decided by the race ratio "
          "n_nonrobust beta^q / alpha^q: below 1 the robust feature u wins, above 1 the "
          "non-robust v, with the switch near 1.",
    provenance="[D]",
    regimes={"quick": dict(BASE, d=64, n_train=128, n_test=100, T_std=500,
                           race_betas=_RACE_BETAS),
             "full": dict(BASE, d=128, n_train=256, n_test=100, T_std=800,
                          race_betas=tuple(round((r / 4) ** (1 / 3), 4)
                                           for r in (0.125, 0.25, 0.5, 0.71, 1.0, 1.41, 2.0,
                                                     4.0, 8.0)))},
    criteria=[
        Criterion("gamma_u_smallest_ratio", ">=", 0.5,
                  "below ratio 1 the robust feature is actually learned, not merely ahead "
                  "of v at the init scale ~0.02: Gamma_u reaches O(1) (our runs: 3.5-4.9)"),
        Criterion("gamma_v_largest_ratio", ">=", 0.5,
                  "above ratio 1 the non-robust feature is learned to O(1) (our runs: ~1.9-2.3)"),
        Criterion("v_wins_smallest_ratio", "<=", 0.25,
                  "at ratio 1/8 the robust feature wins the race for (almost) every class; one "
                  "class of K = 4 may still be decided by a lucky initial correlation"),
        Criterion("v_wins_largest_ratio", ">=", 0.75,
                  "at ratio 8 the non-robust feature wins for (almost) every class, same slack"),
        Criterion("crossing_ratio", ">=", 1 / 3,
                  "the switch (half the classes won by v) is near ratio 1: the escape time "
                  "~ 1/(rate Gamma_0^(q-2)) also depends on the max over m random initial "
                  "correlations, which differ between u and v by a factor ~2, so a factor 3 "
                  "either side is allowed (our runs: 0.6-2)"),
        Criterion("crossing_ratio", "<=", 3.0, "same, other side"),
        Criterion("non_monotone_steps", "<=", 1.0,
                  "the share of classes won by v grows with the ratio; one backward step of "
                  "one class is tolerated as init noise"),
    ],
    run=run_race,
    figure=_race_figure,
    notes="alpha = 1, n_nonrobust = 4, q = 3 and beta = (r / 4)^(1/3) for the ratios r "
          "(quick: 1/8, 1/2, 1, 2, 8).  A class is won by v when max_r <w_{k,r}, v_k> > "
          "max_r <w_{k,r}, u_k> at the end.  The quick regime uses d = 64 and 500 GD steps "
          "(the u-win side needs longer than the pilot's 300 steps: u grows at 1/ratio of "
          "v's rate).  advantage_crossing_ratio is the same switch located on the mean "
          "(Gamma_v - Gamma_u) / (|Gamma_u| + |Gamma_v|).",
))
