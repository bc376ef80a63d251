"""Cold start: Numba compile time per kernel, and the cost of loading them from the cache.

For each kernel family of :mod:`theorylab.sweep.warm` (the families the check
runner and the sweeps compile before their workers start), a fresh process with
an empty ``NUMBA_CACHE_DIR`` runs the family's warm-up with Numba's event
recorder on: every ``numba:compile`` event gives one kernel's compile time
(nested compiles, e.g. a helper inlined into its caller, are counted in the
outer kernel and listed apart).  A second process then runs the same warm-up
from the filled cache: its wall time is the cache-load cost a worker pays.

The kernels declared ``parallel=True`` are flagged, since their compile (the
parfor passes) is several times a serial kernel's; the ratio says where
``parallel=True`` costs more at start-up than it can save in a short run.

``--checks`` audits the check runner's task groups (:mod:`proofs_check._schedule`)
instead: per group, a fresh process with an empty cache compiles the shared kernels
and the group's declared families, as the runner's warm-up jobs do, then runs the
group's checks on seed 0 (quick regime) with the recorder on.  Every kernel
compiled *during the run* is one the declared families miss: a worker would compile
it while another may be compiling it too.  The audit passes when that list is empty.

Usage::

    python benchmarks/bench_compile.py [--families two_layer cnn ...] [--serial]
                                       [--json benchmarks/results/compile_DATE.json]
    python benchmarks/bench_compile.py --checks [--groups fp img ...] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

__all__ = ["run"]

_CHILD = r"""
import json, sys, time
from numba.core import event
from theorylab.sweep.warm import warm_kernels

family = sys.argv[1]
t0 = time.perf_counter()
with event.install_recorder("numba:compile") as rec:
    warm_kernels([family])
wall = time.perf_counter() - t0
starts, out, depth = {}, [], 0
for ts, ev in rec.buffer:
    name = ev.data["dispatcher"].py_func.__qualname__ if ev.data else "?"
    mod = ev.data["dispatcher"].py_func.__module__ if ev.data else "?"
    key = (mod, name, str(ev.data.get("args")) if ev.data else "")
    if ev.is_start:
        starts[key] = (ts, depth)
        depth += 1
    else:
        depth -= 1
        t, d = starts.pop(key, (ts, 0))
        disp = ev.data["dispatcher"]
        out.append({"kernel": f"{mod.rsplit('.', 1)[-1]}.{name}", "seconds": ts - t,
                    "nested": d > 0, "parallel": bool(disp.targetoptions.get("parallel"))})
print(json.dumps({"family": family, "wall": wall, "compiles": out}))
"""


_AUDIT = r"""
import json, sys, time
from numba.core import event
from theorylab._kernels.threads import limit_process_threads
limit_process_threads(1, 1)
from theorylab.sweep.warm import warm_kernels, warm_shared
from proofs_check._runner import _run_seed

ids, families = sys.argv[1].split(","), [f for f in sys.argv[2].split(",") if f]
t0 = time.perf_counter()
warm_shared()
warm_kernels(families)
t_warm = time.perf_counter() - t0
t0, c0 = time.perf_counter(), time.process_time()
with event.install_recorder("numba:compile") as rec:
    _, out = _run_seed(ids, "quick", 0, None)
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
depth, missed = 0, []
for ts, ev in rec.buffer:
    if ev.is_start:
        if depth == 0 and ev.data:
            f = ev.data["dispatcher"].py_func
            missed.append(f"{f.__module__}.{f.__qualname__}{ev.data.get('args', '')}")
        depth += 1
    else:
        depth -= 1
errors = {cid: r[1].strip().splitlines()[-1] for cid, r in out.items() if r[0] != "ok"}
print(json.dumps({"warm_seconds": t_warm, "run_wall": wall, "run_cpu": cpu,
                  "missed": sorted(set(missed)), "errors": errors}))
