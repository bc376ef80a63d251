"""``python -m benchmarks [--only NAME ...] [--json PATH]``: run the performance harness.

Runs every ``benchmarks/bench_*.py`` module's ``run()`` and prints its results
as a table (nested dicts flattened) and optionally as JSON.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
import time
import traceback


def _flatten(d, prefix=""):
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            yield from _flatten(v, key + ".")
        else:
            yield key, v


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def build_parser(parser=None):
    parser = parser or argparse.ArgumentParser(prog="python -m benchmarks",
                                               description="theorylab performance harness")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="run only these modules (e.g. two_layer cnn ntk sweep)")
    parser.add_argument("--json", metavar="PATH", help="write all results as JSON")
    return parser


def main(argv=None, args=None):
    import benchmarks

    if args is None:
        args = build_parser().parse_args(argv)
    names = sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules(benchmarks.__path__)
                   if m.name.startswith("bench_"))
    if args.only:
        unknown = set(args.only) - set(names)
        if unknown:
            print(f"error: unknown benchmarks {sorted(unknown)}; known: {names}", file=sys.stderr)
            return 2
        names = [n for n in names if n in args.only]
    results, status = {}, 0
    for name in names:
        t0 = time.perf_counter()
        try:
            mod = importlib.import_module(f"benchmarks.bench_{name}")
            results[name] = mod.run()
        except Exception:  # one failing workload must not hide the others' numbers
            results[name] = {"error": traceback.format_exc()}
            status = 1
        results[name]["harness_seconds"] = time.perf_counter() - t0
        print(f"== {name} ({results[name]['harness_seconds']:.1f} s)")
        for key, value in _flatten(results[name]):
            if key != "harness_seconds":
                print(f"  {key:<48} {_fmt(value)}")
        sys.stdout.flush()
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1, default=str)
        print(f"wrote {args.json}")
    return status


if __name__ == "__main__":
    sys.exit(main())
