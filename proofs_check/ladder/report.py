"""``reports/ladder_report.md``, ``figures/ladder_fp.png`` and the summary the check report quotes.

Written from the CSV rows only, so ``--redraw`` regenerates everything from the
committed exports without computing.  Per norm and rung (T_adv multiplier) the
claim's verdict over the seeds is the check's own (:func:`proofs_check._harness.evaluate`);
beside it, *criteria alone*: the same evaluation with the convergence gate set aside
(every seed's ``converged`` set to True).  That column is not a verdict: it says what
an INCONCLUSIVE "training did not converge" stands in front of, and whether that
changes along the ladder.
"""

from __future__ import annotations

import json
import math
import os
import statistics

import numpy as np

from .._harness import CONVERGED, NOT_CONVERGED_REASON, evaluate, unconverged_runs
from ..phase.regions import claim_measurements, read_rows
from .cells import NORMS, ladder_ids

__all__ = ["LADDER_PARAMS", "SUMMARY_FILE", "read_ladder_rows", "rungs", "summary",
           "ladder_figure", "write_report", "ladder_notes"]

LADDER_PARAMS = ("norm", "adv_mult", "run_seed")
SUMMARY_FILE = "ladder_summary.json"
# What each claim's margin panel shows: (key, op) of the check's own criteria.
_SHOWN = {"fp.v4_principle": ("principle_fraction", ">="),
          "fp.v3_adversarial_purifies": ("oracle_minus_adv", "<=")}


def read_ladder_rows(source):
    """Every cell row of a ladder store or CSV export (:func:`proofs_check.phase.regions.read_rows`)."""
    return read_rows(source, params=LADDER_PARAMS)


def _gate_off(m):
    # Set aside the FGM stage's convergence gate only: a seed whose clean training was
    # flagged keeps its flag (the ladder does not vary the clean stage).
    out = dict(m)
    if CONVERGED in out and unconverged_runs(out.get(NOT_CONVERGED_REASON)) <= {"adv"}:
        out[CONVERGED] = True
        out[NOT_CONVERGED_REASON] = ""
    return out


def _num(v):
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan


def rungs(rows, registry):
    """``{norm: {adv_mult: rung}}``, a rung a dict of its seeds' measurements and verdicts.

    A rung: ``seeds`` (run seeds done, sorted), ``T_adv``, and per seed, aligned with
    ``seeds``: ``converged`` (True / False, None where the cell measured no FGM history,
    e.g. a claim raised), ``dense_ratio`` and ``loss_tail`` (NaN where not measured); and
    per claim id ``<id>``: ``verdict`` and ``reason`` (the check's own evaluation),
    ``criteria_alone`` and ``criteria_reason`` (the FGM stage's convergence gate set
    aside), ``shown`` (the criterion the figure shows), its per-seed ``values`` and
    ``margins``.
    """
    out = {}
    for r in rows:
        if r["status"] != "done" or not r["metrics"]:
            continue
        p, met = r["params"], r["metrics"]
        rung = out.setdefault(p["norm"], {}).setdefault(float(p["adv_mult"]), {
            "seeds": [], "T_adv": None, "converged": [], "dense_ratio": [], "loss_tail": [],
            "_m": {}})
        rung["seeds"].append(int(p["run_seed"]))
        if isinstance(met.get("ladder/T_adv"), (int, float)):
            rung["T_adv"] = int(met["ladder/T_adv"])
        conv = met.get("ladder/adv_converged")
        rung["converged"].append(None if conv is None else bool(conv))
        rung["dense_ratio"].append(_num(met.get("ladder/dense_ratio_adv")))
        rung["loss_tail"].append(_num(met.get("ladder/loss_adv_tail")))
        for cid in ladder_ids(p["norm"]):
            rung["_m"].setdefault(cid, []).append(claim_measurements(met, cid))
    for norm, by in out.items():
        for rung in by.values():
            order = np.argsort(rung["seeds"])
            for key in ("seeds", "converged", "dense_ratio", "loss_tail"):
                rung[key] = [rung[key][i] for i in order]
            for cid, ms in rung.pop("_m").items():
                ms = [ms[i] for i in order]
                check = registry[cid]
                v, why, _ = evaluate(check, ms, seeds=rung["seeds"])
                va, why_a, _ = evaluate(check, [_gate_off(m) for m in ms], seeds=rung["seeds"])
                crit = _criterion(check)
                rung[cid] = {"verdict": v, "reason": why, "criteria_alone": va,
                             "criteria_reason": why_a, "shown": crit.describe(),
                             "margins": [crit.margin(m.get(crit.key, math.nan)) for m in ms],
                             "values": [m.get(crit.key, math.nan) for m in ms]}
    return out


