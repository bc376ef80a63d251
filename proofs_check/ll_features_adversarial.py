"""Li & Li (ICLR 2025): adversarial training learns the robust feature and is robust.

Two checks of the same claim, on two algorithms:

* ``ll.adversarial_robust`` runs **the paper's algorithm** [C]: one gradient-ascent step
  builds each adversarial example (FGSM, from the clean point), GD on the adversarial
  risk only, from the small random initialisation; judged in the region of the one-step
  map (issue 17, ``make ll-one-step``, ``figures/ll_one_step_*.png``) where it works;
* ``ll.adversarial_robust_warm_pgd`` runs **theorylab's addition** [D]: warm start from
  the standard network, then PGD-3 (the spec's pilot, 6.1 Test 2(c)).

Both use the reconstructed model and data of :mod:`proofs_check.ll_features` (variant A)
and the same measurements, plus, for the one-step run, the catastrophic-overfitting
indicators of :func:`theorylab.pipelines.li_li.overfitting_summary`.
"""

from __future__ import annotations

from theorylab.pipelines.li_li import make_world, overfitting_summary
from theorylab.training import logit_decomposition

from ._evaluation import EVALUATION_NOTE, sandwich
from ._harness import Check, Criterion, convergence_measurements, register
from ._papers import LL
from .ll_pipeline import (ADV, BASE, adversarial_run, curve, learning_curves, sandwich_curves,
                          standard_run, structured)

_FULL = dict(BASE, n_train=512, n_test=1000, T_std=400, pgd_steps=20)

# The paper's algorithm in the region where the map found it working (3/3 seeds): the
# base cell of examples/sweeps/ll_one_step.toml with eta = 0.2 and T = 20 escape times
# 20 / (eta alpha^3 sigma_0) = 10000 steps; eps = 0.8 x the erasure threshold
# beta / sqrt(d).  The quick regime is that cell exactly (its networks are the map's).
_PAPER = dict(adversarial="fgm", warm_start=False, lr_adv=0.2, T_adv=10000, eps_ramp=0,
              init_scale=0.01, monitor_steps=20)


def _eps(d):
    # 0.8 x beta / ||v||_1 as the world computes it (the map's cells: the same float).
    return 0.8 * make_world(0, dict(BASE, d=d)).erasure_radius()


_PAPER_QUICK = dict(BASE, **ADV)
_PAPER_QUICK.update(d=128, eps_train=_eps(128), **_PAPER)
_PAPER_FULL = dict(_FULL, **ADV)
_PAPER_FULL.update(d=256, eps_train=_eps(256), **_PAPER)

# theorylab's addition (spec 6.1 Test 2(c), scaled to d = 128): warm start from the
# standard network, PGD-3 at eps = 0.07 (0.8x the erasure threshold 1/sqrt(128)), lr 2.
_WARM_QUICK = dict(BASE, **ADV)
_WARM_QUICK.update(d=128, eps_train=0.07, adversarial="pgd", warm_start=True, T_adv=400)
_WARM_FULL = dict(_FULL, **ADV)
_WARM_FULL.update(d=256, eps_train=0.05, adversarial="pgd", warm_start=True, T_adv=600)


