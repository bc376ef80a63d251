"""``python -m proofs_check``: run the theorem checks (also ``theorylab check``)."""

from __future__ import annotations

import argparse
import os
import sys


CHECK_REPORT = "reports/check_report.md"


def build_parser(parser=None):
    """Add the runner's options to ``parser`` (or a new one) and return it."""
    parser = parser or argparse.ArgumentParser(
        prog="python -m proofs_check", description="Run every claim as a check with a verdict.")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="regime", action="store_const", const="quick",
                      help="small regime (default): minutes on a laptop")
    mode.add_argument("--full", dest="regime", action="store_const", const="full",
                      help="the spec's regime: tens of minutes")
    mode.add_argument("--scaling", dest="regime", action="store_const", const="scaling",
                      help="the Feature Purification claims along the scaling paths k = "
                           "round(c d^0.4), d = 64 ... 1024 (python -m proofs_check.scaling): "
                           "resumable into reports/scaling/, about 90 min with --jobs 2; "
                           "writes reports/scaling_report.md and figures/scaling_*.png")
    parser.set_defaults(regime="quick")
    parser.add_argument("--max-minutes", type=float, default=None, metavar="N",
                        help="with --scaling: start no cell after N minutes (the rest stays "
                             "pending; the next run resumes)")
    parser.add_argument("--module", action="append", default=[], metavar="PATH_OR_MODULE",
                        help="also load the checks a Python file or an importable module "
                             "registers with proofs_check.register (repeatable); installed "
                             "packages' checks (entry points 'theorylab.checks') load anyway")
    parser.add_argument("--only", nargs="+", metavar="ID",
                        help="run only these check ids (a prefix such as 'fp.' selects a group)")
    parser.add_argument("--seeds", type=int, default=3, metavar="N",
                        help="number of seeds, 0..N-1 (default 3)")
    parser.add_argument("--json", metavar="PATH", help="write results as JSON")
    parser.add_argument("--timings", metavar="PATH",
                        help="write the run's timings as JSON (kept out of the report and "
                             "the --json file, which reproduce bit for bit)")
    parser.add_argument("--report", metavar="PATH", default=CHECK_REPORT,
                        help=f"Markdown report path (default {CHECK_REPORT}; with --scaling "
                             "reports/scaling_report.md)")
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
    parser.add_argument("--verbose", action="store_true",
                        help="print the traceback of every check that raised")
    return parser


def list_checks(registry, file=None):
    """Print one line per check: id, provenance tag, where it came from, claim."""
    from ._harness import SOURCES

    width = max((len(cid) for cid in registry), default=10)
    srcs = {cid: (SOURCES[cid].describe() if cid in SOURCES else "?") for cid in registry}
    swidth = max((len(s) for s in srcs.values()), default=10)
    for cid, c in registry.items():
        print(f"{cid:<{width}}  {c.provenance}  {srcs[cid]:<{swidth}}  {c.claim}", file=file)


def print_errors(results, verbose, file=None):
    """After the table: each check that raised, with its traceback if ``verbose``."""
    from ._harness import ERROR

    for r in results:
        if r.verdict == ERROR and r.error:
            if verbose:
                print(f"\n--- {r.check.id} raised:\n{r.error.rstrip()}", file=file)
            else:
                print(f"{r.check.id}: {r.reason} (--verbose for the traceback)", file=file)


def scaling_args(args):
    """The ``python -m proofs_check.scaling`` options of a ``--scaling`` check run.

    Raises
    ------
    ValueError
        Naming the option: one that does not apply to the scaling regime, or a bad value.
    """
    from .scaling.__main__ import DEFAULTS, build_parser as scaling_parser, validate

    if args.regime != "scaling":
        if args.max_minutes is not None:
            raise ValueError("--max-minutes applies to --scaling only")
        return None
    for opt, given in (("--only", args.only), ("--module", args.module), ("--list", args.list),
                       ("--json", args.json), ("--timings", args.timings)):
        if given:
            raise ValueError(f"{opt} does not apply to --scaling (its cells are the specs "
                             f"examples/sweeps/scaling_*.toml)")
    out = scaling_parser().parse_args([])
    out.workers, out.max_minutes, out.quiet = args.jobs, args.max_minutes, args.quiet
    out.figures = args.figures
    out.report = DEFAULTS["report"] if args.report == CHECK_REPORT else args.report
    validate(out)
    return out


def _print_result(result):
    """One line on stderr per check as it finishes (above the progress bar)."""
    from tqdm.auto import tqdm

    tqdm.write(f"{result.check.id}: {result.verdict} {result.check.provenance} "
               f"({len(result.seeds)} seeds, {result.seconds:.1f} s)", file=sys.stderr)


# The phase maps' neighbour verdicts, quoted in the report when the committed maps are here.
PHASE_NEIGHBOURS = os.path.join("reports", "phase", "regime_neighbours.json")
PHASE_NEIGHBOURS_FULL = os.path.join("reports", "phase", "regime_neighbours_full.json")
# The FGM length ladder's verdicts per rung, quoted likewise (make ladder).
LADDER_SUMMARY = os.path.join("reports", "ladder", "ladder_summary.json")


def _markdown_writer():
    from ._runner import write_markdown
    from .ladder.report import ladder_notes
    from .phase.report import regime_notes

    notes, lengths = regime_notes(PHASE_NEIGHBOURS), ladder_notes(LADDER_SUMMARY)
    full = regime_notes(PHASE_NEIGHBOURS_FULL)
    return lambda results, path: write_markdown(results, path, regime_notes=notes,
                                                ladder_notes=lengths, full_regime_notes=full)


def main(argv=None, args=None):
    """Run the checks; exit status 1 if any check FAILS or raises."""
    import os

    from . import load_all, select
    from ._harness import ERROR, FAIL
    from ._runner import format_table, run_checks, write_json, write_markdown, write_timings

    if args is None:
        args = build_parser().parse_args(argv)
    if args.seeds < 1 or args.jobs < 1:
        print("error: --seeds and --jobs must be >= 1", file=sys.stderr)
        return 2
    try:
        scaling = scaling_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if scaling is not None:
        from .scaling.__main__ import command

        return command(scaling)
    try:
        registry = load_all(args.module)
        chosen = select(args.only) if args.only else list(registry.values())
    except ValueError as exc:
        print(f"error: {exc}; see --list", file=sys.stderr)
        return 2
    if args.list:
        list_checks(registry)
        return 0
    results = run_checks(chosen, args.regime, list(range(args.seeds)),
                         figures_dir=args.figures, progress=not args.quiet, jobs=args.jobs,
                         on_result=None if args.quiet else _print_result)
    print(format_table(results))
    print_errors(results, args.verbose, file=sys.stderr)
    for path, writer in ((args.report, _markdown_writer()), (args.json, write_json),
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
