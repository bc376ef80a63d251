"""Feature Purification figures.  Every function returns a matplotlib Figure."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

__all__ = ["robustness_curves", "weight_heatmaps", "dense_ratio_histograms",
           "purification_scatter", "trend"]

_STYLE = {"clean": ("tab:red", "-"), "adv": ("tab:blue", "-"), "oracle": ("k", "--"),
          "linear": ("tab:gray", ":"), "clean (dense attack)": ("tab:orange", "-.")}
_LABEL = {"clean": "clean training", "adv": "FGM adversarial training",
          "oracle": "purified oracle", "linear": "linear rule M w* (exact)"}


def robustness_curves(grid, curves, *, norm="l2", ax=None, title=None, band=None, lower=None):
    """Robust accuracy vs radius, one line per model.

    Parameters
    ----------
    grid : sequence of float
        Radii.
    curves : dict
        name -> accuracies (1-d), or -> 2-d array (seeds x radii) drawn as the
        median with a min-max band.  These are the attack side (upper).
    norm : str
        Axis label of the threat norm.
    lower : dict, optional
        name -> certified accuracies (same shapes): drawn dashed, with the band
        between the certified and the attack curve hatched (what neither side settles).
    """
    fig = None
    if ax is None:
        fig = Figure(figsize=(5.2, 3.6))
        ax = fig.add_subplot()
    for name, acc in curves.items():
        acc = np.atleast_2d(np.asarray(acc, dtype=float))
        color, ls = _STYLE.get(name, (None, "-"))
        med = np.median(acc, axis=0)
        line, = ax.plot(grid, med, ls, color=color, marker="o", ms=3,
                        label=_LABEL.get(name, name))
        color = line.get_color()
        if acc.shape[0] > 1:
            ax.fill_between(grid, acc.min(0), acc.max(0), color=color, alpha=0.15, lw=0)
        if lower and name in lower:
            low = np.median(np.atleast_2d(np.asarray(lower[name], dtype=float)), axis=0)
            ax.plot(grid, low, "--", color=color, lw=1.0,
                    label=f"{_LABEL.get(name, name)}, certified")
            ax.fill_between(grid, low, med, facecolor="none", edgecolor=color, hatch="///",
                            lw=0, alpha=0.5)
    ax.set_xscale("log")
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    # Labels on 1-2-5 decades only: log minor labels (2e-1, 3e-1, ...) collide.
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(f"radius ({norm})")
    ax.set_ylabel("robust accuracy")
    ax.axhline(0.5, color="0.8", lw=0.8, zorder=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    if title:
        ax.set_title(title, fontsize=9)
    return fig if fig is not None else ax.figure


def _sorted_coefficients(C):
    # Rows sorted by main atom, columns reordered so each row's main atom leads: a purified
    # network is a bright diagonal, dense mixtures are the haze around it.
    A = np.abs(C)
    j = A.argmax(axis=1)
    order = np.argsort(j, kind="stable")
    cols = list(dict.fromkeys(j[order].tolist()))
    cols += [c for c in range(C.shape[1]) if c not in set(cols)]
    A = A[order][:, cols]
    return A / A.max(axis=1, keepdims=True)


def weight_heatmaps(C_before, C_after, *, titles=("clean training",
                                                  "after FGM adversarial training"), fig=None):
    """|<w_i, M_j>| / max_j for each neuron, before and after adversarial training.

    ``fig`` may be a Figure or SubFigure to draw into (default: a new Figure).
    """
    fig = Figure(figsize=(9, 4)) if fig is None else fig
    axes = fig.subplots(1, 2)
    for ax, C, title in zip(axes, (C_before, C_after), titles):
        im = ax.imshow(_sorted_coefficients(np.asarray(C)), aspect="auto", cmap="magma",
                       vmin=0, vmax=0.5, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("dictionary atom (main atoms first)")
        ax.set_ylabel("neuron (sorted by main atom)")
    fig.colorbar(im, ax=axes, shrink=0.8, label="|coefficient| / main (clipped at 0.5)")
    return fig


def dense_ratio_histograms(before, after, *, ax=None):
    """Histograms of the dense ratio ||v_i|| / |a_i| before and after adversarial training."""
    fig = None
    if ax is None:
        fig = Figure(figsize=(5, 3.4))
        ax = fig.add_subplot()
    before, after = np.asarray(before), np.asarray(after)
    hi = np.quantile(np.concatenate([before, after]), 0.99)
    bins = np.linspace(0, hi, 40)
    ax.hist(before, bins=bins, color="tab:red", alpha=0.6, label="clean")
    ax.hist(after, bins=bins, color="tab:blue", alpha=0.6, label="adversarial")
    ax.set_xlabel("dense ratio ||v_i|| / |a_i|")
    ax.set_ylabel("neurons")
    ax.legend(fontsize=8)
    return fig if fig is not None else ax.figure


def purification_scatter(fit, resid):
    """||beta_i w'_i|| against ||v_i|| per neuron; the principle holds below the diagonal."""
    fig = Figure(figsize=(4.2, 4))
    ax = fig.add_subplot()
    fit, resid = np.asarray(fit), np.asarray(resid)
    ax.scatter(fit, resid, s=6, alpha=0.6)
    hi = max(fit.max(), resid.max()) * 1.05
    ax.plot([0, hi], [0, hi], "k--", lw=0.8, label="||beta w'|| = ||v||")
    frac = float(np.mean(fit > resid))
    ax.set_title(f"principle holds for {frac:.0%} of neurons", fontsize=9)
    ax.set_xlabel("||beta_i w'_i|| (kept feature)")
    ax.set_ylabel("||v_i|| (removed part)")
    ax.legend(fontsize=8)
    return fig


def trend(x, ys, *, xlabel, ylabel, logx=True, logy=False, title=None):
    """Lines of y against x (e.g. a measurement against d), one per entry of ``ys``."""
    fig = Figure(figsize=(4.6, 3.4))
    ax = fig.add_subplot()
    for name, y in ys.items():
        y = np.atleast_2d(np.asarray(y, dtype=float))
        ax.plot(x, np.median(y, 0), marker="o", label=name)
        if y.shape[0] > 1:
            ax.fill_between(x, y.min(0), y.max(0), alpha=0.15, lw=0)
    if logx:
        ax.set_xscale("log", base=2)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    return fig
