"""Sweep throughput: ``processes`` and a local Dask cluster against ``serial``.

One grid of small train-then-attack cells (the ``pipeline`` experiment at
d = 16..64, under a second each on one core; 4 x ``seeds`` cells: 64 in the
harness, ``python -m benchmarks``, which must finish in minutes; 128 and two
rounds from the command line) is run end to end by
:func:`theorylab.sweep.run_sweep` on each backend, into a fresh results file,
with all the backend's costs included (spawning workers, starting the
LocalCluster, warming the Numba cache, writing SQLite).  Backends alternate
inside each round and the best of the rounds is kept, since the machine may
be shared; the 1-minute load average is recorded around every run.

Targets on 2 cores: ``processes`` >= 1.7x faster than ``serial``; the local
Dask cluster within 25% of ``processes`` (``dask_over_processes`` <= 1.25).

``serial_1thread`` is the serial backend with Numba limited to one thread:
the fair one-core reference (``serial`` uses the library's default thread
count, whose parallel kernels slow down sharply when the cores are busy).

Usage::

    python benchmarks/bench_sweep.py [--rounds 2] [--seeds 32] [--workers 2] [--max-load 1]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

__all__ = ["run", "grid_spec"]


def grid_spec(seeds=32, ds=(16, 32, 48, 64)):
    """The benchmark grid: ``len(ds) * seeds`` small pipeline cells."""
    from theorylab.sweep import parse_spec

    return parse_spec({
        "sweep": {"name": "bench", "seeds": seeds},
        "experiment": {"kind": "pipeline"},
        "axes": {"d": list(ds)},
        "fixed": {"k": 2, "norm": "inf", "eps_train": 0.08, "T": 400, "T_adv": 200,
                  "batch": 128, "n_test": 200, "pgd_steps": 5,
                  "radii": [0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.5]},
    })


def wait_for_load(max_load, timeout):
    """Sleep until the 1-minute load average is below ``max_load`` (or ``timeout`` s pass)."""
    t0 = time.monotonic()
    while os.getloadavg()[0] >= max_load and time.monotonic() - t0 < timeout:
        time.sleep(5)
    return os.getloadavg()[0]


def _time_backend(spec, backend, workers, tmp):
    import numba

    from theorylab.sweep import run_sweep

    path = os.path.join(tmp, f"{backend}-{time.time_ns()}.sqlite")
    old = numba.get_num_threads()
    if backend == "serial_1thread":
        numba.set_num_threads(1)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    try:
        s = run_sweep(spec, results=path, backend=backend.split("_")[0], workers=workers)
    finally:
        numba.set_num_threads(old)
    sec = time.perf_counter() - t0
    if s["failed"] or s["done"] != len(spec):
        raise RuntimeError(f"{backend}: {s}")
    return sec, (load0, os.getloadavg()[0])


def run(rounds=1, seeds=16, workers=2, backends=("serial", "serial_1thread", "processes",
                                                 "dask"), max_load=None, wait=600):
    """Time the grid on each backend; return a dict of seconds, ratios and load.

    Returns
    -------
    dict
        ``cells``; ``seconds`` (best round per backend) and ``all_seconds``;
        ``processes_speedup`` (serial / processes), ``processes_speedup_1thread``
        (serial_1thread / processes), ``dask_over_processes``; ``load`` (min and
        max 1-minute load average seen) and ``cpus``.

    With ``max_load``, each timed run waits (up to ``wait`` seconds) for the
    1-minute load average to fall below it: on a shared machine.
    """
    spec = grid_spec(seeds)
    from theorylab.sweep.warm import warm_kernels

    try:
        import distributed  # noqa: F401
    except ImportError:  # the dask extra is not installed: time the others
        backends = tuple(b for b in backends if b != "dask")

    warm_kernels(["two_layer"])  # compile outside the timings
    times = {b: [] for b in backends}
    loads = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            order = list(backends) if r % 2 == 0 else list(backends)[::-1]
            for b in order:
                if max_load is not None:
                    wait_for_load(max_load, wait)
                sec, load = _time_backend(spec, b, workers, tmp)
                times[b].append(sec)
                loads += load
    best = {b: min(v) for b, v in times.items()}
    out = {"cells": len(spec), "workers": workers, "rounds": rounds, "seconds": best,
           "all_seconds": times, "load": {"min": min(loads), "max": max(loads)},
           "cpus": os.cpu_count()}
    if "processes" in best:
        if "serial" in best:
            out["processes_speedup"] = best["serial"] / best["processes"]
        if "serial_1thread" in best:
            out["processes_speedup_1thread"] = best["serial_1thread"] / best["processes"]
        if "dask" in best:
            out["dask_over_processes"] = best["dask"] / best["processes"]
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--seeds", type=int, default=32, help="replicates per d (4 d values)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--backends", nargs="+",
                   default=["serial", "serial_1thread", "processes", "dask"])
    p.add_argument("--max-load", type=float, default=None,
                   help="before each run, wait for the 1-minute load average to fall below this")
    p.add_argument("--wait", type=float, default=600, help="longest wait for --max-load (s)")
    a = p.parse_args(argv)
    print(json.dumps(run(a.rounds, a.seeds, a.workers, tuple(a.backends), a.max_load, a.wait),
                     indent=1))


if __name__ == "__main__":
    main()
