"""Phase diagrams of a sweep: robust accuracy over (d, radius), and tau50 against d.

The data are the ``done`` cells of a sweep results file whose metrics hold, per
model family f, ``robust_acc_f`` (a list over ``radii``) and ``tau50_f`` (the
``pipeline`` experiment of :mod:`theorylab.sweep.experiments` writes them).
Cells are grouped by the parameters that vary in the sweep other than ``d``
(e.g. ``norm`` or ``k``); each group gets a row of heat maps and a tau50 panel.

Every function returns a matplotlib Figure (Agg); nothing calls ``show``.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator

__all__ = ["group_records", "tau50_fits", "robust_accuracy_heatmaps",
           "tau50_figure", "theory_slopes", "phase_figures", "FAMILY_STYLE"]

# family -> (label, colour, line style)
FAMILY_STYLE = {"clean": ("clean network", "tab:red", "-"),
                "adversarial": ("adversarial network (FGM)", "tab:blue", "-"),
                "oracle": ("purified oracle", "k", "--"),
                "linear": ("linear rule M w*", "tab:gray", ":")}


def _families(records, families):
    found = [f for f in FAMILY_STYLE if any(f"tau50_{f}" in r["metrics"] for r in records)]
    extra = sorted({k[len("tau50_"):] for r in records for k in r["metrics"]
                    if k.startswith("tau50_")} - set(found))
    found += extra
    if families is not None:
        missing = sorted(set(families) - set(found))
        if missing:
            raise ValueError(f"families: no tau50 for {missing} in the results; found {found}")
        found = list(families)
    if not found:
        raise ValueError("results: no cell has tau50_<family> metrics (phase plots need the "
                         "'pipeline' experiment)")
    return found


def group_records(records, x="d"):
    """``{label: records}`` by the values of the swept parameters other than ``x``.

    A label reads like ``"norm=inf, k=3"`` ("all" when only ``x`` varies).

    Raises
    ------
    ValueError
        If no record has the parameter ``x``.
    """
    if not records or any(x not in r["params"] for r in records):
        raise ValueError(f"x: every cell needs the parameter {x!r}")
    names = sorted({k for r in records for k in r["params"]} - {x})
    varying = [n for n in names
               if len({json.dumps(r["params"].get(n), sort_keys=True) for r in records}) > 1]
    groups = {}
    for r in records:
        label = ", ".join(f"{n}={r['params'].get(n)}" for n in varying) or "all"
        groups.setdefault(label, []).append(r)
    return dict(sorted(groups.items()))


def _fit(xs, ys):
    # Least squares of log y on log x over finite positive points: slope, intercept, stderr.
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    ok = np.isfinite(ys) & (ys > 0)
    lx, ly = np.log(xs[ok]), np.log(ys[ok])
    if np.unique(lx).size < 2:
        return float("nan"), float("nan"), float("nan")
    A = np.vstack([lx, np.ones_like(lx)]).T
    coef, *_ = np.linalg.lstsq(A, ly, rcond=None)
    n = lx.size
    if n > 2:
        resid = ly - A @ coef
        se = math.sqrt(float(resid @ resid) / (n - 2) / float(((lx - lx.mean()) ** 2).sum()))
    else:
        se = float("nan")
    return float(coef[0]), float(coef[1]), se


def tau50_fits(records, *, x="d", families=None):
    """Fitted exponent of tau50 in ``x`` (log-log least squares over every replicate).

    Returns
    -------
    dict
        ``{group label: {family: {"slope", "intercept", "stderr", "n"}}}``;
        cells where tau50 is 0 or infinite (beyond the radius grid) are left out.
    """
    fams = _families(records, families)
    out = {}
    for label, recs in group_records(records, x).items():
        out[label] = {}
        for f in fams:
            pts = [(r["params"][x], r["metrics"].get(f"tau50_{f}")) for r in recs
                   if isinstance(r["metrics"].get(f"tau50_{f}"), (int, float))]
            xs = [p[0] for p in pts]
            ys = [p[1] for p in pts]
            slope, icpt, se = _fit(xs, ys) if pts else (float("nan"),) * 3
            n = int(np.sum(np.isfinite(ys) & (np.asarray(ys, float) > 0))) if pts else 0
            out[label][f] = {"slope": slope, "intercept": icpt, "stderr": se, "n": n}
    return out


def _label(f):
    return FAMILY_STYLE.get(f, (f, None, "-"))[0]


def robust_accuracy_heatmaps(records, *, x="d", families=None, title=None):
    """Robust accuracy over (``x``, radius), one row per group and one column per family.

    Colour: mean over replicates.  White dots: tau50 (geometric mean over
    replicates), where robust accuracy falls through 1/2.
    """
    fams = _families(records, families)
    groups = group_records(records, x)
    fig = Figure(figsize=(3.2 * len(fams) + 0.8, 2.7 * len(groups) + 0.4))
    axes = fig.subplots(len(groups), len(fams), squeeze=False)
    mesh = None
    for i, (label, recs) in enumerate(groups.items()):
        xs = sorted({r["params"][x] for r in recs})
        radii = recs[0]["metrics"].get("radii")
        if radii is None or any(r["metrics"].get("radii") != radii for r in recs):
            raise ValueError(f"group {label!r}: cells need the same 'radii' metric")
        radii = np.asarray(radii, float)
        # Cell edges halfway (geometrically) between radii.
        mid = np.sqrt(radii[1:] * radii[:-1])
        edges = np.concatenate([[radii[0] ** 2 / mid[0] if mid.size else radii[0] / 2], mid,
                                [radii[-1] ** 2 / mid[-1] if mid.size else radii[0] * 2]])
        for j, f in enumerate(fams):
            ax = axes[i, j]
            acc = np.full((len(xs), radii.size), np.nan)
            taus = []
            for a, xv in enumerate(xs):
                rows = [r["metrics"].get(f"robust_acc_{f}") for r in recs
                        if r["params"][x] == xv]
                rows = [row for row in rows if row is not None]
                if rows:
                    acc[a] = np.mean(np.asarray(rows, float), axis=0)
                t = [r["metrics"].get(f"tau50_{f}") for r in recs if r["params"][x] == xv]
                t = [v for v in t if isinstance(v, (int, float)) and 0 < v < math.inf]
                taus.append(float(np.exp(np.mean(np.log(t)))) if t else np.nan)
            mesh = ax.pcolormesh(edges, np.arange(len(xs) + 1), acc, cmap="viridis",
                                 vmin=0.0, vmax=1.0, shading="flat")
            ax.plot(taus, np.arange(len(xs)) + 0.5, "o", color="w", mec="k", mew=0.5, ms=4)
            ax.set_xscale("log")
            ax.set_yticks(np.arange(len(xs)) + 0.5)
            ax.set_yticklabels([str(v) for v in xs], fontsize=7)
            ax.tick_params(axis="x", labelsize=7)
            if i == len(groups) - 1:
                ax.set_xlabel("radius", fontsize=8)
            if j == 0:
                ax.set_ylabel(f"{x}\n({label})" if label != "all" else x, fontsize=8)
            if i == 0:
                ax.set_title(_label(f), fontsize=9)
    top = 1.0 - 0.75 / fig.get_figheight()  # room for the title above the panel titles
    fig.subplots_adjust(left=0.1, right=0.88, bottom=0.12, top=top, wspace=0.25, hspace=0.35)
    cax = fig.add_axes([0.9, 0.15, 0.015, top - 0.18])
    fig.colorbar(mesh, cax=cax).set_label("robust accuracy (mean over seeds)", fontsize=8)
    fig.suptitle((title + ": " if title else "") + "robust accuracy over (d, radius); "
                 "dots: tau50 (geometric mean over seeds)", fontsize=10)
    return fig


def theory_slopes(norm):
    """Exponents of tau50 in d at fixed k derived in the spec (section 3.3), by norm.

    The linear rule fails at sqrt(k/d) in l2 and sqrt(k)/d in linf; the
    purified network at a radius that does not depend on d.
    """
    if str(norm) in ("2", "2.0", "l2"):
        return {"linear": -0.5, "oracle": 0.0}
    if str(norm) in ("inf", "linf"):
        return {"linear": -1.0, "oracle": 0.0}
    return {}


def tau50_figure(records, *, x="d", families=None, title=None, predicted=None):
    """tau50 against ``x`` on log-log axes, one panel per group, fitted exponents in the legend.

    Parameters
    ----------
    predicted : dict, optional
        ``{family: slope}`` derived by the theory, shown beside the fit; by
        default :func:`theory_slopes` of the cells' ``norm`` when ``x`` is ``d``.
    """
    fams = _families(records, families)
    groups = group_records(records, x)
    fits = tau50_fits(records, x=x, families=fams)
    fig = Figure(figsize=(5.0 * len(groups), 4.0))
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    user_predicted = predicted
    for ax, (label, recs) in zip(axes, groups.items()):
        xs = sorted({r["params"][x] for r in recs})
        predicted = user_predicted
        if predicted is None and x == "d":
            predicted = theory_slopes(recs[0]["params"].get("norm", "inf"))
        for f in fams:
            name, color, ls = FAMILY_STYLE.get(f, (f, None, "-"))
            pts = [(r["params"][x], r["metrics"].get(f"tau50_{f}")) for r in recs]
            pts = [(a, b) for a, b in pts if isinstance(b, (int, float)) and 0 < b < math.inf]
            if not pts:
                continue
            fit = fits[label][f]
            text = f"{name}: slope {fit['slope']:+.2f}"
            if math.isfinite(fit["stderr"]):
                text += f" ± {fit['stderr']:.2f}"
            if predicted and f in predicted:
                text += f" (theory {predicted[f]:+.2f})"
            px, py = zip(*pts)
            line = ax.plot(px, py, "o", ms=3, alpha=0.5, color=color)[0]
            gm = [np.exp(np.mean(np.log([b for a, b in pts if a == xv]))) for xv in xs
                  if any(a == xv for a, _ in pts)]
            gx = [xv for xv in xs if any(a == xv for a, _ in pts)]
            ax.plot(gx, gm, ls, color=line.get_color(), lw=1.5, label=text)
            if math.isfinite(fit["slope"]):  # the fit itself, thin
                xx = np.array([min(gx), max(gx)], float)
                ax.plot(xx, np.exp(fit["intercept"]) * xx ** fit["slope"], "-",
                        color=line.get_color(), lw=0.6, alpha=0.6)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(xs)
        ax.set_xticklabels([str(v) for v in xs])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(x)
        ax.set_ylabel("tau50 (robust accuracy 1/2)")
        ax.set_title(label if label != "all" else "", fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.suptitle(title or "tau50 against d: points are seeds, lines their geometric mean "
                          "and the log-log fit", fontsize=9)
    fig.tight_layout()
    return fig


def phase_figures(records, *, out_dir="figures", name=None, dpi=110):
    """Write ``phase_<name>_heatmap.png`` and ``phase_<name>_tau50.png``; return their paths.

    ``records``: the done cells of a sweep (:func:`theorylab.sweep.phase_records`).
    """
    if not records:
        raise ValueError("records: no done cells to draw")
    name = name or records[0]["sweep"]
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for kind, fig in (("heatmap", robust_accuracy_heatmaps(records, title=name)),
                      ("tau50", tau50_figure(records, title=f"{name}: tau50 against d"))):
        path = os.path.join(out_dir, f"phase_{name}_{kind}.png")
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
        paths.append(path)
    return paths