def _criterion(check):
    key, op = _SHOWN[check.id.rsplit("_", 1)[0]]
    for c in check.criteria:
        if c.key == key and c.op == op:
            return c
    raise ValueError(f"check {check.id}: no criterion {key} {op} (ladder.report._SHOWN)")


def _dense_fit(by):
    from theorylab.theory import fit_exponent

    mults = sorted(by)
    x, v = [], []
    for m in mults:
        if by[m]["T_adv"] is None:
            continue
        for dr in by[m]["dense_ratio"]:
            if math.isfinite(dr) and dr > 0:
                x.append(by[m]["T_adv"])
                v.append(dr)
    if len(set(x)) < 2:
        return None
    return fit_exponent(x, v)


def summary(rung_table):
    """The JSON-able summary per claim id: per rung verdict, criteria alone, converged seeds."""
    out = {}
    for norm, by in rung_table.items():
        fit = _dense_fit(by)
        for cid in ladder_ids(norm):
            out[cid] = {
                "rungs": [{"adv_mult": m, "T_adv": by[m]["T_adv"], "seeds": by[m]["seeds"],
                           "verdict": by[m][cid]["verdict"],
                           "criteria_alone": by[m][cid]["criteria_alone"],
                           "converged": sum(c is True for c in by[m]["converged"])}
                          for m in sorted(by) if cid in by[m]],
                "dense_ratio_exponent": None if fit is None else fit.exponent,
                "dense_ratio_ci": None if fit is None or fit.ci is None else list(fit.ci)}
    return out


def _grid(by, key_fn, seeds):
    mults = sorted(by)
    t = np.full((len(seeds), len(mults)), np.nan)
    for j, m in enumerate(mults):
        for s, val in zip(by[m]["seeds"], key_fn(by[m])):
            t[seeds.index(s), j] = val
    return t


def ladder_figure(rung_table):
    """Per norm: the FGM network's dense ratio, and V4's and V3's shown margins, against T_adv."""
    from theorylab.plots.ladder import length_panels

    cols, all_seeds = [], set()
    for norm in [n for n in NORMS if n in rung_table]:
        # Rungs without a measured FGM history (every seed's claims raised) have no x.
        by = {m: r for m, r in rung_table[norm].items() if r["T_adv"] is not None}
        if not by:
            continue
        mults = sorted(by)
        seeds = sorted({s for m in mults for s in by[m]["seeds"]})
        all_seeds.update(seeds)
        x = [by[m]["T_adv"] for m in mults]
        conv = _grid(by, lambda r: [math.nan if c is None else float(c)
                                    for c in r["converged"]], seeds) == 1
        fit = _dense_fit(by)
        top = {"title": f"{norm}: median dense ratio after FGM (hollow: flagged not converged)",
               "x": x, "logy": True, "xlabel": "FGM steps T_adv", "ylabel": "dense ratio",
               "series": [{"label": "dense ratio", "values": _grid(by, lambda r: r["dense_ratio"],
                                                                   seeds), "converged": conv}],
               "fit": None if fit is None else (fit.exponent, fit.prefactor, fit.ci)}
        series = []
        for cid in ladder_ids(norm):
            series.append({"label": f"{cid}: {by[mults[0]][cid]['shown']} (margin)",
                           "values": _grid(by, lambda r, c=cid: r[c]["margins"], seeds),
                           "converged": conv})
        bottom = {"title": f"{norm}: criterion margins (> 0: holds)", "x": x, "zero_line": True,
                  "xlabel": "FGM steps T_adv", "ylabel": "margin", "series": series}
        cols.append((top, bottom))
    grid = [[c[0] for c in cols], [c[1] for c in cols]]
    return length_panels(grid, title="FGM length ladder at the quick regime (d = 128, "
                                     "T = 1000 clean steps), seeds "
                                     + ", ".join(str(s) for s in sorted(all_seeds)))


def _g(x, digits=3):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}g}"


def _mmm(vals):
    vals = [v for v in vals if isinstance(v, (int, float)) and math.isfinite(v)]
    if not vals:
        return "-"
    return f"{_g(statistics.median(vals))} [{_g(min(vals))}, {_g(max(vals))}]"


