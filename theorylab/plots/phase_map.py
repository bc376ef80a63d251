"""Phase maps of a claim over (d, k): the verdict of each cell, and a criterion's margin.

Each panel is one training length; a cell is a rectangle at (d, k) with d on a
log axis.  Cells that the sweep has not computed are drawn hatched and labelled
"not computed", never coloured as a verdict.  Curves k = c d^gamma (the
spec's derived boundaries, e.g. d^(1/3) and d^(1/2)) are drawn on top.

Both functions take plain data (no check objects) and return a Figure.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

__all__ = ["verdict_map", "margin_map", "VERDICT_COLOURS"]

VERDICT_COLOURS = {"PASS": "#4daf4a", "FAIL": "#e41a1c", "INCONCLUSIVE": "#ff9f1c",
                   "ERROR": "#984ea3"}
_MISSING = dict(facecolor="white", edgecolor="0.7", hatch="///", lw=0.5)
_HALF = 2 ** 0.42  # a cell spans d / _HALF .. d * _HALF (grids of powers of two)


def _frame(ax, cells, boundaries):
    ds = sorted({c[0] for c in cells})
    ks = [c[1] for c in cells]
    ax.set_xscale("log", base=2)
    lo, hi = min(ds) / 2 ** 0.6, max(ds) * 2 ** 0.6
    ax.set_xlim(lo, hi)
    ax.set_ylim(min(ks) - 0.7, max(ks) + 0.7)
    ax.set_xticks(ds)
    ax.set_xticklabels([str(d) for d in ds])
    ax.minorticks_off()
    ax.set_xlabel("d")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    xx = np.geomspace(lo, hi, 100)
    for (label, gamma), style in zip(boundaries, ("--", ":", "-.")):
        ax.plot(xx, xx ** gamma, style, color="k", lw=1.2, label=f"k = {label}")


def _rect(ax, d, k, **kw):
    ax.add_patch(Rectangle((d / _HALF, k - 0.45), d * _HALF - d / _HALF, 0.9, **kw))


def _legend(ax, handles):
    ax.legend(handles=handles + ax.get_legend_handles_labels()[0], fontsize=7,
              loc="upper left", framealpha=0.9)




def _draw(panels, width, draw_cell, handles, boundaries):
    # One panel per entry of ``panels``; draw_cell(ax, *cell) fills each cell.
    if not panels or not any(panels.values()):
        raise ValueError("panels: no cells to draw")
    fig = Figure(figsize=(width * len(panels), 5.2))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, cells) in zip(axes, panels.items()):
        if not cells:
            ax.set_axis_off()
            continue
        _frame(ax, cells, boundaries)
        for cell in cells:
            draw_cell(ax, *cell)
        ax.set_title(name, fontsize=9)
        ax.set_ylabel("k")
        _legend(ax, handles + [Patch(label="not computed", **_MISSING)])
    return fig


def verdict_map(panels, *, title="", boundaries=(), note=""):
    """The verdict of each (d, k) cell, one panel per training length.

    Parameters
    ----------
    panels : dict
        ``{panel title: [(d, k, verdict, n_done, n_expected), ...]}``; verdict
        one of PASS, FAIL, INCONCLUSIVE, ERROR, or anything else for a cell
        not computed (drawn hatched).  ``n_done < n_expected`` is written in
        the cell ("2/3": seeds done of seeds planned).
    boundaries : sequence of (label, gamma)
        Curves k = d^gamma.
    note : str
        A line under the title (e.g. that the map is partial).

    Returns
    -------
    matplotlib.figure.Figure
    """
    def cell(ax, d, k, verdict, n_done, n_exp):
        colour = VERDICT_COLOURS.get(verdict)
        if colour is None or n_done == 0:
            _rect(ax, d, k, **_MISSING)
            return
        _rect(ax, d, k, facecolor=colour, edgecolor="w", lw=0.5)
        if n_done < n_exp:
            ax.text(d, k, f"{n_done}/{n_exp}", ha="center", va="center", fontsize=5.5)

    handles = [Patch(color=c, label=v.lower()) for v, c in VERDICT_COLOURS.items()]
    fig = _draw(panels, 4.6, cell, handles, boundaries)
    fig.suptitle(title + ("\n" + note if note else ""), fontsize=10)
    fig.tight_layout()
    return fig


def margin_map(panels, *, criterion, title="", boundaries=(), note=""):
    """A criterion's margin (positive: holds) on each (d, k) cell, one panel per length.

    Parameters
    ----------
    panels : dict
        ``{panel title: [(d, k, margin), ...]}``; margin NaN (or None) for a
        cell not computed, drawn hatched.  Colour: diverging, white at 0,
        saturated at the 95th percentile of |margin|.
    criterion : str
        The criterion shown (colour-bar label).
    title, boundaries, note
        As in :func:`verdict_map`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    vals = [m for cells in panels.values() for _, _, m in cells
            if m is not None and math.isfinite(m)]
    span = float(np.quantile(np.abs(vals), 0.95)) if vals else 1.0
    span = span if span > 0 else 1.0
    norm = TwoSlopeNorm(vmin=-span, vcenter=0.0, vmax=span)
    cmap = colormaps["RdBu"]

    def cell(ax, d, k, m):
        if m is None or not math.isfinite(m):
            _rect(ax, d, k, **_MISSING)
            return
        shade = norm(np.clip(m, -span, span))
        _rect(ax, d, k, facecolor=cmap(shade), edgecolor="w", lw=0.5)
        ax.text(d, k, f"{m:+.2g}", ha="center", va="center", fontsize=5,
                color="w" if abs(shade - 0.5) > 0.3 else "k")

    fig = _draw(panels, 4.9, cell, [], boundaries)
    fig.suptitle(title + ("\n" + note if note else ""), fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.93, 1))
    cax = fig.add_axes([0.94, 0.15, 0.012, 0.7])
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), cax=cax).set_label(
        f"margin of {criterion} (median over seeds; > 0 holds)", fontsize=8)
    return fig
