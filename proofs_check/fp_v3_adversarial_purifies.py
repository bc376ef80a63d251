"""V3: FGM-only adversarial training from the clean weights purifies and robustifies.

Paper [C]: adversarial training, even with FGM, is robust to any perturbation
of the same radius, and it removes the dense mixtures.  The quantitative
reading (close to the purified oracle under PGD, dense ratio and alignment
drop) is theorylab's [D] (spec 5 V3).
"""

from __future__ import annotations

import numpy as np

from theorylab import attacks, metrics
from theorylab.models import TwoLayerReLU
from theorylab.pipelines.feature_purification import fp_run

from ._evaluation import EVALUATION_NOTE, curve_extra, evaluate, sandwich
from ._fp_common import REGIMES, evaluated, nearest_index
from ._harness import Check, Criterion, convergence_measurements, register
from ._papers import FP


def _covered_oracle(run, params):
    """The purified oracle restricted to the atoms the clean network learned.

    Adversarial training purifies the features clean training found; atoms no
    neuron took as its main feature are a coverage effect of clean training, so
    this oracle separates the two sources of a gap to the full oracle.
    """
    C = run.clean.coefficients()
    covered = np.zeros(run.world.d, dtype=bool)
    covered[np.argmax(np.abs(C), axis=1)] = True
    W = (run.world.M * run.world.w_star[None, :]).T[covered]
    return TwoLayerReLU(run.world.d, W.shape[0], threshold="max", c=params["c1"],
                        dictionary=None if run.world.identity else run.world.M, W=W)


def run(seed, params):
    r = fp_run(seed, params)
    ev = evaluated(r, params, seed=seed)
    grid = params["grid"]
    i = nearest_index(grid, params["eps_eval"])
    eps = grid[i]
    M = None if r.world.identity else r.world.M
    before = metrics.feature_structure(r.clean.W, r.world.w_star, M)
    after = metrics.feature_structure(r.adv.W, r.world.w_star, M)
    # The claim is robustness of the FGM-trained network: judged on its certified side;
    # the clean network's non-robustness on its attack side; the oracle's gap on its
    # attack side (the conservative pairing: upper oracle against lower adversarial).
    clean_r = ev["clean"].attack_accuracy[i]
    adv_r = ev["adv"].certified_accuracy[i]
    orc_up, orc_low = ev["oracle"].attack_accuracy[i], ev["oracle"].certified_accuracy[i]
    rho0, rho1 = np.median(before["dense_ratio"]), np.median(after["dense_ratio"])
    al0, al1 = np.median(before["dense_alignment"]), np.median(after["dense_alignment"])
    cov = evaluate(_covered_oracle(r, params), r.test.X, r.test.y, grid[:i + 1], params["norm"],
                   world=r.world, seed=seed)
    covered = float(cov.attack_accuracy[-1])
    out = {
        "robust_adv_pgd20": float(attacks.robustness_curve(
            r.adv, r.test.X, r.test.y, grid[:i + 1], params["norm"], "pgd", cumulative=True,
            steps=20).accuracy[-1]),
        "oracle_covered_minus_adv": covered - adv_r,
        "oracle_minus_clean": orc_low - clean_r,
        "oracle_minus_adv": orc_up - adv_r,
        "gap_closed": (adv_r - clean_r) / (orc_up - clean_r) if orc_up > clean_r else float("nan"),
        "clean_accuracy_adv": ev["adv"].clean_accuracy,
        "dense_ratio_clean": rho0,
        "dense_ratio_adv": rho1,
        "dense_ratio_drop": 1.0 - rho1 / rho0,
        "alignment_clean": al0,
        "alignment_adv": al1,
        "alignment_kept": al1 / al0,
        "extra": {"grid": grid, "norm": str(params["norm"]),
                  "curves": {k: curve_extra(ev[k]) for k in ev},
                  "ratio_before": before["dense_ratio"], "ratio_after": after["dense_ratio"],
                  "C_clean": r.clean.coefficients(), "C_adv": r.adv.coefficients()},
    }
    for name in ("clean", "adv", "oracle"):
        out.update(sandwich(f"robust_{name}", ev[name], eps))
    out.update(sandwich("robust_oracle_covered", cov, eps))
    out.update(convergence_measurements({"clean": r.clean_history, "adv": r.adv_history}))
    return out