"""


def audit(groups=None):
    """Per task group: the kernels its run compiles after its declared warm-up (module doc).

    Returns
    -------
    dict
        ``{group: {"families", "missed": [kernel], "warm_seconds", "run_cpu", ...}}``.
    """
    from proofs_check import load_checks
    from proofs_check._schedule import task_groups

    out = {"load_before": os.getloadavg()[0]}
    for g, ids in task_groups(list(load_checks())):
        if groups and g.name not in groups:
            continue
        with tempfile.TemporaryDirectory(prefix="theorylab-audit-") as cache:
            env = dict(os.environ, NUMBA_CACHE_DIR=cache, THEORYLAB_NUMBA_CACHE="1",
                       THEORYLAB_SERIAL_KERNELS="1")
            proc = subprocess.run([sys.executable, "-c", _AUDIT, ",".join(ids),
                                   ",".join(g.families)], env=env, capture_output=True,
                                  text=True, timeout=3600)
        if proc.returncode != 0:
            raise RuntimeError(f"audit of {g.name!r} failed:\n{proc.stderr[-2000:]}")
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        out[g.name] = {"families": list(g.families), "declared_seconds": g.seconds, **res}
    out["load_after"] = os.getloadavg()[0]
    return out


def _child(family, cache, serial=False):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache, THEORYLAB_NUMBA_CACHE="1",
               THEORYLAB_SERIAL_KERNELS="1" if serial else "0")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _CHILD, family], env=env, capture_output=True,
                          text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"warm-up of {family!r} failed:\n{proc.stderr[-2000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["process_wall"] = time.perf_counter() - t0
    return res


def run(families=None, serial=False):
    """Per family: cold compile time per kernel and the warm-cache load time.

    ``serial=True`` measures the serial twins the check runner's workers compile
    (``THEORYLAB_SERIAL_KERNELS=1``).

    Returns
    -------
    dict
        ``{family: {"cold_wall", "warm_wall", "kernels": {name: seconds}, ...}}`` plus
        the totals and the machine's load average.
    """
    from theorylab.sweep.warm import FAMILIES

    families = list(FAMILIES if families is None else families)
    out = {"load_before": os.getloadavg()[0], "serial": bool(serial)}
    for fam in families:
        with tempfile.TemporaryDirectory(prefix="theorylab-cold-") as cache:
            cold = _child(fam, cache, serial)
            warm = _child(fam, cache, serial)
        top = [c for c in cold["compiles"] if not c["nested"]]
        by_kernel = {}
        for c in top:
            by_kernel[c["kernel"]] = by_kernel.get(c["kernel"], 0.0) + c["seconds"]
        par = sum(c["seconds"] for c in top if c["parallel"])
        out[fam] = {"cold_wall": round(cold["wall"], 2), "warm_wall": round(warm["wall"], 2),
                    "compiles": len(top), "compile_seconds": round(sum(by_kernel.values()), 2),
                    "parallel_seconds": round(par, 2),
                    "warm_compiles": len([c for c in warm["compiles"] if not c["nested"]]),
                    "kernels": {k: round(v, 2) for k, v in
                                sorted(by_kernel.items(), key=lambda kv: -kv[1])}}
    out["load_after"] = os.getloadavg()[0]
    out["total_cold_wall"] = round(sum(out[f]["cold_wall"] for f in families), 1)
    out["total_warm_wall"] = round(sum(out[f]["warm_wall"] for f in families), 1)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", nargs="+")
    ap.add_argument("--serial", action="store_true",
                    help="the serial twins (THEORYLAB_SERIAL_KERNELS=1)")
    ap.add_argument("--checks", action="store_true",
                    help="audit the check runner's task groups' declared kernel families")
    ap.add_argument("--groups", nargs="+", help="with --checks: only these groups")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    if args.checks:
        res = audit(args.groups)
        for name, r in res.items():
            if isinstance(r, dict):
                print(f"{name:<22} families {','.join(r['families']):<32} warm "
                      f"{r['warm_seconds']:5.1f} s  run {r['run_cpu']:6.1f} s CPU "
                      f"(declared {r['declared_seconds']})  missed: "
                      f"{', '.join(r['missed']) or 'none'}"
                      + (f"  ERRORS {r['errors']}" if r["errors"] else ""))
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(res, fh, indent=1)
        return
    res = run(args.families, args.serial)
    for fam, r in res.items():
        if not isinstance(r, dict):
            continue
        print(f"{fam:<11} cold {r['cold_wall']:6.1f} s  warm {r['warm_wall']:5.2f} s  "
              f"{r['compiles']:3d} compiles, parallel kernels {r['parallel_seconds']:.1f} s; "
              f"recompiled from a warm cache: {r['warm_compiles']}")
        for k, v in list(r["kernels"].items())[:6]:
            print(f"    {k:<40} {v:6.2f} s")
    print(f"total cold {res['total_cold_wall']} s, warm {res['total_warm_wall']} s "
          f"(load {res['load_before']:.1f} -> {res['load_after']:.1f})")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
