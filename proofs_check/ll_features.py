"""Li & Li (ICLR 2025): standard training learns the non-robust feature, AT the robust one.

Model, data and algorithm are theorylab's reconstruction (spec ``robust_features.md``
variant A: l_inf threat, s-sparse robust u_k, dense non-robust v_k, one robust
patch and ``n_nonrobust`` non-robust patches, two-layer smoothed-ReLU CNN).
The qualitative claims are the paper's [C]; the erasure threshold beta / ||v||_1
and the race ratio n_nonrobust beta^q / alpha^q are our derivations [D]
(spec 1.2, 6.3), checked in :mod:`proofs_check.ll_scaling`.
"""

from __future__ import annotations

from theorylab.attacks import erasure_threshold
from theorylab.training import logit_decomposition

from ._evaluation import EVALUATION_NOTE, sandwich
from ._harness import Check, Criterion, convergence_measurements, register
from ._papers import LL
from .ll_pipeline import (ADV, BASE, adversarial_run, learning_curves, robustness,
                          standard_run, structured)

_QUICK = dict(BASE)
_FULL = dict(BASE, n_train=512, n_test=1000, T_std=400, pgd_steps=20)


def _curve(model, run, p, seed, factors, unit=None):
    # The sandwich and the structured-attack accuracy at radii factors x unit (default: the
    # erasure threshold).  Returns the radii, the Robustness and the structured accuracies.
    unit = run["world"].erasure_radius() if unit is None else unit
    eps = [f * unit for f in factors]
    return eps, robustness(model, run["test"], eps, p, seed), \
        [structured(model, run["world"], run["test"], e) for e in eps]


# -- ll.standard_nonrobust ---------------------------------------------------
def run_standard(seed, params):
    p = dict(BASE, **params)
    r = standard_run(seed, params)
    model, world, test = r["model"], r["world"], r["test"]
    fin = r["history"].final
    thr = world.erasure_radius()
    parts = logit_decomposition(model, test)
    total = sum(parts.values())
    factors = (0.3, 0.6, 1.0, 1.25, 1.6)  # 0.3 and 1.25 are the judged radii
    eps, res, st = _curve(model, r, p, seed, factors)
    pgd = res.attack_accuracy.tolist()
    out = {
        "gamma_u": fin["gamma_u"],
        "gamma_v": fin["gamma_v"],
        "gamma_v_over_u": fin["gamma_v"] / max(abs(fin["gamma_u"]), 1e-12),
        "clean_accuracy": model.accuracy(test.X, test.y),
        # Non-robustness past the threshold: the attack side (witnesses).
        "pgd_accuracy_below": pgd[0],
        # Robust below the threshold: a robustness statement, its certified side.
        "certified_accuracy_below": float(res.certified_accuracy[0]),
        "pgd_accuracy_past": pgd[3],
        "structured_accuracy_past": st[3],
        "erasure_threshold_over_prediction": erasure_threshold(model, world, test) / thr,
        "logit_nonrobust_share": parts["logit_nonrobust"] / total if total > 0 else 0.0,
        "seconds": r["seconds"],
        "extra": {"eps": eps, "pgd": pgd, "certified": res.certified_accuracy.tolist(),
                  "structured": st, "threshold": thr, "curves": learning_curves(r["history"])},
    }
    out.update(sandwich("robust_below", res, eps[0]))
    out.update(sandwich("robust_past", res, eps[3]))
    out.update(convergence_measurements({"standard": r["history"]}))
    return out