def figure(results):
    from matplotlib.figure import Figure

    from theorylab.plots.fp import dense_ratio_histograms, robustness_curves

    ex = [r["extra"] for r in results]
    fig = Figure(figsize=(10, 7.4))
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 1.1])
    a1, a2 = top.subplots(1, 2)
    names = ("clean", "adv", "oracle")
    curves = {k: [e["curves"][k]["attack"] for e in ex] for k in names}
    lower = {k: [e["curves"][k]["certified"] for e in ex] for k in names}
    robustness_curves(ex[0]["grid"], curves, norm=ex[0]["norm"], ax=a1, lower=lower,
                      title="strongest attack (solid) and certified (dashed); median over "
                            "seeds")
    dense_ratio_histograms(ex[0]["ratio_before"], ex[0]["ratio_after"], ax=a2)
    a2.set_title("dense ratio per neuron (seed 0)", fontsize=9)
    from theorylab.plots.fp import weight_heatmaps

    weight_heatmaps(ex[0]["C_clean"], ex[0]["C_adv"], fig=bottom)
    return fig


CRITERIA = [
    Criterion("oracle_minus_clean", ">=", 0.2, kind="precondition",
              reason="the regime separates the clean and purified networks at eps_eval; "
                     "without that the claim cannot be tested"),
    Criterion("gap_closed", ">=", 0.7,
              "FGM training closes most of the clean-to-purified gap, its certified accuracy "
              "against the clean network's attacked one (pilot l2, PGD only: "
              "(0.81-0.37)/(0.83-0.37) = 0.96)"),
    Criterion("oracle_minus_adv", "<=", 0.1,
              "certified robust accuracy within 0.1 of the purified oracle's at the target "
              "radius ('robust against any perturbation' [C] needs the certified side)"),
    Criterion("clean_accuracy_adv", ">=", 0.95,
              "clean accuracy stays high (pilot 0.97-1.00 after adversarial training)"),
    Criterion("dense_ratio_drop", ">=", 0.4,
              "the dense mixture shrinks by at least 40% (pilot: 0.58 -> 0.24, 59%)"),
    Criterion("alignment_kept", "<=", 0.5,
              "what remains of the dense part is no longer along M w*: alignment at most "
              "half its clean value (pilot: 0.70 -> 0.15 in l2, -> -0.08 in linf)"),
]

for name in ("l2", "linf", "linf_dense"):
    register(Check(
        id=f"fp.v3_adversarial_purifies_{name}",
        paper=FP,
        claim="FGM-only adversarial training from the clean weights is robust against any "
              "perturbation at "
              "the target radius, close to the purified oracle, keeps clean accuracy, and "
              "removes the dense mixtures.",
        provenance="[C]",
        regimes=REGIMES[name],
        criteria=CRITERIA,
        run=run,
        figure=figure,
        notes="The claim is judged on the FGM-trained network's certified side "
              "(robust_adv_certified; exact at eps_eval where the solver ran); the clean "
              "network on its attack side; oracle_minus_adv pairs the oracle's attack side "
              "with the trained network's certified side. robust_adv_pgd20 is the old PGD-20 "
              "number, for comparison. The oracle is one neuron per atom with the same "
              "threshold rule (spec 3.3(iii)). " + EVALUATION_NOTE + (
                  " linf trains at the evaluation radius, the paper's 'same radius' [C]: at the "
                  "pilot's 2x radius (0.08) the oracle gap was 0.12 [0.08, 0.12] on seeds 0-2, "
                  "and 0.12-0.16 on seeds 10-12 against 0.08-0.10 at 0.04 (radius sweep in "
                  "proofs_check/_fp_common.py). With k = 5 instead of 4 the gap was 0.145. "
                  "oracle_covered_minus_adv compares with the oracle on the atoms the clean "
                  "network learned: the rest of the gap is clean-training coverage."
                  if name == "linf" else
                  " Pixel-space linf with a dense dictionary acts like an l2 ball of radius "
                  "~0.8 eps sqrt(d) on the codes, so this regime uses the l2 regime's k and clean "
                  "run; at k = 4 (below the l2 window) the clean and purified networks did not "
                  "separate (oracle - clean 0.155 on seeds 0-2)."
                  if name == "linf_dense" else ""),
    ))
