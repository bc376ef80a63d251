"""Where each claim holds: per-point verdicts over seeds, regions, and regime neighbours.

The data are the rows of phase-map sweeps (a results store or its CSV export):
each row is one cell (params ``d``, ``k``, ``t_mult`` and ``norms`` for Feature
Purification, ``claims`` for Li & Li) with its status and, when done, the per-claim
measurements written by :mod:`proofs_check.phase.cells`.  A *point* is
(claim, d, k, t_mult); its verdict over the seeds done there is the check's
own multi-seed verdict (:func:`proofs_check._harness.evaluate` on the
per-seed measurements): PASS means every criterion holds on every seed.
A point with no done seed is *missing* (not computed), never a fail.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field

from .._harness import (CONVERGED, ERROR, FAIL, INCONCLUSIVE, NOT_CONVERGED_REASON, PASS,
                        evaluate)
from .cells import claim_ids

__all__ = ["Point", "MISSING", "PARAMS", "read_rows", "claim_measurements", "points", "regions", "neighbours",
           "MAIN", "main_criterion", "compress", "crossing", "holds", "describe_failure"]

MISSING = "MISSING"
# The cell parameters of the phase specs (every other CSV column is a measurement or
# bookkeeping).
PARAMS = ("d", "k", "t_mult", "norms", "base", "claims")

# The criterion each claim's margin map shows, by (key, op): the threshold is read from
# the check's own Criterion, never restated.
MAIN = {
    "fp.v1_clean_features": ("dense_ratio_median", "<="),
    "fp.v2_clean_nonrobust": ("tau50_clean_over_oracle", "<="),
    "fp.v3_adversarial_purifies": ("oracle_minus_adv", "<="),
    "fp.v4_principle": ("principle_fraction", ">="),
    "ll.standard_nonrobust": ("gamma_v_over_u", ">="),
    "ll.adversarial_robust_warm_pgd": ("certified_accuracy_at_eps", ">="),
}


def main_criterion(check):
    """The :class:`~proofs_check.Criterion` of ``check`` that its margin map shows."""
    stem = check.id.rsplit("_", 1)[0] if check.id.startswith("fp.") else check.id
    key, op = MAIN[stem]
    for c in check.criteria:
        if c.key == key and c.op == op:
            return c
    raise ValueError(f"check {check.id}: no criterion {key} {op} (phase.regions.MAIN)")


@dataclass
class Point:
    """One (claim, d, k, t_mult) of a map: its seeds' measurements and the verdict."""

    claim: str
    d: int
    k: int
    t_mult: float
    seeds: list = field(default_factory=list)  # per-seed measurement dicts (done cells)
    expected: int = 0  # cells of the specs at this point (done or not)
    errors: list = field(default_factory=list)
    verdict: str = MISSING
    reason: str = ""
    criteria: list = field(default_factory=list)  # CriterionResult list when judged

    @property
    def key(self):
        return (self.d, self.k, self.t_mult)

    def margin(self, criterion):
        """Median over seeds of ``criterion``'s margin (NaN where not measured)."""
        vals = sorted(criterion.margin(m.get(criterion.key, math.nan)) for m in self.seeds)
        vals = [v for v in vals if not math.isnan(v)]
        if not vals:
            return math.nan
        n = len(vals)
        return vals[n // 2] if n % 2 else 0.5 * (vals[n // 2 - 1] + vals[n // 2])


def _parse(text):
    if text == "":
        return None
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text


def read_rows(source, params=PARAMS):
    """Every cell row of a store (path ending .sqlite / a Store) or a CSV export.

    ``params``: the CSV columns that are cell parameters (default the phase specs').

    Returns
    -------
    list of dict
        ``params``, ``replicate``, ``status`` and ``metrics`` (None unless done).
    """
    from theorylab.sweep import Store

    if isinstance(source, Store) or str(source).endswith(".sqlite"):
        store = source if isinstance(source, Store) else Store(source, create=False)
        try:
            return [{"params": r["params"], "replicate": r["replicate"], "status": r["status"],
                     "metrics": r["metrics"]} for r in store.rows()]
        finally:
            if store is not source:
                store.close()
    out = []
    with open(source, newline="") as fh:
        for row in csv.DictReader(fh):
            cell = {p: _parse(row[p]) for p in params if row.get(p, "") != ""}
            metrics = None
            if row["status"] == "done":
                metrics = {c: _parse(v) for c, v in row.items()
                           if ("/" in c or c in ("cpu_seconds", "wall_seconds")) and v != ""}
            out.append({"params": cell, "replicate": int(row["replicate"]),
                        "status": row["status"], "metrics": metrics})
    return out


def _pipeline(params):
    return "ll" if "claims" in params else "fp"


def claim_measurements(metrics, cid):
    """One claim's measurements of a stored cell, as its check's ``run`` returned them.

    A store keeps numbers and strings only, so the boolean ``converged`` of a run with
    convergence diagnostics is restored from its reason (absent or empty: converged);
    without it a re-judged seed whose training did not converge would get a verdict on
    a transient instead of INCONCLUSIVE.
    """
    prefix = cid + "/"
    m = {k[len(prefix):]: v for k, v in metrics.items() if k.startswith(prefix)}
    if CONVERGED not in m and any(k.startswith("convergence_") for k in m):
        m[CONVERGED] = not m.get(NOT_CONVERGED_REASON)
    return m


def points(rows, registry):
    """``{claim id: {(d, k, t_mult): Point}}`` judged with each check's own criteria.

    Parameters
    ----------
    rows : list of dict
        From :func:`read_rows` (any number of sources concatenated).
    registry : dict
        Check id -> Check (``proofs_check.load_checks()``).
    """
    out = {}
    for r in rows:
        p = r["params"]
        for cid in claim_ids(_pipeline(p), p):
            pt = out.setdefault(cid, {}).setdefault(
                (p["d"], p["k"], p["t_mult"]), Point(cid, p["d"], p["k"], p["t_mult"]))
            pt.expected += 1
            if r["status"] != "done" or not r["metrics"]:
                continue
            m = claim_measurements(r["metrics"], cid)
            if not m:  # the claim was not part of this cell
                pt.expected -= 1
                continue
            if m.get("verdict") == ERROR:
                pt.errors.append(m.get("reason", ""))
            else:
                pt.seeds.append(m)
    for cid, pts in out.items():
        check = registry[cid]
        for pt in pts.values():
            if pt.errors:
                pt.verdict, pt.reason = ERROR, "; ".join(pt.errors)
            elif pt.seeds:
                pt.verdict, pt.reason, pt.criteria = evaluate(check, pt.seeds)
    return out


def compress(ks):
    """``[2, 3, 4, 7, 9, 10]`` -> ``"2-4, 7, 9-10"``."""
    ks = sorted(ks)
    parts, start = [], None
    for i, k in enumerate(ks):
        if start is None:
            start = k
        if i + 1 == len(ks) or ks[i + 1] != k + 1:
            parts.append(f"{start}" if start == k else f"{start}-{k}")
            start = None
    return ", ".join(parts)


def crossing(pairs):
    """Where a margin changes sign along k: ``[(k_before, k_after), ...]`` in k order.

    ``pairs``: (k, margin) in any order; NaN margins are skipped.  Empty when the
    sign never changes.
    """
    pairs = sorted((k, m) for k, m in pairs if not math.isnan(m))
    return [(k0, k1) for (k0, m0), (k1, m1) in zip(pairs, pairs[1:]) if (m0 > 0) != (m1 > 0)]


def regions(pts):
    """``{t_mult: {d: {verdict: [k, ...]}}}`` of one claim's points (MISSING included)."""
    out = {}
    for pt in pts.values():
        out.setdefault(pt.t_mult, {}).setdefault(pt.d, {}).setdefault(pt.verdict, []).append(
            pt.k)
    return {t: {d: {v: sorted(ks) for v, ks in by.items()} for d, by in sorted(ds.items())}
            for t, ds in sorted(out.items())}


def neighbours(pts, d, k, t_mult=1, t_neighbour=2):
    """The regime point and its neighbours (k -/+ 1, d halved / doubled, T doubled).

    Returns
    -------
    (Point or None, list of (label, Point or None))
        None where the map has no such point.
    """
    here = pts.get((d, k, t_mult))
    near = [(f"k = {k - 1}", (d, k - 1, t_mult)), (f"k = {k + 1}", (d, k + 1, t_mult)),
            (f"d = {d // 2}", (d // 2, k, t_mult)), (f"d = {2 * d}", (2 * d, k, t_mult)),
            (f"{t_neighbour:g}T", (d, k, t_neighbour))]
    return here, [(label, pts.get(key)) for label, key in near]


def holds(pt):
    return pt is not None and pt.verdict == PASS


def describe_failure(pt):
    """One line: the verdict of a point and why (the failing criteria with their seeds)."""
    if pt is None or pt.verdict == MISSING:
        return "not computed"
    n = len(pt.seeds) + len(pt.errors)
    if pt.verdict in (FAIL, INCONCLUSIVE, ERROR):
        return f"{pt.verdict} on {n} seed(s): {pt.reason}"
    return f"{pt.verdict} on {n} seed(s)"

