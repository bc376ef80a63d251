"""Wall time of the main job: ``theorylab check --quick --seeds 3 --jobs 2`` (``make check``).

Issue target on a 2-core machine with a warm Numba cache: at most 90 s for
``--quick``; ``--full`` at most 20 minutes.  Each timed run is a fresh
process, exactly what ``make check`` runs (reports and figures go to a
temporary directory), so the time includes interpreter start-up, loading the
cached kernels in both workers, every check on every seed, figures and reports.

A warm-up run (``--seeds 1``, every check once) fills the Numba cache first, so
compilation is never timed.  The machine may be shared: the 1-minute load
average is recorded before and after each run, ``--max-load`` waits for a quiet
machine, and the best of ``--rounds`` is kept.  CPU seconds (user + system of
the child processes) are recorded too: wall / (CPU / 2) shows how well the two
workers were kept busy.

Usage::

    python benchmarks/bench_check.py [--regime quick|full] [--rounds 2] [--max-load 0.5]
                                     [--json benchmarks/results/check_DATE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

__all__ = ["run"]

TARGETS = {"quick": 90.0, "full": 1200.0}


def _check_cmd(regime, seeds, jobs, out):
    return [sys.executable, "-m", "proofs_check", f"--{regime}", "--seeds", str(seeds),
            "--jobs", str(jobs), "--no-fail-exit", "--quiet",
            "--report", os.path.join(out, "report.md"), "--json", os.path.join(out, "r.json"),
            "--figures", os.path.join(out, "figures")]


def _timed(cmd):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    summary = re.findall(r"^summary: (.*)$", proc.stdout, flags=re.M)
    return {"wall": wall, "cpu": cpu, "load": [load0, os.getloadavg()[0]],
            "summary": summary[-1] if summary else None}


def run(regime="quick", rounds=1, seeds=3, jobs=2, max_load=None, wait=600, warm=True):
    """Time the check run; return a dict of seconds, CPU, load and the target.

    Returns
    -------
    dict
        ``wall`` (best round), ``all_wall``, ``cpu`` (of the best round),
        ``busy`` = cpu / (jobs * wall), ``target`` and ``meets_target``,
        ``summary`` (the verdict counts), ``load`` (min and max seen), ``cpus``, and
        ``runs`` (wall, CPU, load before and after, summary of every round).
    """
    if regime not in TARGETS:
        raise ValueError(f"regime must be one of {sorted(TARGETS)}, got {regime!r}")
    from benchmarks.bench_sweep import wait_for_load

    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        if warm:  # compile every kernel the checks use, outside the timings
            _timed(_check_cmd(regime, 1, jobs, tmp))
        for _ in range(rounds):
            if max_load is not None:
                wait_for_load(max_load, wait)
            runs.append(_timed(_check_cmd(regime, seeds, jobs, tmp)))
    best = min(runs, key=lambda r: r["wall"])
    loads = [x for r in runs for x in r["load"]]
    return {"regime": regime, "seeds": seeds, "jobs": jobs, "rounds": rounds,
            "wall": best["wall"], "all_wall": [r["wall"] for r in runs], "cpu": best["cpu"],
            "busy": best["cpu"] / (jobs * best["wall"]), "target": TARGETS[regime],
            "meets_target": best["wall"] <= TARGETS[regime], "summary": best["summary"],
            "load": {"min": min(loads), "max": max(loads)}, "cpus": os.cpu_count(),
            "runs": runs}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--regime", choices=sorted(TARGETS), default="quick")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--max-load", type=float, default=None,
                   help="before each run, wait for the 1-minute load average to fall below this")
    p.add_argument("--wait", type=float, default=600, help="longest wait for --max-load (s)")
    p.add_argument("--no-warm", dest="warm", action="store_false",
                   help="skip the warm-up run (the Numba cache is known to be warm)")
    p.add_argument("--json", metavar="PATH", help="also write the result here")
    a = p.parse_args(argv)
    out = run(a.regime, a.rounds, a.seeds, a.jobs, a.max_load, a.wait, a.warm)
    text = json.dumps(out, indent=1)
    print(text)
    if a.json:
        with open(a.json, "w") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