def run_adversarial(seed, params):
    p = dict(BASE, **ADV)
    p.update(params)
    std = standard_run(seed, params)
    adv = adversarial_run(seed, params)
    model, world, test = adv["model"], adv["world"], adv["test"]
    # Judged at the training radius unless eps_eval says otherwise (the mutation test
    # trains at eps = 0 and must still be judged at the regime's radius).
    eps = p.get("eps_eval", p["eps_train"])
    fa, fs = adv["history"].final, std["history"].final
    parts = logit_decomposition(model, test)
    total = sum(parts.values())
    factors = (0.5, 1.0, 1.5, 2.0)  # x eps_train; 1.0 is the judged radius
    e_grid, res_adv, st_adv = curve(model, adv, seed, factors, unit=eps)
    _, res_std, st_std = curve(std["model"], std, seed, factors, unit=eps)
    pgd_adv, pgd_std = res_adv.attack_accuracy.tolist(), res_std.attack_accuracy.tolist()
    out = {
        "gamma_u": fa["gamma_u"],
        "gamma_v": fa["gamma_v"],
        "gamma_u_over_v": fa["gamma_u"] / max(abs(fa["gamma_v"]), 1e-12),
        "gamma_u_gain": fa["gamma_u"] / max(abs(fs["gamma_u"]), 1e-12),
        "gamma_v_min": fa["gamma_v_min"],
        "clean_accuracy": model.accuracy(test.X, test.y),
        # Robustness of the adversarially trained network: its certified side, and its
        # attack side (a failure there is witnessed); the standard network's
        # non-robustness: its attack side.
        "certified_accuracy_at_eps": float(res_adv.certified_accuracy[1]),
        "pgd_accuracy_at_eps": pgd_adv[1],
        "pgd_accuracy_standard_at_eps": pgd_std[1],
        "structured_accuracy_past": structured(model, world, test, 1.6 * world.erasure_radius()),
        "logit_robust_share": parts["logit_robust"] / total if total > 0 else 0.0,
        "w_l1": fa["w_l1"],
        "train_loss": fa["loss"],
        "seconds": adv["seconds"],
    }
    if p.get("monitor_steps"):
        # The catastrophic-overfitting indicators (one-step vs PGD on the training set).
        out.update(overfitting_summary(adv["history"], p["rho"]))
    out.update(sandwich("robust_adv", res_adv, e_grid[1]))
    out.update(sandwich("robust_standard", res_std, e_grid[1]))
    # The judged networks' training must have converged (else the verdict is INCONCLUSIVE).
    out.update(convergence_measurements({"standard": std["history"],
                                         "adversarial": adv["history"]}))
    out["extra"] = {"eps": e_grid, "pgd": pgd_adv, "certified": res_adv.certified_accuracy.tolist(),
                    "certified_std": res_std.certified_accuracy.tolist(),
                    "structured": st_adv, "pgd_std": pgd_std,
                    "structured_std": st_std, "threshold": world.erasure_radius(),
                    "eps_train": eps, "curves": learning_curves(adv["history"]),
                    "curves_std": learning_curves(std["history"])}
    return out


def _criteria():
    # The claim's criteria, the same for both algorithms.
    return [
        Criterion("certified_accuracy_at_eps", ">=", 0.9,
                  "Theorem B (4): robust accuracy 1 - o(1) at the training radius, judged on "
                  "the certified side (a robustness claim); the spec's pilot gave 0.956 / 0.996 "
                  "under PGD; 0.9 leaves room for seed noise and is far above the standard "
                  "network's ~0"),
        Criterion("pgd_accuracy_at_eps", ">=", 0.9,
                  "the same bound on the attack side: below it the network is broken on more "
                  "than 10% of the points by re-checked witnesses (issue 17's bar for 'works')"),
        Criterion("pgd_accuracy_standard_at_eps", "<=", 0.1,
                  "the contrast: the standard network on the same data is broken at this "
                  "radius (pilot 0.0 at 0.8x the threshold)"),
        Criterion("gamma_u_over_v", ">=", 2.0,
                  "Theorem B (2-3): the u/v ratio flips from ~1/90 to > 1; pilot 6.9 / 2.5 = "
                  "2.8, our runs 2.1-4.3"),
        Criterion("gamma_u_gain", ">=", 20.0,
                  "robust feature learned: Gamma_u grows from the init scale ~0.02 to O(1) "
                  "(pilot 0.02 -> 6.9, ~300x); 20x is an order of magnitude below that"),
        Criterion("clean_accuracy", ">=", 0.98,
                  "Theorem B (4): clean accuracy stays 1 - o(1) (pilot 1.0)"),
        Criterion("structured_accuracy_past", ">=", 0.9,
                  "once the network rests on u the -v_y attack is harmless even at 1.6x the "
                  "erasure threshold (pilot 1.0)"),
    ]


