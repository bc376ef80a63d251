"""``python -m proofs_check.phase``: run the phase maps (resumable), then draw and report."""

from __future__ import annotations

import argparse
import os
import statistics
import sys

from theorylab.sweep.cli import check_output_dir, check_output_file, run_command

__all__ = ["build_parser", "main", "draw", "add_run_options", "validate_run_options",
           "run_and_export", "driver_command"]


def add_run_options(p, *, specs, out, report, pattern):
    """The options every resumable sweep driver's command takes (phase maps, scaling paths)."""
    p.add_argument("--redraw", action="store_true",
                   help="draw the figures and the report from the CSVs in --out only (no "
                        "computing)")
    p.add_argument("--specs", default=specs, help=f"directory of {pattern}")
    p.add_argument("--out", default=out,
                   help="stores (<spec>.sqlite) and CSV exports (<spec>.csv)")
    p.add_argument("--figures", default="figures", help="directory of the figures")
    p.add_argument("--report", default=report)
    p.add_argument("--backend", default="processes", choices=["processes", "dask"],
                   help="with --workers > 1 (one worker runs in this process)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--max-minutes", type=float, default=None,
                   help="start no cell after this many minutes (the rest stays pending)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def validate_run_options(args):
    """A ValueError naming the option, before any work."""
    if args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    if args.max_minutes is not None and not args.max_minutes > 0:
        raise ValueError(f"--max-minutes must be > 0, got {args.max_minutes}")
    check_output_dir(args.out, "--out")
    check_output_dir(args.figures, "--figures")
    check_output_file(args.report, "--report", make_parents=True)


def run_and_export(specs, args, run, export):
    """Run the cells not done (``run``), print the summary, export every store's CSV."""
    s = run(specs, args.out, backend=args.backend, workers=args.workers,
            max_minutes=args.max_minutes, progress=not args.quiet)
    print(f"ran {s['ran']} cells ({s['failed']} failed) in {s['seconds'] / 60:.1f} min; "
          f"{s['left']} not done" + (" (stopped at --max-minutes)" if s["stopped"] else ""))
    for path in export(specs, args.out):
        print(path)


def driver_command(args, driver, draw, validate=validate_run_options):
    """A resumable driver's command: validate, run what is missing (unless ``--redraw``),
    export, then ``draw(specs)`` and print every path written; the exit status.

    ``driver`` is a module with ``load_specs``, ``run`` and ``export``.
    """
    validate(args)
    specs = driver.load_specs(args.specs)
    if not args.redraw:
        run_and_export(specs, args, driver.run, driver.export)
    for path in draw(specs):
        print(path)
    return 0


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m proofs_check.phase",
        description="Run the phase-map sweeps (examples/sweeps/phase_*.toml) cheap cells first, "
                    "resumably, then draw the per-claim maps and write the report of where each "
                    "claim holds.")
    return add_run_options(p, specs="examples/sweeps", out="reports/phase",
                           report="reports/phase_report.md", pattern="phase_*.toml")


def _cost_lines(rows):
    by = {}
    for r in rows:
        m = r["metrics"] or {}
        if isinstance(m.get("cpu_seconds"), (int, float)):
            p = r["params"]
            key = ("Li & Li" if "claims" in p else "FP (l2 + linf)", p["d"], p["t_mult"])
            by.setdefault(key, []).append((m["cpu_seconds"], m.get("wall_seconds", 0.0)))
    lines = ["| pipeline | d | T | cells | median CPU s | median wall s |", "|---|---|---|---|---|---|"]
    for (fam, d, t), v in sorted(by.items()):
        lines.append(f"| {fam} | {d} | {t:g}T | {len(v)} | "
                     f"{statistics.median(c for c, _ in v):.1f} | "
                     f"{statistics.median(w for _, w in v):.1f} |")
    return lines


# Which claim's reason names which training stage (clean and FGM trainings are shared by
# the FP claims of a cell, standard training by both Li & Li claims).
STAGES = (("FP clean SGD (T)", "fp.v1_clean_features_l2", "clean"),
          ("FP FGM, l2 (T_adv)", "fp.v3_adversarial_purifies_l2", "adv"),
          ("FP FGSM, linf (T_adv)", "fp.v3_adversarial_purifies_linf", "adv"),
          ("Li & Li standard GD (T_std)", "ll.standard_nonrobust", "standard"),
          ("Li & Li adversarial, warm PGD (T_adv)", "ll.adversarial_robust_warm_pgd",
           "adversarial"))


