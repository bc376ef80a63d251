"""Log-log figures of a quantity along a scaling path: seeds as points, fit and derived slopes."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

__all__ = ["scaling_panels"]

_DERIVED_STYLES = ("--", ":", "-.")


def _panel(ax, p):
    d = np.asarray(p.get("d", ()), dtype=float)
    v = np.asarray(p.get("values", ()), dtype=float)
    ax.set_xscale("log", base=2)
    ax.set_title(p.get("title", ""), fontsize=9)
    ax.set_xlabel("d")
    if d.size:
        ax.set_yscale("log")
        ax.plot(d, v, "o", color="tab:blue", alpha=0.7, ms=5, label="seeds")
    for x, y in p.get("excluded", ()):  # values a log-log fit cannot take, on the axis
        ax.axvline(x, color="tab:red", alpha=0.15, lw=6)
    if p.get("fit") is not None and d.size:
        exponent, prefactor, ci = p["fit"]
        xs = np.geomspace(d.min(), d.max(), 50)
        ci_txt = "" if ci is None else f" [{ci[0]:.2f}, {ci[1]:.2f}]"
        ax.plot(xs, prefactor * xs ** exponent, "-", color="tab:blue",
                label=f"fit: d^{exponent:.2f}{ci_txt}")
        # Derived slopes drawn through the fit at the middle d: the spec fixes exponents,
        # not constants, so only the slope is compared.
        mid = float(np.exp(np.log(d).mean()))
        at_mid = prefactor * mid ** exponent
        for (label, slope), ls in zip(p.get("derived", ()), _DERIVED_STYLES):
            ax.plot(xs, at_mid * (xs / mid) ** slope, ls, color="tab:orange",
                    label=f"{label}: d^{slope:.2f}")
    if p.get("note"):
        ax.text(0.02, 0.02, p["note"], transform=ax.transAxes, fontsize=7, va="bottom")
    if d.size:
        ax.set_xticks(sorted(set(d.tolist())))
        ax.set_xticklabels([f"{int(x)}" for x in sorted(set(d.tolist()))])
        ax.legend(fontsize=7, loc="best")


def scaling_panels(panels, *, ylabel, title=None):
    """One log-log panel per path (e.g. l2 and linf) of a quantity against d.

    Parameters
    ----------
    panels : list of dict
        Each: ``title``; ``d``, ``values`` (one point per seed and d); ``fit``:
        (exponent, prefactor, ci or None) or None; ``derived``: [(label, exponent),
        ...] drawn as slopes through the fit at the geometric-mean d; ``excluded``:
        [(d, value), ...] shaded (values a log-log fit cannot take); ``note``.
    ylabel : str
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig = Figure(figsize=(4.6 * max(1, len(panels)), 3.8))
    axes = fig.subplots(1, max(1, len(panels)), squeeze=False)[0]
    for ax, p in zip(axes, panels):
        _panel(ax, p)
    axes[0].set_ylabel(ylabel)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
