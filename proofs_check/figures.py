"""One driver for the figures that are not a check's own: ``theorylab plot FAMILY OUTDIR``.

Each check draws its figure itself (``Check.figure``, called by the runner).  The
families below are the summary figures committed in ``figures/``; they run the
public pipelines and the checks' experiments and hand the results to the
plotting functions of :mod:`theorylab.plots`, which only draw.

``regenerate(family, outdir, quick=False)`` is the one signature.
"""

from __future__ import annotations

import os

import numpy as np

from theorylab import attacks
from theorylab.images import from_patches
from theorylab.models import LinearClassifier, NTKClassifier, PolynomialClassifier, TwoLayerReLU
from theorylab.pipelines.feature_purification import fp_run
from theorylab.plots import images as imp
from theorylab.plots import li_li as llp
from theorylab.plots import lower_bounds as lbp
from theorylab.worlds import SparseCoding

from . import load_checks
from ._evaluation import evaluate

__all__ = ["FAMILIES", "regenerate", "collect_curves", "collect_scaling"]

# The pilot's clean-then-FGM settings (spec 5, "Practical settings that worked").
FP_PILOT = dict(codes="pm1", noise=0.05, width_mult=2, init_scale=None, c0=1.0, c1=0.5,
                ramp_frac=0.5, lr=0.5, dictionary="identity", n_test=1000)


def _robust(model, X, y, eps, p, world, pgd_steps=20):
    # The attack side of the one evaluation (these curves show non-robustness; the
    # adversarially trained network's certified side is in the fp and lb checks).
    if eps == 0:
        return float(np.mean(model.margins(X, y) > 0))
    return float(evaluate(model, X, y, [eps], p, world=world, certify=p in
                          model.capabilities.exact).attack_accuracy[0])


# -- lower bounds: the experiment behind figures/lb_*.png ---------------------------


def collect_curves(norm, *, d, k, tau_adv, grid, T=3000, T_adv=1500, batch=1024, n_train=3000,
                   n_test=1000, n_pgd=400, m_ntk=256, seed=0):
    """Robust accuracy over ``grid`` for the networks and every baseline on one world.

    Returns
    -------
    dict
        ``grid``, ``curves`` (family -> list), ``note`` (the regime, for the title).
    """
    p = 2.0 if norm in (2, "2", "l2") else np.inf
    # The networks of the Feature Purification pipeline (pilot settings at these sizes).
    run = fp_run(seed, dict(FP_PILOT, d=d, k=k, T=T, T_adv=T_adv, batch=batch,
                            eps_train=tau_adv, norm=p))
    world, clean, adv = run.world, run.clean, run.adv
    tr = world.sample(n_train, seed + 1)
    te = world.sample(n_test, seed + 2)
    n_kernel = min(n_train, 2000)
    models = {
        "adversarial network": adv, "clean network": clean,
        "purified network": TwoLayerReLU.purified(world),
        "linear (logistic)": LinearClassifier(d).fit(tr.X, tr.y),
        "linear rule M w*": LinearClassifier.oracle(world),
        "separable cubic (trained)": PolynomialClassifier.separable(d, 3).fit(tr.X, tr.y),
        "oracle cubic t^3": PolynomialClassifier.oracle(world, 3),
        "soft-threshold cubic": PolynomialClassifier.oracle(world, q={3: 2.5, 5: -1.5}),
        "cubic kernel": PolynomialClassifier.kernel(d, 3).fit(tr.X[:n_kernel], tr.y[:n_kernel]),
        f"NTK (m={m_ntk})": NTKClassifier.empirical(d, m_ntk, seed=seed).fit(
            tr.X[:n_kernel], tr.y[:n_kernel]),
        "NTK (analytic)": NTKClassifier.analytic(d).fit(tr.X[:n_kernel], tr.y[:n_kernel]),
    }
    curves = {}
    for name, model in models.items():
        exact = isinstance(model, LinearClassifier) or (
            isinstance(model, PolynomialClassifier) and p == np.inf)
        n = n_test if exact else n_pgd
        curves[name] = [_robust(model, te.X[:n], te.y[:n], e, p, world) for e in grid]
    label = "l2" if p == 2.0 else "linf"
    return {"grid": list(grid), "curves": curves,
            "note": f"{label}: d={d}, k={k}, FGM tau_adv={tau_adv} (T={T}+{T_adv})"}


def _tau50_exact(model, X, y, scale, p):
    grid = scale * np.geomspace(0.05, 20.0, 60)
    acc = [float(np.mean(model.worst_case_margin(X, y, e, p) > 0)) for e in grid]
    return attacks.tau50(grid, acc, float(np.mean(model.margins(X, y) > 0)))


