"""The committed scaling figures: ``figures/scaling_<quantity>.png``, one panel per norm."""

from __future__ import annotations

import os

from theorylab.plots.scaling import scaling_panels

from .fits import QUANTITIES

__all__ = ["quantity_figure", "write_figures"]


def _panel(qf):
    fit = None if qf.fit is None else (qf.fit.exponent, qf.fit.prefactor, qf.fit.ci)
    note = []
    if qf.excluded:
        note.append(f"{len(qf.excluded)} value(s) not fittable (shaded d)")
    if qf.below_grid:
        note.append(f"{qf.below_grid} below the first radius")
    if qf.fit is None:
        note.append(f"no fit: {qf.why_not}")
    return {"title": f"{qf.norm}: k = {', '.join(_ks(qf))}", "d": qf.d, "values": qf.values,
            "fit": fit, "derived": [(der.name, along) for der, along, _, _ in qf.comparisons],
            "excluded": qf.excluded, "note": "; ".join(note)}


def _ks(qf):
    return [str(qf.k_of(d)) for d in sorted(set(qf.d.tolist()))] or ["-"]


def quantity_figure(fits, quantity):
    """The Figure of one quantity (its panels: every norm fitted)."""
    panels = [_panel(qf) for (name, _), qf in fits.items() if name == quantity.name]
    return scaling_panels(panels, ylabel=quantity.name,
                          title=f"{quantity.label} along k = round(c d^0.4); fit over seeds "
                                "(95% bootstrap CI), derived slopes dashed")


def write_figures(fits, out_dir, dpi=110):
    """Save ``scaling_<quantity>.png`` for every quantity; return the paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for q in QUANTITIES:
        if not any(name == q.name for name, _ in fits):
            continue
        path = os.path.join(out_dir, f"scaling_{q.name}.png")
        quantity_figure(fits, q).savefig(path, dpi=dpi, bbox_inches="tight")
        paths.append(path)
    return paths
