"""Figures of the Li & Li robust / non-robust feature checks.  Every function returns a Figure.

``theorylab plot li-li`` regenerates ``ll_feature_learning.png``,
``ll_robustness.png``, ``ll_threshold_scaling.png`` and ``ll_race.png`` from the
quick regime of the ll checks (seeds 0, 1, 2; :func:`proofs_check.figures.regenerate`).
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

__all__ = ["feature_learning", "robustness_vs_eps", "threshold_scaling", "race"]


def _log_ticks(ax, values, labels=None):
    # Major ticks at the data's x values, no minor labels (they overlap on short decades).
    from matplotlib.ticker import NullFormatter

    ax.set_xticks(list(values))
    ax.set_xticklabels(labels if labels is not None else [f"{v:g}" for v in values])
    ax.xaxis.set_minor_formatter(NullFormatter())


def _band(ax, x, ys, color, ls="-", label=None, marker=None):
    # Median over seeds with a min-max band.
    Y = np.atleast_2d(np.asarray(ys, dtype=float))
    ax.plot(x, np.median(Y, axis=0), ls, color=color, label=label, marker=marker, ms=3)
    if Y.shape[0] > 1:
        ax.fill_between(x, Y.min(0), Y.max(0), color=color, alpha=0.15, lw=0)


def feature_learning(runs, *, offsets=None, title=None):
    """Gamma_u(t) and Gamma_v(t) on a log axis, one colour per training run.

    Parameters
    ----------
    runs : dict
        name -> list over seeds of (steps, gamma_u, gamma_v) sequences.
    offsets : dict, optional
        name -> step offset (e.g. a warm-started run drawn after the run it
        started from).
    """
    fig = Figure(figsize=(6.0, 4.0))
    ax = fig.add_subplot()
    offsets = offsets or {}
    palette = ["tab:red", "tab:blue", "tab:gray", "tab:green"]
    floor = 1e-3  # correlations can dip below 0; the log axis shows max(Gamma, 1e-3)
    for i, (name, per_seed) in enumerate(runs.items()):
        color = palette[i % len(palette)]
        steps = np.asarray(per_seed[0][0]) + offsets.get(name, 0)
        gu = [np.maximum(np.asarray(r[1]), floor) for r in per_seed]
        gv = [np.maximum(np.asarray(r[2]), floor) for r in per_seed]
        _band(ax, steps, gu, color, "-", f"{name}: $\\Gamma_u$ (robust)")
        _band(ax, steps, gv, color, "--", f"{name}: $\\Gamma_v$ (non-robust)")
    for name, off in offsets.items():
        ax.axvline(off, color="0.6", lw=0.8, ls=":")
    ax.set_yscale("log")
    ax.set_xlabel("GD step")
    ax.set_ylabel(r"$\max_r \langle w_{k,r}, \cdot\rangle$ (mean over k)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=6.5, loc="lower right")
    ax.set_title(title or "feature learning (median and min-max over seeds)", fontsize=9)
    fig.tight_layout()
    return fig


def robustness_vs_eps(eps, curves, *, threshold=None, eps_train=None, title=None):
    """Robust accuracy against the l_inf radius, one line per model / attack.

    Parameters
    ----------
    eps : sequence of float
    curves : dict
        name -> accuracies (1-d) or a list over seeds (median and min-max band).
    threshold : float, optional
        The erasure threshold beta / ||v||_1 (vertical line).
    eps_train : float, optional
        The adversarial training radius (vertical line).
    """
    fig = Figure(figsize=(5.4, 3.7))
    ax = fig.add_subplot()
    for i, (name, acc) in enumerate(curves.items()):
        color = ("tab:blue" if name.startswith("adversarial") else
                 "tab:red" if name.startswith("standard") else f"C{i}")
        ls = "--" if "v_y" in name else "-"
        _band(ax, eps, acc, color, ls, name, marker="o")
    if threshold is not None:
        ax.axvline(threshold, color="k", lw=0.8, ls=":", label=r"$\beta/\|v\|_1$")
    if eps_train is not None:
        ax.axvline(eps_train, color="tab:blue", lw=0.8, ls="-.", label="training radius")
    ax.axhline(0.25, color="0.7", lw=0.8, zorder=0)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(r"radius ($\ell_\infty$)")
    ax.set_ylabel("accuracy under attack")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    ax.set_title(title or "robust accuracy vs radius", fontsize=9)
    fig.tight_layout()
    return fig


def threshold_scaling(ds, thresholds, *, beta=1.0, slopes=None):
    """Measured erasure threshold against d (log-log) with the prediction beta / sqrt(d).

    Parameters
    ----------
    ds : sequence of int
    thresholds : list over seeds of sequences (one radius per d)
    """
    fig = Figure(figsize=(5.0, 3.7))
    ax = fig.add_subplot()
    ds = np.asarray(ds, dtype=float)
    T = np.atleast_2d(np.asarray(thresholds, dtype=float))
    for i, row in enumerate(T):
        ax.plot(ds, row, "o", color="tab:red", ms=4, alpha=0.6,
                label="measured (one dot per seed)" if i == 0 else None)
    dd = np.geomspace(ds.min() / 1.2, ds.max() * 1.2, 50)
    ax.plot(dd, beta / np.sqrt(dd), "k--", lw=1, label=r"$\beta/\sqrt{d}$ (prediction)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    _log_ticks(ax, ds.astype(int))
    ax.set_xlabel("patch dimension d")
    ax.set_ylabel(r"$\varepsilon^*$ (50% accuracy under $-\varepsilon\,\mathrm{sign}(v_y)$)")
    txt = "" if not slopes else ("fitted slopes: " + ", ".join(f"{s:.3f}" for s in slopes))
    ax.set_title("erasure threshold of the standard network\n" + txt, fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def race(ratios, advantages, v_wins=None):
    """Which feature standard training learned against n_nonrobust beta^q / alpha^q.

    Parameters
    ----------
    ratios : sequence of float
    advantages : list over seeds of (Gamma_v - Gamma_u) / (|Gamma_u| + |Gamma_v|)
    v_wins : list over seeds of the share of classes won by v, optional
    """
    fig = Figure(figsize=(5.0, 3.5))
    ax = fig.add_subplot()
    _band(ax, ratios, advantages, "tab:purple", "-", "mean advantage of v", marker="o")
    if v_wins is not None:
        W = 2 * np.asarray(v_wins, dtype=float) - 1  # share of classes, mapped to [-1, 1]
        _band(ax, ratios, W, "tab:green", "--", "2 x (share of classes won by v) - 1",
              marker="s")
    ax.axvline(1.0, color="k", lw=0.8, ls=":", label="ratio 1 (prediction)")
    ax.axhline(0.0, color="0.7", lw=0.8)
    ax.set_xscale("log")
    _log_ticks(ax, ratios, [f"{r:.2g}" if r >= 0.99 else f"1/{1 / r:.2g}" for r in ratios])
    ax.set_ylim(-1.05, 1.05)
    ax.set_xlabel(r"race ratio $n_{nr}\,\beta^q / \alpha^q$")
    ax.set_ylabel("v learned (+1) vs u learned (-1)")
    ax.set_title("standard training: u wins below ratio 1, v above", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
