"""The "where each claim holds" report: regions, what separates them, regime neighbours.

Written from the judged points (:func:`proofs_check.phase.regions.points`), so
it can be regenerated from the committed CSV exports without recomputing.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter

from .._harness import ERROR, FAIL, INCONCLUSIVE, PASS
from .figures import MAP_T, t_label
from .regions import (MISSING, compress, crossing, describe_failure, holds, main_criterion,
                      neighbours)

__all__ = ["claim_section", "closing_note", "write_report", "regime_point", "regime_notes",
           "NEIGHBOURS_FILE"]

_COLUMNS = ((PASS, "holds (every seed)"), (FAIL, "fails"), (INCONCLUSIVE, "inconclusive"),
            (ERROR, "error"), (MISSING, "not computed"))


def regime_point(check):
    """(d, k) of the check's quick regime on the map (k is s for Li & Li)."""
    q = check.regimes["quick"]
    return q["d"], q["k"] if check.id.startswith("fp.") else q["s"]


def _seeds(here):
    done = sorted({len(p.seeds) + len(p.errors) for p in here if p.seeds or p.errors})
    planned = max(p.expected for p in here)
    if not done:
        return f"0/{planned}"
    return (f"{done[0]}" if len(done) == 1 else f"{done[0]}-{done[-1]}") + f"/{planned}"


def _regions_table(pts, t, crit):
    rows = ["| d | seeds | " + " | ".join(c for _, c in _COLUMNS) + " | d^(1/3) | d^(1/2) | "
            f"`{crit.key}` margin changes sign |", "|" + "---|" * (len(_COLUMNS) + 5)]
    ds = sorted({p.d for p in pts.values() if p.t_mult == t})
    for d in ds:
        here = [p for p in pts.values() if p.t_mult == t and p.d == d]
        cells = [compress([p.k for p in here if p.verdict == v]) or "-" for v, _ in _COLUMNS]
        cross = crossing([(p.k, p.margin(crit)) for p in here if p.seeds])
        cross = ", ".join(f"k = {a} -> {b}" for a, b in cross) or "no"
        rows.append(f"| {d} | {_seeds(here)} | " + " | ".join(cells) + f" | {d ** (1 / 3):.2f} | "
                    f"{math.sqrt(d):.2f} | {cross} |")
    return "\n".join(rows)


def _separators(pts):
    # Which criteria fail (on at least one seed) at the points that do not hold.
    counts = Counter()
    n = 0
    for p in pts.values():
        if p.verdict not in (FAIL, INCONCLUSIVE):
            continue
        n += 1
        for cr in p.criteria:
            if cr.status != PASS:
                counts[f"{cr.criterion.describe()} ({cr.criterion.kind})"] += 1
    if not n:
        return "no computed point fails or is inconclusive."
    return (f"at the {n} points that fail or are inconclusive, the criteria not holding on "
            "every seed: " + "; ".join(f"{k}: {v} points" for k, v in counts.most_common()))


def _neighbour_lines(check, pts):
    d, k = regime_point(check)
    here, near = neighbours(pts, d, k)
    lines = [f"Quick regime (d = {d}, k = {k}, T): on the map {describe_failure(here)}."]
    lines += [f"- {label}: {describe_failure(p)}" for label, p in near]
    failing = [label for label, p in near if p is not None and p.verdict != MISSING
               and not holds(p)]
    missing = [label for label, p in near if p is None or p.verdict == MISSING]
    if failing:
        verdict = "at an edge, failing neighbour: " + ", ".join(failing)
    elif missing:
        verdict = "no computed neighbour fails; not computed: " + ", ".join(missing)
    else:
        verdict = "every neighbour holds"
    if here is not None and here.verdict not in (PASS, MISSING):
        verdict = f"the regime itself does not hold on the map ({here.verdict}); " + verdict
    lines.append(f"**{verdict}.**")
    return lines, verdict


def claim_section(check, pts):
    """The Markdown section of one claim; also returns its one-line neighbour verdict."""
    crit = main_criterion(check)
    done = sum(len(p.seeds) + len(p.errors) for p in pts.values())
    planned = sum(p.expected for p in pts.values())
    out = [f"## {check.id}", "", f"Claim: {check.claim}", "",
           f"Main criterion (margin map): `{crit.describe()}`. Cells computed: {done} of "
           f"{planned}{' (partial)' if done < planned else ''}. Figures: "
           f"`figures/phase_{check.id}_verdict.png`, `figures/phase_{check.id}_margin.png`.",
           ""]
    for t in sorted({p.t_mult for p in pts.values()}):
        label = t_label(check, t) + ("" if t in MAP_T else " (regime neighbour only)")
        out += [f"### {label}", "", _regions_table(pts, t, crit), ""]
    out += ["What separates them: " + _separators(pts), ""]
    lines, verdict = _neighbour_lines(check, pts)
    out += lines + [""]
    return "\n".join(out), verdict


def _holding(pts, t):
    by_d = {}
    for p in pts.values():
        if p.t_mult == t and p.verdict == PASS:
            by_d.setdefault(p.d, []).append(p.k)
    computed = sorted({p.d for p in pts.values() if p.t_mult == t and p.seeds})
    parts = [f"k = {compress(by_d[d])} at d = {d}" if d in by_d else f"no k at d = {d}"
             for d in computed]
    return "; ".join(parts) or "nothing computed"


def closing_note(registry, all_points, verdicts):
    """Per claim: where it holds at T and 3T, and its regime's neighbour verdict."""
    lines = ["## Closing note: the regions found so far", "",
             "On the seeds computed so far (the `seeds` columns above; with 2 seeds a single "
             "failing seed makes a FAIL). V1's l2 and linf maps are one measurement: V1 judges "
             "the clean network only, and clean training does not depend on the norm.", ""]
    for cid in sorted(all_points):
        pts = all_points[cid]
        lines.append(f"- **{cid}** holds (every seed) for {_holding(pts, 1)} (T); "
                     f"3T: {_holding(pts, 3)}. Quick regime: {verdicts[cid]}.")
    return "\n".join(lines) + "\n"


def write_report(registry, all_points, path, header="", neighbours_path=None):
    """Write the phase report (header, one section per claim, closing note) to ``path``.

    With ``neighbours_path``, also the quick regime's neighbour verdict of each claim
    as JSON (``{check id: verdict}``), which ``theorylab check`` quotes in the check
    report (:func:`regime_notes`).
    """
    sections, verdicts = [], {}
    for cid in sorted(all_points):
        text, verdicts[cid] = claim_section(registry[cid], all_points[cid])
        sections.append(text)
    body = "\n".join([header, *sections, closing_note(registry, all_points, verdicts)])
    with open(path, "w") as fh:
        fh.write(body)
    if neighbours_path is not None:
        with open(neighbours_path, "w") as fh:
            json.dump(dict(sorted(verdicts.items())), fh, indent=1)
            fh.write("\n")
    return path


NEIGHBOURS_FILE = "regime_neighbours.json"


def regime_notes(path):
    """``{check id: neighbour verdict}`` from a file written by :func:`write_report`.

    Returns an empty dict when ``path`` does not exist (a checkout without maps).
    """
    if not os.path.exists(path):
        return {}
    with open(path) as fh:
        notes = json.load(fh)
    if not isinstance(notes, dict) or not all(isinstance(v, str) for v in notes.values()):
        raise ValueError(f"{path}: not a phase regime-neighbour file")
    return notes
