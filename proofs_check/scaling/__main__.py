"""``python -m proofs_check.scaling``: run the scaling paths (resumable), then fit, draw, report."""

from __future__ import annotations

import argparse
import os
import sys

from theorylab.sweep.cli import run_command

from ..phase.__main__ import add_run_options, driver_command, validate_run_options

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
    add_run_options(p, specs=DEFAULTS["specs"], out=DEFAULTS["out"], report=DEFAULTS["report"],
                    pattern="scaling_*.toml")
    p.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples of each fit")
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
    validate_run_options(args)
    if args.n_boot < 100:
        raise ValueError(f"--n-boot must be >= 100, got {args.n_boot}")


def command(args):
    """Run (unless ``--redraw``), export, then fit, draw and report; the exit status."""
    from . import driver

    return driver_command(args, driver, lambda specs: draw(
        specs, args.out, args.figures, args.report, n_boot=args.n_boot), validate=validate)


def main(argv=None):
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    return run_command(command, args, "scaling")


if __name__ == "__main__":
    sys.exit(main())
