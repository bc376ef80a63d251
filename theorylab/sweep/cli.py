"""Command line of sweeps: ``theorylab sweep run|status|export`` and ``theorylab plot phase``.

:func:`add_parser` and :func:`add_plot_parser` register the subcommands on the
``theorylab`` parser; :func:`main` is ``python -m theorylab.sweep`` (the same
subcommands plus ``plot``).  Heavy imports happen inside the commands.

Shared with :mod:`theorylab.cli` (this is the lowest module of both command
lines): :func:`run_command` (every user error is one line on stderr and exit
status 2, Ctrl-C one line and 130) and :func:`check_output_file` /
:func:`check_output_dir` (output paths checked before any work starts).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from .._json import to_jsonable

__all__ = ["add_parser", "add_plot_parser", "build_parser", "main", "run_command",
           "check_output_file", "check_output_dir", "USER_ERRORS"]

# What a command raises for a user's mistake (bad value, unreadable or unwritable file).
USER_ERRORS = (ValueError, OSError)


# -- shared by the theorylab command line ------------------------------------------------

def run_command(func, args, name, *, debug=False):
    """``func(args)`` with every user error as one line on stderr.

    Returns the command's exit status; 2 after a ValueError or OSError (the line
    ``theorylab <name>: error: <message>``), 130 after Ctrl-C (``theorylab
    <name>: interrupted``).  With ``debug`` these propagate (a traceback).
    """
    try:
        return func(args)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"theorylab {name}: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as exc:
        if debug:
            raise
        print(f"theorylab {name}: error: {_one_line(exc)}", file=sys.stderr)
        return 2


def _one_line(exc):
    """The message of ``exc`` on one line (the exception's name when it has none)."""
    text = " ".join(str(exc).split())
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror + (f": {exc.filename}" if exc.filename else "")
    return text or type(exc).__name__


def _writable(path):
    return os.access(path, os.W_OK | os.X_OK)


def check_output_dir(path, option):
    """ValueError unless directory ``path`` exists and is writable or can be created."""
    if path is None:
        return
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise ValueError(f"{option}: {path} exists and is not a directory")
        if not _writable(path):
            raise ValueError(f"{option}: directory {path} is not writable")
        return
    parent = path
    while not os.path.exists(parent):  # the nearest existing ancestor must take a new dir
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ValueError(f"{option}: cannot create {path}: {parent} is not a directory")
    if not _writable(parent):
        raise ValueError(f"{option}: cannot create {path}: {parent} is not writable")


def check_output_file(path, option, *, make_parents=False):
    """ValueError unless file ``path`` can be written (before any work starts).

    Its directory must exist (or, with ``make_parents``, be creatable) and be
    writable; ``None`` and ``-`` (standard output) pass.
    """
    if path is None or path == "-":
        return
    path = os.fspath(path)
    full = os.path.abspath(path)
    if os.path.isdir(full):
        raise ValueError(f"{option} {path}: is a directory")
    if os.path.exists(full) and not os.access(full, os.W_OK):
        raise ValueError(f"{option} {path}: file is not writable")
    parent = os.path.dirname(full)
    if make_parents:
        check_output_dir(parent, option)
    elif not os.path.isdir(parent):
        raise ValueError(f"{option} {path}: directory {parent} does not exist")
    elif not _writable(parent):
        raise ValueError(f"{option} {path}: directory {parent} is not writable")


# -- sweep run / status / export -------------------------------------------------

def _add_sweep_commands(sub):
    p = sub.add_parser("run", help="run the cells of a sweep spec not yet done",
                       description="Run every cell of SPEC.toml that the results file does "
                                   "not hold as done (re-running resumes an interrupted "
                                   "sweep and retries failed cells).")
    p.add_argument("spec", metavar="SPEC.toml")
    p.add_argument("--backend", default="serial", choices=["serial", "processes", "dask"],
                   help="where cells run (default serial)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="a running Dask scheduler (default: start a local cluster on "
                        "127.0.0.1)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes (default: one per core)")
    p.add_argument("--results", metavar="PATH",
                   help="SQLite results file (default: <sweep name>.sqlite here)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("status", help="cells done, failed and pending in a results file")
    p.add_argument("results", metavar="RESULTS")
    p.add_argument("--errors", action="store_true", help="print the traceback of each "
                                                         "failed cell")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_status)

    p = sub.add_parser("export", help="write the results as CSV")
    p.add_argument("results", metavar="RESULTS")
    p.add_argument("--csv", nargs="?", const="", default=None, metavar="PATH",
                   help="CSV file (default: RESULTS with .csv; '-' for standard output)")
    p.set_defaults(func=_cmd_export)


def add_parser(subparsers):
    """Register ``sweep`` (with ``run``, ``status``, ``export``) on a subparsers action.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        From ``parser.add_subparsers()`` of the ``theorylab`` parser.
    """
    p = subparsers.add_parser("sweep", help="grids of experiments on all cores or on Dask",
                              description="Run a sweep spec into a resumable SQLite store, "
                                          "inspect it, export it.")
    sub = p.add_subparsers(dest="sweep_command", required=True)
    _add_sweep_commands(sub)
    return p


def _cmd_run(args):
    from .runner import default_results_path, run_sweep
    from .spec import load_spec
    from .store import _check_sqlite_file

    if os.path.isdir(args.spec):
        raise ValueError(f"spec {args.spec!r} is a directory, not a TOML file")
    try:
        spec = load_spec(args.spec)
    except UnicodeDecodeError:
        raise ValueError(f"spec {args.spec!r} is not a text (TOML) file") from None
    results = args.results or default_results_path(spec)
    check_output_file(results, "--results", make_parents=True)
    _check_sqlite_file(results)  # before the lock file is made next to it
    os.makedirs(os.path.dirname(os.path.abspath(results)), exist_ok=True)  # for the lock file
    summary = run_sweep(spec, results=results, backend=args.backend,
                        workers=args.workers, scheduler=args.scheduler,
                        progress=not args.quiet)
    if args.json:
        print(json.dumps(to_jsonable(summary), indent=1))
    else:
        print(f"{summary['results']}: {summary['total']} cells; ran {summary['ran']} "
              f"({summary['done']} done, {summary['failed']} failed), "
              f"{summary['skipped']} already done; {summary['seconds']:.1f} s")
        if summary["failed"]:
            print(f"see: theorylab sweep status {summary['results']} --errors")
    return 1 if summary["failed"] else 0


def _read_store(path, read):
    # read(store) on an existing results file; a damaged file is a ValueError.
    import sqlite3

    from .store import Store

    with Store(path, create=False) as store:
        try:
            return read(store)
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"results: {path!r} cannot be read ({exc})") from None


def _cmd_status(args):
    counts, meta, rows = _read_store(args.results,
                                     lambda st: (st.counts(), st.meta(), st.rows()))
    failed = [r for r in rows if r["status"] == "failed"]
    secs = sum(r["seconds"] or 0.0 for r in rows)
    if args.json:
        print(json.dumps(to_jsonable({
            "results": args.results, "experiment": meta.get("experiment"),
            "name": meta.get("name"), **counts, "cell_seconds": secs,
            "failed_cells": [{"idx": r["idx"], "params": r["params"],
                              "replicate": r["replicate"], "error": r["error"]}
                             for r in failed]}), indent=1))
        return 0
    print(f"{args.results}: sweep {meta.get('name')!r}, experiment {meta.get('experiment')}")
    print(f"  {counts['total']} cells: {counts['done']} done, {counts['failed']} failed, "
          f"{counts['pending']} pending; {secs:.1f} cell-seconds")
    for r in failed:
        print(f"  failed #{r['idx']} {json.dumps(r['params'], sort_keys=True)} "
              f"replicate {r['replicate']}: {r['error']}")
        if args.errors and r["traceback"]:
            print("    " + r["traceback"].rstrip().replace("\n", "\n    "))
    return 0


def _cmd_export(args):
    if args.csv is None:
        raise ValueError("export: give --csv [PATH] (the only format so far)")
    path = args.csv or os.path.splitext(args.results)[0] + ".csv"
    check_output_file(path, "--csv")
    out = _read_store(args.results, lambda st: st.export_csv(path))
    if out != "-":
        print(out)
    return 0


# -- plot phase -----------------------------------------------------------------------

def _add_phase(sub):
    p = sub.add_parser("phase", help="phase diagrams of a pipeline sweep",
                       description="Robust-accuracy heat maps over (d, radius), one panel per "
                                   "model family, and tau50 against d on log-log axes with "
                                   "fitted exponents, from a sweep's results file.")
    p.add_argument("results", metavar="RESULTS")
    p.add_argument("--out", default="figures", help="directory of the figures (default "
                                                    "figures/)")
    p.add_argument("--name", default=None,
                   help="file stem: phase_<name>_heatmap.png, phase_<name>_tau50.png "
                        "(default: the sweep's name)")
    p.set_defaults(func=_cmd_phase)
    return p


def add_plot_parser(subparsers, *, phase_only=False):
    """Register ``plot phase`` on a subparsers action.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The ``theorylab`` subparsers (a ``plot`` command with ``phase`` is
        added), or, with ``phase_only=True``, the subparsers of an existing
        ``plot`` command (only ``phase`` is added).
    """
    if phase_only:
        return _add_phase(subparsers)
    p = subparsers.add_parser("plot", help="figures from results files")
    sub = p.add_subparsers(dest="plot_command", required=True)
    _add_phase(sub)
    return p


def _cmd_phase(args):
    from theorylab.plots.phase import phase_figures
    from theorylab.sweep.store import phase_records

    check_output_dir(args.out, "--out")
    records = _read_store(args.results, phase_records)
    if not records:
        raise ValueError(f"{args.results}: no done cells to draw")
    paths = phase_figures(records, out_dir=args.out, name=args.name)
    for path in paths:
        print(path)
    return 0


# -- python -m theorylab.sweep ---------------------------------------------------------

def build_parser():
    """The parser of ``python -m theorylab.sweep``: run, status, export, plot phase."""
    parser = argparse.ArgumentParser(prog="python -m theorylab.sweep",
                                     description="Sweeps of theorylab experiments.")
    sub = parser.add_subparsers(dest="sweep_command", required=True)
    _add_sweep_commands(sub)
    add_plot_parser(sub)
    return parser


def main(argv=None):
    """Entry point of ``python -m theorylab.sweep``; returns the exit code."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    name = " ".join(["sweep" if args.sweep_command != "plot" else "",
                     args.sweep_command, getattr(args, "plot_command", None) or ""]).strip()
    return run_command(args.func, args, name)