def _norm_section(norm, by):
    fit = _dense_fit(by)
    ids = ladder_ids(norm)
    lines = [f"## {norm}", "",
             "| T_adv | FGM converged (seeds) | dense ratio after FGM | FGM loss (last fifth) | "
             + " | ".join(f"{c}: {by[min(by)][c]['shown']} | verdict | criteria alone"
                          for c in ids) + " |",
             "|---|---|---|---|" + "---|---|---|" * len(ids)]
    for m in sorted(by):
        r = by[m]
        t_adv = "-" if r["T_adv"] is None else r["T_adv"]
        cells = [f"{t_adv} (x{m:g})",
                 f"{sum(c is True for c in r['converged'])}/{len(r['seeds'])}",
                 _mmm(r["dense_ratio"]), _mmm(r["loss_tail"])]
        for cid in ids:
            c = r[cid]
            cells += [_mmm(c["values"]), f"**{c['verdict']}**", c["criteria_alone"]]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if fit is not None:
        ci = "" if fit.ci is None else f" [{fit.ci[0]:.2f}, {fit.ci[1]:.2f}]"
        lines.append(f"Dense ratio after FGM against T_adv, log-log over every rung and seed "
                     f"(`theorylab.theory.fit_exponent`, 95% bootstrap CI): exponent "
                     f"**{fit.exponent:.3f}{ci}** (the rungs of a seed continue one "
                     "clean network, so the points are not independent: the interval is "
                     "nominal).  The convergence diagnosis allows the "
                     "dense ratio to move 5% over the last fifth of a run, i.e. a power "
                     "law no steeper than T^-0.23 (`theorylab/training/_convergence.py`).")
        lines.append("")
    for cid in ids:
        verdicts = [(m, by[m][cid]["verdict"], by[m][cid]["criteria_alone"]) for m in sorted(by)]
        alone = sorted({a for _, _, a in verdicts})
        lines.append(f"- `{cid}`: verdict " + ", ".join(f"x{m:g} {v}" for m, v, _ in verdicts)
                     + "; criteria alone " + ", ".join(f"x{m:g} {a}" for m, _, a in verdicts)
                     + ("" if len(alone) == 1 else
                        " (**the criteria's verdict depends on where FGM training stopped**)")
                     + ".")
    lines.append("")
    return lines


def write_report(specs, rows, path, registry=None, figures_dir="figures", summary_path=None):
    """Write the report, the figure and the summary JSON; return the paths written."""
    from .. import load_checks

    registry = registry or load_checks()
    table = rungs(rows, registry)
    paths = []
    os.makedirs(figures_dir, exist_ok=True)
    fig_path = os.path.join(figures_dir, "ladder_fp.png")
    if table:
        ladder_figure(table).savefig(fig_path, dpi=110, bbox_inches="tight")
        paths.append(fig_path)
    done = [r for r in rows if r["status"] == "done"]
    cpu = sum((r["metrics"] or {}).get("cpu_seconds", 0.0) for r in done)
    lines = [
        "# FGM length ladder: do the adversarial-training verdicts depend on where FGM stopped?",
        "", "Generated by `make ladder` (`python -m proofs_check.ladder`; `--redraw` rebuilds "
        "this file, `figures/ladder_fp.png` and `reports/ladder/ladder_summary.json` from the "
        "committed CSVs in `reports/ladder/`).  Each rung runs the check's **quick** regime "
        "(d = 128; T = 1000 clean steps) with the FGM stage's length T_adv = 500 multiplied by "
        "the rung's factor, on the check report's seeds 0-2 (the rungs of a seed share their "
        "clean network), and judges V4 and V3 with the checks' own criteria.  *Verdict* is the "
        "check's: a seed whose FGM stage is flagged as not converged makes it INCONCLUSIVE.  "
        "*Criteria alone* is the same evaluation with the FGM stage's convergence gate set "
        "aside (a flagged clean stage keeps its flag); it is not a verdict, "
        "it shows what the INCONCLUSIVE stands in front of.  Specs: "
        + ", ".join(f"`{os.path.relpath(s.path)}`" for s in specs) + ".", "",
        f"Computed: {len(done)} of {len(rows)} cells ({cpu / 60:.1f} CPU minutes).", ""]
    for norm in [n for n in NORMS if n in table]:
        lines += _norm_section(norm, table[norm])
    if table:
        rel = os.path.relpath(fig_path, os.path.dirname(os.path.abspath(path)))
        lines += [f"![FGM length ladder]({rel})", ""]
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as fh:
        fh.write("\n".join(lines))
    paths.append(path)
    if summary_path:
        with open(summary_path, "w") as fh:
            json.dump(summary(table), fh, indent=1, sort_keys=True)
            fh.write("\n")
        paths.append(summary_path)
    return paths


def ladder_notes(path):
    """``{check id: one-line note}`` from a ladder summary JSON ({} if the file is missing)."""
    if not os.path.exists(path):
        return {}
    with open(path) as fh:
        data = json.load(fh)
    notes = {}
    for cid, s in data.items():
        parts = [f"T_adv {r['T_adv']}: {r['verdict']}"
                 + ("" if r["criteria_alone"] == r["verdict"] else
                    f" (criteria alone {r['criteria_alone']})")
                 + f", FGM converged on {r['converged']}/{len(r['seeds'])} seeds"
                 for r in s["rungs"]]
        exp = s.get("dense_ratio_exponent")
        tail = "" if exp is None else f"; the FGM network's dense ratio falls like T_adv^{exp:.2f}"
        notes[cid] = "; ".join(parts) + tail
    return notes
