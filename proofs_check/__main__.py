"""``python -m proofs_check``: run the theorem checks (also ``theorylab check``)."""

from __future__ import annotations

import argparse
import sys


def build_parser(parser=None):
    """Add the runner's options to ``parser`` (or a new one) and return it."""
    parser = parser or argparse.ArgumentParser(
        prog="python -m proofs_check", description="Run every claim as a check with a verdict.")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="regime", action="store_const", const="quick",
                      help="small regime (default): minutes on a laptop")
    mode.add_argument("--full", dest="regime", action="store_const", const="full",
                      help="the spec's regime: tens of minutes")
    parser.set_defaults(regime="quick")
    parser.add_argument("--only", nargs="+", metavar="ID",
                        help="run only these check ids (a prefix such as 'fp.' selects a group)")
    parser.add_argument("--seeds", type=int, default=3, metavar="N",
                        help="number of seeds, 0..N-1 (default 3)")
    parser.add_argument("--json", metavar="PATH", help="write results as JSON")
    parser.add_argument("--timings", metavar="PATH",
                        help="write the run's timings as JSON (kept out of the report and "
                             "the --json file, which reproduce bit for bit)")
    parser.add_argument("--report", metavar="PATH", default="reports/check_report.md",
                        help="Markdown report path (default reports/check_report.md)")
    parser.add_argument("--figures", metavar="DIR", default="figures",
                        help="directory for the checks' figures (default figures/)")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="worker processes running (seed, check family) tasks "
                             "(default 1); results do not depend on it")
    parser.add_argument("--no-fail-exit", action="store_true",
                        help="exit 0 when checks FAIL (a FAIL is a measured result, shown in "
                             "the table and report); a check that raises still exits 1")
    parser.add_argument("--list", action="store_true", help="list the checks and exit")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv=None, args=None):
    """Run the checks; exit status 1 if any check FAILS or raises."""
    import os

    from . import load_checks
    from ._harness import FAIL
    from ._runner import (ERROR, format_table, run_checks, write_json, write_markdown,
                          write_timings)

    if args is None:
        args = build_parser().parse_args(argv)
    if args.seeds < 1 or args.jobs < 1:
        print("error: --seeds and --jobs must be >= 1", file=sys.stderr)
        return 2
    registry = load_checks()
    if args.list:
        for cid, c in registry.items():
            print(f"{cid:<32} {c.provenance}  {c.claim}")
        return 0
    if args.only:
        chosen = [c for cid, c in registry.items()
                  if any(cid == o or (o.endswith(".") and cid.startswith(o)) for o in args.only)]
        unknown = [o for o in args.only
                   if not any(cid == o or (o.endswith(".") and cid.startswith(o))
                              for cid in registry)]
        if unknown:
            print(f"error: unknown check ids {unknown}; see --list", file=sys.stderr)
            return 2
    else:
        chosen = list(registry.values())
    results = run_checks(chosen, args.regime, list(range(args.seeds)),
                         figures_dir=args.figures, progress=not args.quiet, jobs=args.jobs)
    print(format_table(results))
    for path, writer in ((args.report, write_markdown), (args.json, write_json),
                         (args.timings, write_timings)):
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            writer(results, path)
            print(f"wrote {path}")
    if any(r.verdict == ERROR for r in results):
        return 1
    return 0 if args.no_fail_exit else int(any(r.verdict == FAIL for r in results))


if __name__ == "__main__":
    sys.exit(main())