def collect_scaling(*, k=6, ds_linear=(256, 512, 1024, 2048), ds_ntk=(128, 256, 512),
                    ds_poly=(256, 1024, 4096), n_test=1000, n_pgd=300, m_ntk=256,
                    seed=0):
    """tau50 against d at fixed k for linear (l2, linf), NTK (linf) and the soft cubic (linf).

    Returns
    -------
    dict
        label -> {"ds", "tau50", "derived"}: measured tau50 and the derived slope.
    """
    out = {"linear l2": ([], -0.5), "linear linf": ([], -1.0), f"NTK m={m_ntk} linf": ([], -1.0),
           "soft-threshold cubic linf": ([], -1 / 3)}
    for d in ds_linear:
        w = SparseCoding(d, k, seed=seed + d)
        tr, te = w.sample(3 * d, seed + 1), w.sample(n_test, seed + 2)
        lin = LinearClassifier(d).fit(tr.X, tr.y)
        out["linear l2"][0].append(_tau50_exact(lin, te.X, te.y, (k / d) ** 0.5, 2.0))
        out["linear linf"][0].append(_tau50_exact(lin, te.X, te.y, k ** 0.5 / d, np.inf))
    for d in ds_ntk:
        w = SparseCoding(d, k, seed=seed + d)
        tr, te = w.sample(8 * d, seed + 1), w.sample(n_pgd, seed + 2)
        ntk = NTKClassifier.empirical(d, m_ntk, seed=seed).fit(tr.X, tr.y)
        grid = (k ** 0.5 / d) * np.array([0.125, 0.25, 0.5, 1.0, 2.0, 4.0])
        acc = [_robust(ntk, te.X, te.y, e, np.inf, w, pgd_steps=10) for e in grid]
        out[f"NTK m={m_ntk} linf"][0].append(attacks.tau50(grid, acc, ntk.accuracy(te.X, te.y)))
    for d in ds_poly:  # SparseCoding stores M = I densely: keep d <= 4096 here
        w = SparseCoding(d, k, seed=seed + d)
        te = w.sample(n_test, seed + 2)
        soft = PolynomialClassifier.oracle(w, q={3: 2.5, 5: -1.5})
        grid = np.geomspace(0.004, 1.0, 60)
        acc = [attacks.robust_accuracy(soft, te.X, te.y, e, np.inf, "dense", world=w)
               for e in grid]
        out["soft-threshold cubic linf"][0].append(attacks.tau50(grid, acc, 1.0))
    ds = {"linear l2": ds_linear, "linear linf": ds_linear, f"NTK m={m_ntk} linf": ds_ntk,
          "soft-threshold cubic linf": ds_poly}
    return {name: {"ds": list(ds[name]), "tau50": vals, "derived": slope}
            for name, (vals, slope) in out.items()}



def _lower_bounds(outdir, quick=False, only=None):
    """Regenerate ``figures/lb_robust_curves.png`` and ``figures/lb_tau50_scaling.png``.

    ``quick`` shrinks every size (d = 128, 1000 + 500 training steps) for a
    fast smoke run; the committed figures use the default (pilot) sizes.
    ``only`` ("curves" or "scaling") regenerates one of the two.

    Returns
    -------
    list of str
        The paths written.
    """
    if quick:
        size = dict(d=128, T=1000, T_adv=500, batch=512, n_train=1500, n_pgd=200)
        scal = dict(ds_linear=(128, 256, 512), ds_ntk=(64, 128, 256), ds_poly=(256, 1024),
                    n_test=500, n_pgd=200)
    else:
        size = dict(d=256)
        scal = {}
    if only not in (None, "curves", "scaling"):
        raise ValueError(f"only must be None, 'curves' or 'scaling', got {only!r}")
    paths = []
    if only in (None, "curves"):
        linf_grid = [0.0025, 0.005, 0.01, 0.02, 0.03, 0.04, 0.06, 0.08, 0.12, 0.16, 0.24]
        l2_grid = [0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6, 0.8, 1.2]
        curves = {"linf": collect_curves("inf", k=4, tau_adv=0.08, grid=linf_grid, **size),
                  "l2": collect_curves(2, k=6, tau_adv=0.3, grid=l2_grid, **size)}
        fig = lbp.robustness_panels(curves, title="Robust accuracy: adversarially trained network "
                                              "vs low-complexity baselines (same world)")
        paths.append(os.path.join(outdir, "lb_robust_curves.png"))
        fig.savefig(paths[-1], dpi=130)
    if only in (None, "scaling"):
        fig = lbp.scaling_figure(collect_scaling(**scal))
        paths.append(os.path.join(outdir, "lb_tau50_scaling.png"))
        fig.savefig(paths[-1], dpi=130)
    return paths