register(Check(
    id="ll.standard_nonrobust",
    paper=LL,
    claim="Standard GD learns mainly the dense non-robust feature (Gamma_v >> Gamma_u), is "
          "accurate on clean data, and loses all robustness once the l_inf radius passes the "
          "erasure threshold beta / ||v||_1, where the attack along -v_y alone suffices.",
    provenance="[C]",
    regimes={"quick": _QUICK, "full": _FULL},
    criteria=[
        Criterion("gamma_v_over_u", ">=", 10.0,
                  "Theorem A (2): v learned, u stays near init; the spec's pilot has "
                  "2.0 / 0.023 ~ 90, so 10 leaves an order of magnitude of slack"),
        Criterion("clean_accuracy", ">=", 0.98,
                  "Theorem A (1): clean accuracy 1 - o(1); pilot 1.0 on 500 points (0.98 "
                  "allows 6 errors on the quick regime's 300 test points)"),
        Criterion("pgd_accuracy_past", "<=", 0.05,
                  "Theorem A (3): robust accuracy o(1) past the threshold; pilot PGD-10 gave "
                  "0.0 at 0.8x and 1.28x the threshold"),
        Criterion("structured_accuracy_past", "<=", 0.4,
                  "adversarial examples lie along -v_y [C]: that direction alone brings accuracy "
                  "to about chance 1/K = 0.25 (pilot 0.15-0.21 at 1.3-1.6x); 0.4 is well "
                  "below the clean 1.0"),
        Criterion("logit_nonrobust_share", ">=", 0.9,
                  "'mainly the non-robust features': the true-class score comes from the "
                  "non-robust patches (the robust patch's share is ~sigma(Gamma_u) ~ 0)"),
        Criterion("certified_accuracy_below", ">=", 0.9,
                  "the loss of robustness is a threshold effect: at 0.3x the threshold the "
                  "network is still robust, certified (pilot PGD-10: 1.0 at 0.32x)"),
    ],
    run=run_standard,
    figure=lambda results: _robustness_figure(results, "standard training"),
    notes="Quick regime: spec config A0 with n_train = 256 (pilot 512), 300 GD steps at "
          "lr 0.5.  pgd_accuracy_* are the attack side of the sandwich (the whole suite, "
          "not PGD alone; the key names are kept from earlier reports); robustness below the "
          "threshold is judged on the certified side.  The structured attack is -eps "
          "sign(v_y) on the non-robust patches only.  " + EVALUATION_NOTE,
))


# -- ll.adversarial_robust ---------------------------------------------------
# The configuration that works (spec 6.1 Test 2(c), scaled to d = 128): warm start
# from the standard network, PGD-3 adversarial training at eps = 0.07 (0.8x the
# erasure threshold 1/sqrt(128)), 600 GD steps at lr 2.
_ADV_QUICK = dict(BASE, **ADV)
_ADV_QUICK.update(d=128, eps_train=0.07, adversarial="pgd", warm_start=True, T_adv=400,
                  one_step=("one_step",))
_ADV_FULL = dict(_FULL, **ADV)
_ADV_FULL.update(d=256, eps_train=0.05, adversarial="pgd", warm_start=True, T_adv=600,
                 one_step=("one_step", "one_step_ramp"))
# The paper's algorithm as stated (one FGSM step, fresh init), without and with our
# radius ramp: measured and reported beside the working configuration.
_ONE_STEP = {"one_step": dict(adversarial="fgm", warm_start=False, eps_ramp=0, T_adv=600),
             "one_step_ramp": dict(adversarial="fgm", warm_start=False, eps_ramp=200, T_adv=600)}


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
    e_grid, res_adv, st_adv = _curve(model, adv, p, seed, factors, unit=eps)
    _, res_std, st_std = _curve(std["model"], std, p, seed, factors, unit=eps)
    pgd_adv, pgd_std = res_adv.attack_accuracy.tolist(), res_std.attack_accuracy.tolist()
    out = {
        "gamma_u": fa["gamma_u"],
        "gamma_v": fa["gamma_v"],
        "gamma_u_over_v": fa["gamma_u"] / max(abs(fa["gamma_v"]), 1e-12),
        "gamma_u_gain": fa["gamma_u"] / max(abs(fs["gamma_u"]), 1e-12),
        "gamma_v_min": fa["gamma_v_min"],
        "clean_accuracy": model.accuracy(test.X, test.y),
        # Robustness of the adversarially trained network: its certified side; the
        # standard network's non-robustness: its attack side.
        "certified_accuracy_at_eps": float(res_adv.certified_accuracy[1]),
        "pgd_accuracy_at_eps": pgd_adv[1],
        "pgd_accuracy_standard_at_eps": pgd_std[1],
        "structured_accuracy_past": structured(model, world, test, 1.6 * world.erasure_radius()),
        "logit_robust_share": parts["logit_robust"] / total if total > 0 else 0.0,
        "w_l1": fa["w_l1"],
        "seconds": adv["seconds"],
    }
    out.update(sandwich("robust_adv", res_adv, e_grid[1]))
    out.update(sandwich("robust_standard", res_std, e_grid[1]))
    # The judged networks' training; the one-step runs below are reported, never judged.
    out.update(convergence_measurements({"standard": std["history"],
                                         "adversarial": adv["history"]}))
    extra = {"eps": e_grid, "pgd": pgd_adv, "certified": res_adv.certified_accuracy.tolist(),
             "certified_std": res_std.certified_accuracy.tolist(),
             "structured": st_adv, "pgd_std": pgd_std,
             "structured_std": st_std, "threshold": world.erasure_radius(), "eps_train": eps,
             "curves": learning_curves(adv["history"]),
             "curves_std": learning_curves(std["history"])}
    for name in p.get("one_step", ()):  # reported, never judged (see the notes)
        r = adversarial_run(seed, dict(params, **_ONE_STEP[name]))
        f = r["history"].final
        one = robustness(r["model"], test, [eps], p, seed)
        out[f"{name}_pgd_accuracy_at_eps"] = float(one.attack_accuracy[0])
        out.update(sandwich(f"robust_{name}", one, eps))
        out[f"{name}_gamma_u"] = f["gamma_u"]
        out[f"{name}_gamma_v"] = f["gamma_v"]
        out[f"{name}_w_l1"] = f["w_l1"]
        out[f"{name}_train_loss"] = f["loss"]
        extra[f"curves_{name}"] = learning_curves(r["history"])
    out["extra"] = extra
    return out


