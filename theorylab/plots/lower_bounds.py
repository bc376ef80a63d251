"""Lower-bound figures: low-complexity baselines against the adversarially trained network.

Every plotting function returns a matplotlib Figure (Agg; nothing calls
``show``).  :func:`main` regenerates the committed ``figures/lb_*.png``::

    python -m theorylab.plots.lower_bounds figures/           # several minutes
    python -m theorylab.plots.lower_bounds figures/ --quick   # small sizes, ~1 minute

The experiment behind the figures (spec feature_purification.md V5-V8) trains
the network clean then with FGM (pilot regime: d=256, m=2d, batch 1024, lr 0.5,
c 1.0 -> 0.5), fits every baseline on the same world, and measures robust
accuracy with the strongest attack each model allows (exact worst case for
linear models and separable polynomials in linf, else PGD-20 and the dense
direction together).
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from .. import attacks
from ..models import LinearClassifier, NTKClassifier, PolynomialClassifier, TwoLayerReLU
from ..training import ThresholdSchedule, train
from ..worlds import SparseCoding

__all__ = ["robustness_panels", "tau50_scaling", "same_radius_bars", "linear_bound_panels",
           "ntk_width_panel", "scaling_figure", "collect_curves", "collect_scaling", "main"]

_STYLE = {"adversarial network": ("tab:blue", "-", 2.2), "clean network": ("tab:red", "-", 1.5),
          "purified network": ("k", "--", 1.2), "linear (logistic)": ("tab:gray", "-", 1.2),
          "linear rule M w*": ("tab:gray", ":", 1.2), "separable cubic (trained)":
          ("tab:olive", "-", 1.2), "oracle cubic t^3": ("tab:green", "--", 1.2),
          "soft-threshold cubic": ("tab:green", "-.", 1.2),
          "cubic kernel": ("tab:purple", "-", 1.2),
          "NTK (m=256)": ("tab:orange", "-", 1.2), "NTK (analytic)": ("tab:orange", ":", 1.2)}


def _robust(model, X, y, eps, p, world, pgd_steps=20):
    if eps == 0:
        return float(np.mean(model.margins(X, y) > 0))
    if p in model.capabilities.exact:
        return float(np.mean(model.worst_case_margin(X, y, eps, p) > 0))
    ok = model.margins(X + attacks.pgd(model, X, y, eps, p, steps=pgd_steps), y) > 0
    ok &= model.margins(X + attacks.dense_direction(world, y, eps, p), y) > 0
    return float(np.mean(ok))


# -- figures -------------------------------------------------------------------

def robustness_panels(curves_by_norm, *, title=None):
    """Robust accuracy against radius, one panel per norm.

    Parameters
    ----------
    curves_by_norm : dict
        norm label -> {"grid": radii, "curves": {family: accuracies}, "note": str}.
    """
    n = len(curves_by_norm)
    fig = Figure(figsize=(5.4 * n, 4.0))
    for i, (norm, data) in enumerate(curves_by_norm.items()):
        ax = fig.add_subplot(1, n, i + 1)
        for name, acc in data["curves"].items():
            color, ls, lw = _STYLE.get(name, (None, "-", 1.2))
            ax.plot(data["grid"], acc, ls, color=color, lw=lw, marker="o", ms=2.5, label=name)
        ax.set_xscale("log")
        ax.set_ylim(-0.02, 1.02)
        ax.axhline(0.9, color="0.85", lw=0.8, zorder=0)
        ax.set_xlabel(f"radius ({norm})")
        ax.set_ylabel("robust accuracy")
        ax.set_title(data.get("note", norm), fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6.5, loc="lower left")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def tau50_scaling(extras, series, *, predicted=None, title=None, ax=None):
    """tau50 against d on log-log axes, with fitted slopes beside the derived ones.

    Parameters
    ----------
    extras : list of dict
        One per seed, each with ``"ds"`` and the arrays named in ``series``.
    series : dict
        label -> (key in the extras, matplotlib format); a label containing
        "derived" is drawn as a reference line without a fit.
    predicted : float or dict, optional
        Derived slope (one for all series, or label -> slope).
    """
    fig = None
    if ax is None:
        fig = Figure(figsize=(5.4, 4.0))
        ax = fig.add_subplot()
    for label, (key, fmt) in series.items():
        ds = np.asarray(extras[0]["ds"], dtype=float)
        vals = np.array([e[key] for e in extras], dtype=float)
        med = np.median(vals, axis=0)
        ok = np.isfinite(med) & (med > 0)
        if "derived" in label:
            ax.plot(ds[ok], med[ok], fmt, color="0.4", lw=1, label=label)
            continue
        slope = np.polyfit(np.log(ds[ok]), np.log(med[ok]), 1)[0] if ok.sum() >= 2 else np.nan
        pred = predicted.get(label) if isinstance(predicted, dict) else predicted
        text = f"{label}: slope {slope:+.2f}" + ("" if pred is None else f" (derived {pred:+.2f})")
        line = ax.plot(ds[ok], med[ok], fmt, ms=4, label=text)[0]
        if vals.shape[0] > 1:
            ax.fill_between(ds, vals.min(0), vals.max(0), color=line.get_color(), alpha=0.15,
                            lw=0)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels collide on short ranges
    ax.set_xlabel("dimension d (fixed k)")
    ax.set_ylabel("tau50")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return fig if fig is not None else ax.figure


def same_radius_bars(results):
    """Robust accuracy at tau* per learner (median and range over seeds) for the lb checks."""
    fig = Figure(figsize=(7.0, 3.8))
    ax = fig.add_subplot()
    r0 = results[0]
    if "poly_rows" in r0.get("extra", {}):
        rows = np.array([r["extra"]["poly_rows"] for r in results], dtype=float)
        ds = rows[0, :, 0]
        for j, (label, color) in enumerate([("purified network (exact)", "k"),
                                            ("best degree-3 polynomial (exact)", "tab:green")]):
            med = np.median(rows[:, :, j + 1], axis=0)
            ax.plot(ds, med, "-o", color=color, label=label)
        ax.axhline(np.median([r["ref_robust"] for r in results]), color="tab:blue", ls="--",
                   label="adversarial network (at its own d)")
        ax.set_xscale("log")
        ax.set_xlabel("dimension d (fixed k)")
        ax.set_ylabel("robust accuracy at tau*")
    else:
        names = [k[:-len("_robust")] for k in r0 if k.endswith("_robust")
                 and not k.startswith(("ref", "max"))]
        keys = ["ref_robust"] + [f"{n}_robust" for n in names]
        big = [None] + [f"{n}_robust_large_d" for n in names]
        x = np.arange(len(keys))
        for off, ks, label, color in [(-0.2, keys, "network's d", "tab:blue"),
                                      (0.2, big, "4x larger d", "tab:orange")]:
            vals = np.array([[r.get(k, np.nan) if k else np.nan for k in ks] for r in results])
            # Column-wise median of the finite values (the reference has no large-d bar).
            med = np.array([np.median(c[np.isfinite(c)]) if np.isfinite(c).any() else np.nan
                            for c in vals.T])
            bars = ax.bar(x + off, np.nan_to_num(med), width=0.4, color=color, label=label)
            ax.bar_label(bars, labels=["" if not np.isfinite(v) else f"{v:.2f}" for v in med],
                         fontsize=6)
        ax.set_xticks(x, ["network"] + names, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("robust accuracy at tau*")
        ax.axhline(0.1, color="0.6", lw=0.8, ls=":")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)
    ax.set_title(f"linf, tau* = {np.median([r['tau_star'] for r in results]):.3g}", fontsize=9)
    fig.tight_layout()
    return fig


def linear_bound_panels(results):
    """Exact robust accuracy of the trained linear model vs tau / scale, with the derived bound.

    ``scale`` is the derived failure radius sqrt(k/d) (l2) or sqrt(k)/d (linf):
    if the theory is right the curves of every d fall on top of each other.
    """
    fig = Figure(figsize=(10.0, 3.8))
    for i, norm in enumerate(("l2", "linf")):
        ax = fig.add_subplot(1, 2, i + 1)
        for row in results[0]["extra"][norm]:
            x = np.asarray(row["grid"]) / row["scale"]
            line = ax.plot(x, row["acc"], "-", lw=1.4, label=f"d={row['d']} exact")[0]
            ax.plot(x, row["bound"], "--", lw=0.9, color=line.get_color())
        ax.set_xscale("log")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("tau / derived scale " + ("sqrt(k/d)" if norm == "l2" else "sqrt(k)/d"))
        ax.set_ylabel("robust accuracy")
        ax.set_title(f"{norm}: trained linear model (solid), bound 3.3(ii) (dashed)", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def ntk_width_panel(results):
    """tau50 of the empirical NTK against width, with the linear and analytic references."""
    fig = Figure(figsize=(5.4, 3.8))
    ax = fig.add_subplot()
    widths = np.asarray(results[0]["extra"]["widths"], dtype=float)
    t = np.array([r["extra"]["tau50"] for r in results])
    ax.plot(widths, np.median(t, 0), "-o", color="tab:orange", label="empirical NTK (frozen gates)")
    if t.shape[0] > 1:
        ax.fill_between(widths, t.min(0), t.max(0), color="tab:orange", alpha=0.15, lw=0)
    ax.axhline(np.median([r["tau50_linear"] for r in results]), color="tab:gray",
               label="logistic regression")
    ax.axhline(np.median([r["tau50_analytic"] for r in results]), color="tab:orange", ls=":",
               label="analytic NTK (m = inf, one-sided gates)")
    ax.set_xscale("log")
    ax.set_ylim(0, None)
    ax.set_xlabel("NTK width m")
    ax.set_ylabel("tau50 (linf, PGD + dense)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


# -- the experiment behind the committed figures ---------------------------------

def _network_pair(world, *, T, T_adv, batch, tau_adv, norm, seed):
    rng = np.random.SeedSequence([seed, 77]).spawn(3)
    net = TwoLayerReLU.for_world(world, seed=rng[0])
    train(net, world, steps=T, lr=0.5, batch_size=batch,
          schedule=ThresholdSchedule(1.0, 0.5, max(1, T // 2)), seed=rng[1])
    adv = net.copy()
    train(adv, world, steps=T_adv, lr=0.5, batch_size=batch, adversarial="fgm", eps=tau_adv,
          norm=norm, seed=rng[2])
    return net, adv


def collect_curves(norm, *, d, k, tau_adv, grid, T=3000, T_adv=1500, batch=1024, n_train=3000,
                   n_test=1000, n_pgd=400, m_ntk=256, seed=0):
    """Robust accuracy over ``grid`` for the networks and every baseline on one world.

    Returns
    -------
    dict
        ``grid``, ``curves`` (family -> list), ``note`` (the regime, for the title).
    """
    p = 2.0 if norm in (2, "2", "l2") else np.inf
    world = SparseCoding(d, k, seed=seed)
    clean, adv = _network_pair(world, T=T, T_adv=T_adv, batch=batch, tau_adv=tau_adv,
                               norm=p, seed=seed)
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


def scaling_figure(scaling, *, title=None):
    """One log-log panel with every series of :func:`collect_scaling`."""
    fig = Figure(figsize=(6.4, 4.4))
    ax = fig.add_subplot()
    for name, s in scaling.items():
        tau50_scaling([{"ds": s["ds"], "tau50": s["tau50"]}], {name: ("tau50", "-o")},
                      predicted=s["derived"], ax=ax)
    ds = sorted({d for s in scaling.values() for d in s["ds"]})
    ax.set_xticks(ds, [str(d) for d in ds], fontsize=7)
    ax.set_title(title or "tau50 vs d at fixed k: fitted slopes and derived ones", fontsize=9)
    fig.tight_layout()
    return fig


def main(outdir="figures", quick=False, only=None):
    """Regenerate ``figures/lb_robust_curves.png`` and ``figures/lb_tau50_scaling.png``.

    ``quick`` shrinks every size (d = 128, 1000 + 500 training steps) for a
    fast smoke run; the committed figures use the default (pilot) sizes.
    ``only`` ("curves" or "scaling") regenerates one of the two.

    Returns
    -------
    list of str
        The paths written.
    """
    os.makedirs(outdir, exist_ok=True)
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
        fig = robustness_panels(curves, title="Robust accuracy: adversarially trained network "
                                              "vs low-complexity baselines (same world)")
        paths.append(os.path.join(outdir, "lb_robust_curves.png"))
        fig.savefig(paths[-1], dpi=130)
    if only in (None, "scaling"):
        fig = scaling_figure(collect_scaling(**scal))
        paths.append(os.path.join(outdir, "lb_tau50_scaling.png"))
        fig.savefig(paths[-1], dpi=130)
    return paths


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Regenerate figures/lb_*.png")
    parser.add_argument("outdir", nargs="?", default="figures")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--only", choices=("curves", "scaling"), help="one figure only")
    args = parser.parse_args()
    for path in main(args.outdir, quick=args.quick, only=args.only):
        print(path)
