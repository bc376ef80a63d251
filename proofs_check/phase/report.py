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

__all__ = ["claim_section", "closing_note", "write_report", "regime_point", "full_point",
           "regime_notes", "interior_points", "NEIGHBOURS_FILE", "FULL_NEIGHBOURS_FILE"]

_COLUMNS = ((PASS, "holds (every seed)"), (FAIL, "fails"), (INCONCLUSIVE, "inconclusive"),
            (ERROR, "error"), (MISSING, "not computed"))


def regime_point(check):
    """(d, k) of the check's quick regime on the map (k is s for Li & Li)."""
    q = check.regimes["quick"]
    return q["d"], q["k"] if check.id.startswith("fp.") else q["s"]


def full_point(check):
    """(d, k, t) of the check's full regime: t its training length over the quick regime's.

    None for a check without a full regime.  ``t`` is exact (T_full / T_quick; T_std for
    Li & Li), so it may lie between the map's lengths.
    """
    if "full" not in check.regimes:
        return None
    q, f = check.regimes["quick"], check.regimes["full"]
    fp = check.id.startswith("fp.")
    t_key = "T" if fp else "T_std"
    return f["d"], f["k"] if fp else f["s"], f[t_key] / q[t_key]


def _differences(check, d, k, t):
    # What the map's cell runs that the full regime does not (the radius grid aside).
    from .cells import cell_regime

    cell, full = cell_regime(check, {"d": d, "k": k, "t_mult": t}), check.regimes["full"]
    # one_step = () only switches off the paper's one-step runs, which the map does not judge.
    keys = sorted(k_ for k_ in set(cell) | set(full) if k_ not in ("grid", "one_step")
                  and cell.get(k_) != full.get(k_))
    return ", ".join(f"{k_} {_fmt(cell.get(k_))} (full: {_fmt(full.get(k_))})" for k_ in keys)


def _fmt(v):
    return f"{v:.4g}" if isinstance(v, float) else repr(v) if isinstance(v, tuple) else f"{v}"


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


def _neighbour_verdict(near):
    # The failing neighbours named first, then the ones the map has not computed.
    failing = [label for label, p in near if p is not None and p.verdict != MISSING
               and not holds(p)]
    missing = [label for label, p in near if p is None or p.verdict == MISSING]
    if failing:
        return ("at an edge, failing neighbour: " + ", ".join(failing)
                + ("; not computed: " + ", ".join(missing) if missing else ""))
    if missing:
        return "no computed neighbour fails; not computed: " + ", ".join(missing)
    return "every neighbour holds"


def interior_points(pts, t_mult=1):
    """The (d, k) at ``t_mult`` that hold with every neighbour computed and holding.

    The candidates for a regime "well inside" the region where the claim holds: k -/+ 1,
    d halved and doubled and T doubled (the map's 2T, else its 3T) all PASS.
    """
    ts = sorted({p.t_mult for p in pts.values() if p.t_mult > t_mult})
    out = []
    for (d, k, t), p in sorted(pts.items()):
        if t != t_mult or not holds(p):
            continue
        ok = all(holds(q) for _, q in neighbours(pts, d, k, t_mult=t)[1][:4])
        longer = [pts.get((d, k, t2)) for t2 in ts if pts.get((d, k, t2)) is not None
                  and pts[(d, k, t2)].verdict != MISSING]
        if ok and longer and holds(longer[0]):
            out.append((d, k))
    return out


def _neighbour_lines(check, pts):
    d, k = regime_point(check)
    here, near = neighbours(pts, d, k)
    lines = [f"Quick regime (d = {d}, k = {k}, T): on the map {describe_failure(here)}."]
    lines += [f"- {label}: {describe_failure(p)}" for label, p in near]
    verdict = _neighbour_verdict(near)
    if here is not None and here.verdict not in (PASS, MISSING):
        verdict = f"the regime itself does not hold on the map ({here.verdict}); " + verdict
    lines.append(f"**{verdict}.**")
    return lines, verdict