def _li_li(outdir, quick=False):
    """Regenerate the ll figures into a directory (default ``figures/``).

    Runs the quick regime of the ll checks on seeds 0, 1, 2 (a few minutes).
    """
    from .ll_features_adversarial import adversarial_figure, run_adversarial
    from .ll_scaling import run_race, run_threshold

    checks = load_checks()
    seeds = (0, 1, 2)

    def runs(check_id, fn):
        params = checks[check_id].regimes["quick"]
        return [fn(seed, params) for seed in seeds]

    # The warm-started PGD-3 run (theorylab's addition): its standard -> adversarial
    # trajectory is the picture these two figures draw.  The paper's one-step algorithm
    # from scratch has its own figures, from its map (make ll-one-step).
    adv = runs("ll.adversarial_robust_warm_pgd", run_adversarial)
    ex = [r["extra"] for r in adv]
    written = []

    def save(fig, name):
        path = os.path.join(outdir, name)
        fig.savefig(path, dpi=130)
        written.append(path)

    t_std = checks["ll.adversarial_robust_warm_pgd"].regimes["quick"]["T_std"]
    curves = {"standard": [e["curves_std"] for e in ex],
              "adversarial, warm start, PGD-3": [e["curves"] for e in ex]}
    save(llp.feature_learning(curves, offsets={"adversarial, warm start, PGD-3": t_std},
                          title="standard, then adversarial (warm start, PGD-3) from it, after "
                                "the dotted line"),
         "ll_feature_learning.png")
    save(adversarial_figure(adv, "warm start, PGD-3; 3 seeds"), "ll_robustness.png")
    thr = runs("ll.threshold_scaling", run_threshold)
    save(llp.threshold_scaling(thr[0]["extra"]["d"], [r["extra"]["threshold"] for r in thr],
                           beta=thr[0]["extra"]["beta"], slopes=[r["slope"] for r in thr]),
         "ll_threshold_scaling.png")
    rc = runs("ll.race", run_race)
    save(llp.race(rc[0]["extra"]["ratio"], [r["extra"]["advantage"] for r in rc],
              [r["extra"]["v_wins"] for r in rc]), "ll_race.png")
    return written


def _images(outdir, quick=False):
    """Regenerate ``img_*.png`` into ``outdir`` and return the paths."""
    from theorylab.images import (REGIMES, low_rank_experiment, purification_experiment,
                                  robust_nonrobust_experiment)

    written = []

    def save(fig, name):
        path = os.path.join(outdir, name)
        fig.savefig(path, dpi=130)
        written.append(path)

    low = {}
    for norm in ("l2", "linf"):
        params = REGIMES[norm]["quick"]
        base = purification_experiment(params, seed=0)
        a = base["arrays"]
        eps = params["eps_train"]
        save(imp.feature_tiles(a["W_clean"], a["W_adv"], a["image_shape"], ratio=a["ratio"],
                           title=f"two-layer net, digits 0-4 vs 5-9: clean vs FGM {norm} "
                                 f"eps={eps} fine-tuning; principle holds for "
                                 f"{base['fraction']:.0%} of neurons (number: ||beta w'||/||v||)"),
             f"img_features_{norm}.png")
        low[f"{norm} eps={eps}"] = low_rank_experiment(params, seed=0, base=base)["arrays"]
    save(imp.low_rank_curve(low), "img_low_rank.png")
    rnr = robust_nonrobust_experiment(REGIMES["cnn"]["quick"], seed=0)
    a = rnr["arrays"]
    save(imp.dataset_curves({"std": a["std"], "adv": a["adv"]}, chance=rnr["chance"],
                        title="smoothed-ReLU CNN on 10-class digits: accuracy on D_R / D_NR "
                              "while training"), "img_datasets.png")
    ex = a["examples"]
    save(imp.dataset_examples(ex, unpatch=lambda X: from_patches(X, ex["image_shape"],
                                                                 ex["patch"])),
         "img_dataset_examples.png")
    w = a["cnn_weights"]
    save(imp.feature_tiles(w["W_clean"], w["W_adv"], w["image_shape"], n=16, ratio=w["ratio"],
                       title=f"CNN 4x4 filters: standard vs FGM-fine-tuned; principle holds for "
                             f"{rnr['cnn_fraction']:.0%} of filters"), "img_features_cnn.png")
    return written


FAMILIES = {"lower-bounds": _lower_bounds, "li-li": _li_li, "images": _images}


def regenerate(family, outdir="figures", *, quick=False):
    """Regenerate the figures of ``family`` into ``outdir``; returns the paths written.

    Parameters
    ----------
    family : {"lower-bounds", "li-li", "images"}
    outdir : str or path
        Created if missing.
    quick : bool
        Small sizes for a smoke run (the committed figures use the default).
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {sorted(FAMILIES)}, got {family!r}")
    outdir = os.fspath(outdir)
    os.makedirs(outdir, exist_ok=True)
    return FAMILIES[family](outdir, quick=quick)
