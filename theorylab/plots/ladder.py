"""Quantities against a training length: seeds as points, hollow where flagged, medians joined."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

__all__ = ["length_panels"]

_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")


def _series(ax, x, s, color):
    v = np.asarray(s["values"], dtype=float)
    v = v.reshape(-1, x.size) if v.size else np.empty((0, x.size))
    ok = np.asarray(s.get("converged", np.ones_like(v, dtype=bool)), dtype=bool).reshape(v.shape)
    xs = np.broadcast_to(x, v.shape)
    # Converged runs filled, flagged runs hollow: a reader sees which numbers are transients.
    ax.plot(xs[ok], v[ok], "o", color=color, ms=5, alpha=0.8)
    ax.plot(xs[~ok], v[~ok], "o", mfc="none", color=color, ms=5, alpha=0.8)
    med = np.array([np.nanmedian(col) if np.isfinite(col).any() else np.nan for col in v.T]) \
        if v.shape[0] else np.full(x.size, np.nan)
    ax.plot(x, med, "-", color=color, label=s["label"])


def _panel(ax, p):
    x = np.asarray(p["x"], dtype=float)
    ax.set_xscale("log", base=2)
    if p.get("logy"):
        ax.set_yscale("log")
    for s, color in zip(p.get("series", ()), _COLORS):
        _series(ax, x, s, color)
    if p.get("zero_line"):
        ax.axhline(0.0, color="k", lw=0.8)
    if p.get("fit") is not None:
        exponent, prefactor, ci = p["fit"]
        xs = np.geomspace(x.min(), x.max(), 50)
        ci_txt = "" if ci is None else f" [{ci[0]:.2f}, {ci[1]:.2f}]"
        ax.plot(xs, prefactor * xs ** exponent, "--", color="k", lw=1,
                label=f"fit: T^{exponent:.2f}{ci_txt}")
    ax.set_xticks(x)
    ax.set_xticklabels([f"{int(v)}" for v in x])
    ax.set_xlabel(p.get("xlabel", "steps"))
    ax.set_ylabel(p.get("ylabel", ""))
    ax.set_title(p.get("title", ""), fontsize=9)
    if p.get("note"):
        ax.text(0.02, 0.02, p["note"], transform=ax.transAxes, fontsize=7, va="bottom")
    ax.legend(fontsize=7, loc="best")


def length_panels(grid, *, title=None):
    """A grid of panels, each some quantities against a training length (log2 axis).

    Parameters
    ----------
    grid : list of list of dict
        Rows of panels.  Each panel: ``x`` (the lengths), ``series``: a list of
        ``{"label", "values", "converged"}`` with ``values`` a (seeds, len(x)) table
        (NaN where not computed) and ``converged`` a same-shaped boolean table
        (default all True; False points are drawn hollow); optional ``title``,
        ``xlabel``, ``ylabel``, ``logy``, ``zero_line`` (a line at 0, for margins),
        ``fit`` (exponent, prefactor, ci or None: prefactor x^exponent, dashed), ``note``.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    n_rows = max(1, len(grid))
    n_cols = max([1] + [len(r) for r in grid])
    fig = Figure(figsize=(4.8 * n_cols, 3.6 * n_rows))
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for i, row in enumerate(grid):
        for j in range(n_cols):
            if j < len(row):
                _panel(axes[i][j], row[j])
            else:
                axes[i][j].set_visible(False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
