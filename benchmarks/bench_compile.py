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

Usage::

    python benchmarks/bench_compile.py [--families two_layer cnn ...] [--serial]
                                       [--json benchmarks/results/compile_DATE.json]
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
    ap.add_argument("--json")
    args = ap.parse_args(argv)
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