def convergence_lines(rows):
    """The table of cells whose stage was diagnosed converged, per stage, d and length.

    A cell without the stage's ``convergence_*`` measurements is counted apart as "not
    diagnosed", never as converged.
    """
    from .._harness import NOT_CONVERGED_REASON, unconverged_runs

    by = {}
    for r in rows:
        m = r["metrics"] or {}
        if r["status"] != "done":
            continue
        for label, cid, run in STAGES:
            if f"{cid}/verdict" not in m:
                continue  # the claim was not part of this cell
            cell = by.setdefault((label, r["params"]["d"], r["params"]["t_mult"]), [0, 0, 0])
            flagged = run in unconverged_runs(m.get(f"{cid}/{NOT_CONVERGED_REASON}") or "")
            if not flagged and not any(k.startswith(f"{cid}/convergence_{run}_") for k in m):
                cell[2] += 1  # computed before the diagnosis existed, or the run raised
                continue
            cell[0] += not flagged
            cell[1] += 1
    ds = sorted({d for _, d, _ in by})
    ts = sorted({t for _, _, t in by})
    head = [f"d = {d}, {t:g}T" for t in ts for d in ds]
    lines = ["| stage | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
    for label, _, _ in STAGES:
        cells = []
        for t in ts:
            for d in ds:
                c = by.get((label, d, t))
                cells.append("-" if c is None else f"{c[0]}/{c[1]}"
                             + (f" ({c[2]} not diagnosed)" if c[2] else ""))
        if any(c != "-" for c in cells):
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def _header(specs, rows, measured_cost):
    from .driver import estimate

    done = [r for r in rows if r["status"] == "done"]
    spent = sum((r["metrics"] or {}).get("cpu_seconds", 0.0) for r in done)
    left = [r for r in rows if r["status"] != "done"]
    left_s = sum(estimate(r["params"], measured_cost) for r in left)
    return "\n".join([
        "# Where each claim holds: phase maps over (d, k, T)", "",
        "Generated by `make phase` (`python -m proofs_check.phase`; `--redraw` rebuilds this "
        "file and the figures from the committed CSVs in `reports/phase/`). Each cell runs a "
        "claim's own pipeline in the check's **quick** regime with only d, k (s for Li & Li) "
        "and the training length changed (T and T_adv, or T_std, times 1, 2 or 3) and judges "
        "it with the check's own criteria; a point's verdict over its seeds is the check's "
        "multi-seed verdict (PASS = every criterion on every seed). Seeds are the sweep "
        "engine's per-cell seeds, not the check report's 0-2. The rule is the harness's: a "
        "criterion fails when it fails on at least half the seeds, so on a point with 2 "
        "seeds one failing seed is a FAIL, on 3 seeds an INCONCLUSIVE (the `seeds` column "
        "says how many are computed). The adversarial Li & Li claim is mapped in "
        "`ll.adversarial_robust_warm_pgd` (warm start, PGD-3, radius 0.07 sqrt(128 / d), "
        "theorylab's addition); the paper's one-step algorithm, which `ll.adversarial_robust` "
        "judges, has its own map (`make ll-one-step`, figures/ll_one_step_*.png). Specs: "
        + ", ".join(f"`{os.path.relpath(s.path)}`" for s in specs) + ".", "",
        f"Computed so far: {len(done)} of {len(rows)} cells ({spent / 60:.1f} CPU minutes); "
        f"the {len(left)} cells left are estimated at {left_s / 60:.0f} CPU minutes "
        "(measured cost per cell class where measured, the prior table of "
        "`proofs_check/phase/driver.py` elsewhere). Points with no computed seed are "
        "\"not computed\", never fails.", "", "Cost per cell (one worker, one Numba thread, "
        "2 shared cores):", "", *_cost_lines(done), "",
        "## How long each stage trains before it is diagnosed converged", "",
        "Cells (every k and seed computed) whose training stage was diagnosed converged, of "
        "the cells computed, per d and length (`theorylab.training.convergence_diagnostics`: "
        "over the last fifth of the run, loss plateau, and for the two-layer network the median "
        "dense ratio moving <= 5% and the threshold ramp over).  T = 1000 clean steps, T_adv "
        "= 500 FGM steps (batch 512, lr 0.5); Li & Li T_std = 300, T_adv = 400.  Clean "
        "training at 3T is *less* often stationary than at T where its dense ratio is still "
        "growing; in l2 the FGM stage's dense ratio keeps falling at every length tried (the "
        "FGM length ladder, `reports/ladder_report.md`).", "", *convergence_lines(rows), ""])


def draw(specs, out_dir, figures_dir, report_path):
    """Figures and report from the CSV exports in ``out_dir``; return the paths written."""
    from .. import load_checks
    from .driver import measured
    from .figures import write_figures
    from .regions import points, read_rows
    from .report import NEIGHBOURS_FILE, write_report

    csvs = [os.path.join(out_dir, f"{s.name}.csv") for s in specs]
    csvs = [c for c in csvs if os.path.exists(c)]
    if not csvs:
        raise ValueError(f"--out: no phase CSV exports in {out_dir!r} (run without --redraw "
                         "first)")
    rows = [r for c in csvs for r in read_rows(c)]
    registry = load_checks()
    pts = points(rows, registry)
    paths = write_figures(pts, registry, figures_dir)
    paths.append(write_report(registry, pts, report_path,
                              header=_header(specs, rows, measured(rows)),
                              neighbours_path=os.path.join(out_dir, NEIGHBOURS_FILE)))
    return paths


def _cmd(args):
    from . import driver

    return driver_command(args, driver,
                          lambda specs: draw(specs, args.out, args.figures, args.report))


def main(argv=None):
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    return run_command(_cmd, args, "phase")


if __name__ == "__main__":
    sys.exit(main())
