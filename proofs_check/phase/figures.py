"""The committed phase-map figures of each claim, drawn from the judged points.

Per claim two figures, one panel per training length on the map (T and 3T):
``phase_<claim>_verdict.png`` (the check's verdict over the seeds of each (d, k)
cell) and ``phase_<claim>_margin.png`` (the median margin of the claim's main
criterion, :data:`~proofs_check.phase.regions.MAIN`), with the spec's derived
boundaries drawn on both.  Cells not computed are hatched, and a partial map
says so in its title.
"""

from __future__ import annotations

import os

from theorylab.plots.phase_map import margin_map, verdict_map

from .regions import MISSING, main_criterion

__all__ = ["BOUNDARIES", "MAP_T", "claim_figures", "write_figures", "t_label"]

# k ~ d^(1/3) (l2 clean / purified separation) and k ~ d^(1/2) (small dense mixture),
# spec feature_purification.md 3.3(iv); Li & Li has no derived boundary in s, the grid
# stops at sqrt(d).
BOUNDARIES = {"fp": (("d^(1/3)", 1 / 3), ("d^(1/2)", 1 / 2)), "ll": (("d^(1/2)", 1 / 2),)}
MAP_T = (1, 3)  # the training lengths drawn (2T cells exist only as regime neighbours)


def t_label(check, t_mult):
    """``"T = 1000 clean + 500 FGM steps (1x the check's)"``-style panel title."""
    q = check.regimes["quick"]
    if check.id.startswith("fp."):
        steps = f"{round(q['T'] * t_mult)} clean + {round(q['T_adv'] * t_mult)} FGM steps"
    elif "T_adv" in q:
        steps = f"{round(q['T_std'] * t_mult)} standard + {round(q['T_adv'] * t_mult)} adv. steps"
    else:
        steps = f"{round(q['T_std'] * t_mult)} GD steps"
    return f"{t_mult:g}T: {steps}"


def _coverage(pts):
    done = sum(len(p.seeds) + len(p.errors) for p in pts)
    planned = sum(p.expected for p in pts)
    return done, planned


def claim_figures(check, pts):
    """(verdict Figure, margin Figure) of one claim's points ``{(d, k, t): Point}``."""
    fam = "fp" if check.id.startswith("fp.") else "ll"
    crit = main_criterion(check)
    shown = [p for p in pts.values() if p.t_mult in MAP_T]
    done, planned = _coverage(shown)
    note = (f"partial map: {done} of {planned} cells computed; hatched = not computed (not a "
            "fail)" if done < planned else f"{done} cells (seeds x points)")
    verdicts, margins = {}, {}
    for t in MAP_T:
        here = sorted((p for p in shown if p.t_mult == t), key=lambda p: (p.d, p.k))
        label = t_label(check, t)
        verdicts[label] = [(p.d, p.k, p.verdict if p.verdict != MISSING else None,
                            len(p.seeds) + len(p.errors), p.expected) for p in here]
        margins[label] = [(p.d, p.k, p.margin(crit)) for p in here]
    title = f"{check.id}: verdict over seeds per cell (the check's criteria)"
    v = verdict_map(verdicts, title=title, boundaries=BOUNDARIES[fam], note=note)
    m = margin_map(margins, criterion=crit.describe(), boundaries=BOUNDARIES[fam], note=note,
                   title=f"{check.id}: margin of {crit.describe()}")
    return v, m


def write_figures(all_points, registry, out_dir, dpi=110):
    """Save both figures of every claim in ``all_points``; return the paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for cid in sorted(all_points):
        figs = claim_figures(registry[cid], all_points[cid])
        for kind, fig in zip(("verdict", "margin"), figs):
            path = os.path.join(out_dir, f"phase_{cid}_{kind}.png")
            fig.savefig(path, dpi=dpi, bbox_inches="tight")
            paths.append(path)
    return paths
