"""``python -m proofs_check.scaling``: run the scaling paths (resumable), then fit, draw, report."""

from __future__ import annotations

import argparse
import os
import sys

from theorylab.sweep.cli import check_output_dir, check_output_file, run_command

__all__ = ["build_parser", "main", "draw", "DEFAULTS"]

DEFAULTS = {"specs": "examples/sweeps", "out": "reports/scaling", "figures": "figures",
            "report": "reports/scaling_report.md"}


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m proofs_check.scaling",
        description="Run the Feature Purification claims along the theory's scaling paths "
                    "(examples/sweeps/scaling_*.toml: k = round(c d^0.4), d = 64 ... 1024, l2 "
                    "and linf) cheap d first, resumably; then fit the exponents, draw the "
                    "figures and write the report.")
    p.add_argument("--redraw", action="store_true",
                   help="fit, draw and report from the CSVs in --out only (no computing)")
    p.add_argument("--specs", default=DEFAULTS["specs"], help="directory of scaling_*.toml")
    p.add_argument("--out", default=DEFAULTS["out"],
                   help="stores (<spec>.sqlite) and CSV exports (<spec>.csv)")
    p.add_argument("--figures", default=DEFAULTS["figures"], help="directory of the figures")
    p.add_argument("--report", default=DEFAULTS["report"])
    p.add_argument("--backend", default="processes", choices=["processes", "dask"],
                   help="with --workers > 1 (one worker runs in this process)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--max-minutes", type=float, default=None,
                   help="start no cell after this many minutes (the rest stays pending)")
    p.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples of each fit")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def draw(specs, out_dir, figures_dir, report_path, n_boot=2000):
    """Fits, figures and report from the CSV exports in ``out_dir``; return the paths."""
    from .figures import write_figures
    from .fits import fit_all, read_scaling_rows
    from .report import write_report

    csvs = [os.path.join(out_dir, f"{s.name}.csv") for s in specs]
    csvs = [c for c in csvs if os.path.exists(c)]
    if not csvs:
        raise ValueError(f"--out: no scaling CSV exports in {out_dir!r} (run without --redraw "
                         "first)")
    rows = [r for c in csvs for r in read_scaling_rows(c)]
    fits = fit_all(rows, n_boot=n_boot)
    paths = write_figures(fits, figures_dir)
    paths.append(write_report(specs, rows, fits, report_path))
    return paths


def validate(args):
    """Every option checked before any work: a ValueError naming the option."""
    if args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    if args.max_minutes is not None and not args.max_minutes > 0:
        raise ValueError(f"--max-minutes must be > 0, got {args.max_minutes}")
    if args.n_boot < 100:
        raise ValueError(f"--n-boot must be >= 100, got {args.n_boot}")
    check_output_dir(args.out, "--out")
    check_output_dir(args.figures, "--figures")
    check_output_file(args.report, "--report", make_parents=True)


def command(args):
    """Run (unless ``--redraw``), export, then draw; the exit status."""
    from .driver import export, load_specs, run

    validate(args)
    specs = load_specs(args.specs)
    if not args.redraw:
        s = run(specs, args.out, backend=args.backend, workers=args.workers,
                max_minutes=args.max_minutes, progress=not args.quiet)
        print(f"ran {s['ran']} cells ({s['failed']} failed) in {s['seconds'] / 60:.1f} min; "
              f"{s['left']} not done" + (" (stopped at --max-minutes)" if s["stopped"] else ""))
        for path in export(specs, args.out):
            print(path)
    for path in draw(specs, args.out, args.figures, args.report, n_boot=args.n_boot):
        print(path)
    return 0


def main(argv=None):
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    return run_command(command, args, "scaling")


if __name__ == "__main__":
    sys.exit(main())