register(Check(
    id="ll.adversarial_robust",
    paper=LL,
    claim="Adversarial training learns the robust feature and suppresses the non-robust one "
          "(Gamma_u >> Gamma_v), giving robust accuracy ~1 at the training radius, where the "
          "standard network has ~0, at clean accuracy ~1.",
    provenance="[C]",
    regimes={"quick": _ADV_QUICK, "full": _ADV_FULL},
    criteria=[
        Criterion("certified_accuracy_at_eps", ">=", 0.9,
                  "Theorem B (4): robust accuracy 1 - o(1) at the training radius, judged on "
                  "the certified side (a robustness claim); the spec's pilot gave 0.956 / 0.996 "
                  "under PGD and our runs 0.99-1.0; 0.9 leaves room for seed noise and is far "
                  "above the standard network's ~0"),
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
    ],
    run=run_adversarial,
    figure=lambda results: _adversarial_figure(results),
    notes="Working configuration (spec 6.1 Test 2(c)): warm start from the standard network, "
          "PGD-3 (step 2.5 eps / 3, last iterate) at eps = 0.07, d = 128, 400 GD steps (quick; "
          "full: the pilot's eps = 0.05, d = 256, 600 steps) at lr 2, pure adversarial loss.  "
          "The paper's own algorithm (one FGSM step from a fresh init) is run too and "
          "reported, not judged: one_step_* (radius eps from step 0; quick and full) and "
          "one_step_ramp_* (radius ramped from 0 over the first 200 of 600 steps, our "
          "addition; full only, to keep the quick regime within its time budget).  In our "
          "runs both learn u (Gamma_u ~ 4-6) but keep a large Gamma_v and reach only "
          "0.15-0.9 PGD robust accuracy, varying with the seed: gradient masking / "
          "catastrophic overfitting to the one-step examples, as in the spec's pilot "
          "(6.1 Test 2(a)).  Measured: quick, 3 seeds: one_step PGD-10 accuracy 0.15-0.27 at "
          "eps = 0.07 (Gamma_u 4.1-4.5, Gamma_v 1.2-3.5); full, seed 0: one_step 0.38, "
          "one_step_ramp 0.53 at eps = 0.05 (PGD-20).  We do not reproduce the paper's "
          "one-step guarantee at these sizes; the reconstruction, not the paper, may be at "
          "fault.",
))


def _robustness_figure(results, title):
    from theorylab.plots.li_li import robustness_vs_eps

    ex = [r["extra"] for r in results]
    return robustness_vs_eps(ex[0]["eps"], {"strongest attack": [e["pgd"] for e in ex],
                                            "certified": [e["certified"] for e in ex],
                                            "-v_y attack": [e["structured"] for e in ex]},
                             threshold=ex[0]["threshold"], title=title)


def _adversarial_figure(results):
    from theorylab.plots.li_li import robustness_vs_eps

    ex = [r["extra"] for r in results]
    return robustness_vs_eps(ex[0]["eps"], {
        "adversarial, strongest attack": [e["pgd"] for e in ex],
        "adversarial, certified": [e["certified"] for e in ex],
        "adversarial, -v_y": [e["structured"] for e in ex],
        "standard, strongest attack": [e["pgd_std"] for e in ex],
        "standard, certified": [e["certified_std"] for e in ex],
        "standard, -v_y": [e["structured_std"] for e in ex]},
        threshold=ex[0]["threshold"], eps_train=ex[0]["eps_train"],
        title="standard vs adversarial training (warm start, PGD-3)")