def _full_neighbour_lines(check, pts):
    point = full_point(check)
    ts = sorted({p.t_mult for p in pts.values()})
    if point is None or not ts:
        return [], None
    d, k, t_full = point
    t = min(ts, key=lambda x: abs(math.log(x / t_full)))
    here, near = neighbours(pts, d, k, t_mult=t, t_neighbour=2 * t)
    diff = _differences(check, d, k, t)
    where = (f"the map's cell (d = {d}, k = {k}, {t:g}T)"
             + ("" if math.isclose(t, t_full) else f", the mapped length nearest the full "
                f"regime's {t_full:.3g}T")
             + (f"; it differs from the full regime in {diff}" if diff else ""))
    lines = [f"Full regime (d = {d}, k = {k}, {t_full:.3g}T), read at {where}: "
             f"{describe_failure(here)}."]
    lines += [f"- {label}: {describe_failure(p)}" for label, p in near]
    verdict = _neighbour_verdict(near)
    if here is None or here.verdict == MISSING:
        verdict = "the regime's cell is not computed; " + verdict
    elif here.verdict != PASS:
        verdict = f"the regime's cell does not hold on the map ({here.verdict}); " + verdict
    verdict = f"read at {where}: {verdict}"
    lines.append(f"**{verdict}.**")
    return lines, verdict


def claim_section(check, pts):
    """The Markdown section of one claim, and its quick and full regimes' neighbour verdicts.

    Returns
    -------
    (text, quick verdict, full verdict or None)
    """
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
    inner = interior_points(pts)
    out += ["Points at T that hold with every neighbour (k -/+ 1, d / 2, 2d, and the next "
            "longer training computed there) holding, the candidates for a regime well inside "
            "the region: " + (", ".join(f"(d = {d}, k = {k})" for d, k in inner) or "none")
            + ".", ""]
    full_lines, full_verdict = _full_neighbour_lines(check, pts)
    if full_lines:
        out += full_lines + [""]
    return "\n".join(out), verdict, full_verdict


def _holding(pts, t):
    by_d = {}
    for p in pts.values():
        if p.t_mult == t and p.verdict == PASS:
            by_d.setdefault(p.d, []).append(p.k)
    computed = sorted({p.d for p in pts.values() if p.t_mult == t and p.seeds})
    parts = [f"k = {compress(by_d[d])} at d = {d}" if d in by_d else f"no k at d = {d}"
             for d in computed]
    return "; ".join(parts) or "nothing computed"


def closing_note(registry, all_points, verdicts, full_verdicts=None):
    """Per claim: where it holds at T and 3T, and its regimes' neighbour verdicts."""
    full_verdicts = full_verdicts or {}
    lines = ["## Closing note: the regions found so far", "",
             "On the seeds computed so far (the `seeds` columns above; with 2 seeds a single "
             "failing seed makes a FAIL). V1's l2 and linf maps are one measurement: V1 judges "
             "the clean network only, and clean training does not depend on the norm.", ""]
    for cid in sorted(all_points):
        pts = all_points[cid]
        lines.append(f"- **{cid}** holds (every seed) for {_holding(pts, 1)} (T); "
                     f"3T: {_holding(pts, 3)}. Quick regime: {verdicts[cid]}."
                     + (f" Full regime, {full_verdicts[cid]}." if full_verdicts.get(cid)
                        else ""))
    return "\n".join(lines) + "\n"


def write_report(registry, all_points, path, header="", neighbours_path=None):
    """Write the phase report (header, one section per claim, closing note) to ``path``.

    With ``neighbours_path``, also the quick regime's neighbour verdict of each claim
    as JSON (``{check id: verdict}``), which ``theorylab check`` quotes in the check
    report (:func:`regime_notes`), and the full regime's beside it
    (:data:`FULL_NEIGHBOURS_FILE` in the same directory).
    """
    sections, verdicts, full = [], {}, {}
    for cid in sorted(all_points):
        text, verdicts[cid], full_verdict = claim_section(registry[cid], all_points[cid])
        if full_verdict:
            full[cid] = full_verdict
        sections.append(text)
    body = "\n".join([header, *sections, closing_note(registry, all_points, verdicts, full)])
    with open(path, "w") as fh:
        fh.write(body)
    if neighbours_path is not None:
        full_path = os.path.join(os.path.dirname(neighbours_path), FULL_NEIGHBOURS_FILE)
        for out, data in ((neighbours_path, verdicts), (full_path, full)):
            with open(out, "w") as fh:
                json.dump(dict(sorted(data.items())), fh, indent=1)
                fh.write("\n")
    return path


NEIGHBOURS_FILE = "regime_neighbours.json"
FULL_NEIGHBOURS_FILE = "regime_neighbours_full.json"


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