_CLAIM = ("Adversarial training learns the robust feature and suppresses the non-robust one "
          "(Gamma_u >> Gamma_v), giving robust accuracy ~1 at the training radius, where the "
          "standard network has ~0, at clean accuracy ~1.")

def _register(check_id, algorithm, provenance, regimes, title, notes):
    register(Check(id=check_id, paper=LL, claim=f"{_CLAIM}  Algorithm: {algorithm}.",
                   provenance=provenance, regimes=regimes, criteria=_criteria(),
                   run=run_adversarial, notes=notes + "  " + EVALUATION_NOTE,
                   figure=lambda results: adversarial_figure(results, title)))


_register(
    "ll.adversarial_robust",
    "the paper's (one gradient-ascent step per example from the clean point, GD on the "
    "adversarial risk, from a small random init)", "[C]",
    {"quick": _PAPER_QUICK, "full": _PAPER_FULL},
    "the paper's one-step algorithm from scratch, eta 0.2, T 10000",
    "The verdict is about the paper's algorithm: one FGSM step (eps sign of the input "
    "gradient of the loss, from the clean point) per training example and GD step, "
    "pure adversarial loss, fresh init sigma_0 = 0.01, at eta = 0.2 for T = 10000 steps "
    "(20 escape times 1 / (eta alpha^q sigma_0^(q-2))), eps = 0.8 beta / ||v||_1 "
    "(0.0707 quick, 0.05 full).  That is the one cell of issue 17's map "
    "(examples/sweeps/ll_one_step.toml, 25 settings x 3 seeds, figures/ll_one_step_*.png "
    "and their README) where it works on every seed (strongest attack 1.00 / 0.93 / 1.00); "
    "its neighbours each lose a seed to catastrophic overfitting (eta 0.5 and 0.1: 2/3 "
    "seeds; eta 2: 1/3; eps = the threshold: 0/3), so the verdict rests on a narrow "
    "region, and on seed 1 it is marginal.  The full regime (d = 256) was not mapped.  "
    "The warm-started PGD-3 configuration is "
    "the separate check ll.adversarial_robust_warm_pgd (theorylab's addition).  "
    "co_gap_final, separation_step*, escape_step: the catastrophic-overfitting "
    "indicators (one-step minus PGD-20 accuracy on the training set, and when the "
    "two training losses part by 0.5 nats).")

_register(
    "ll.adversarial_robust_warm_pgd",
    "theorylab's addition, not the paper's (warm start from the standard network, then "
    "PGD-3 adversarial training)", "[D]",
    {"quick": _WARM_QUICK, "full": _WARM_FULL},
    "warm start, PGD-3 (theorylab's addition)",
    "Not the paper's algorithm: theorylab's working configuration from the spec's "
    "pilot (6.1 Test 2(c)): warm start from the standard network, PGD-3 (step 2.5 eps "
    "/ 3, last iterate) at eps = 0.07, d = 128, 400 GD steps (quick; full: the pilot's "
    "eps = 0.05, d = 256, 600 steps) at lr 2, pure adversarial loss.  The paper's "
    "own algorithm is judged in ll.adversarial_robust.")


def adversarial_figure(results, title):
    """Robust accuracy vs radius of the adversarially trained and the standard networks."""
    from theorylab.plots.li_li import robustness_vs_eps

    ex = [r["extra"] for r in results]
    return robustness_vs_eps(
        ex[0]["eps"], {**sandwich_curves(ex, "adversarial, "),
                       **sandwich_curves(ex, "standard, ", "_std")},
        threshold=ex[0]["threshold"], eps_train=ex[0]["eps_train"],
        title=f"standard vs adversarial training ({title})")
