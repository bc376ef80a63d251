"""``python -m proofs_check.ladder``: run the FGM length ladder (resumable), then report."""

from __future__ import annotations

import argparse
import os
import sys

from theorylab.sweep.cli import run_command

from ..phase.__main__ import add_run_options, driver_command

__all__ = ["build_parser", "main", "draw", "DEFAULTS"]

DEFAULTS = {"specs": "examples/sweeps", "out": "reports/ladder", "figures": "figures",
            "report": "reports/ladder_report.md"}


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m proofs_check.ladder",
        description="Run the Feature Purification claims V3 and V4 at the quick regime with "
                    "the FGM stage's length multiplied by 1, 2, 4, 8, 16 "
                    "(examples/sweeps/ladder_*.toml), short rungs first, resumably; then "
                    "write the report, the figure and the summary the check report quotes.")
    return add_run_options(p, specs=DEFAULTS["specs"], out=DEFAULTS["out"],
                           report=DEFAULTS["report"], pattern="ladder_*.toml")


def draw(specs, out_dir, figures_dir, report_path):
    """Report, figure and summary from the CSV exports in ``out_dir``; return the paths."""
    from .report import SUMMARY_FILE, read_ladder_rows, write_report

    csvs = [os.path.join(out_dir, f"{s.name}.csv") for s in specs]
    csvs = [c for c in csvs if os.path.exists(c)]
    if not csvs:
        raise ValueError(f"--out: no ladder CSV exports in {out_dir!r} (run without --redraw "
                         "first)")
    rows = [r for c in csvs for r in read_ladder_rows(c)]
    return write_report(specs, rows, report_path, figures_dir=figures_dir,
                        summary_path=os.path.join(out_dir, SUMMARY_FILE))


def command(args):
    """Run (unless ``--redraw``), export, then report; the exit status."""
    from . import driver

    return driver_command(args, driver,
                          lambda specs: draw(specs, args.out, args.figures, args.report))


def main(argv=None):
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    return run_command(command, args, "ladder")


if __name__ == "__main__":
    sys.exit(main())
