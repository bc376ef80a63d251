"""Throughput of the analytic NTK Gram matrix against this machine's own float64 GEMM.

The arc-cosine NTK Gram K(X, X) = <x, x'> (pi - theta)/(2 pi) is one GEMM
(2 N^2 d flops) plus an elementwise pass (one acos and a few flops per entry).
Its throughput is counted in GEMM flops, 2 N^2 d / time, and compared with
NumPy's matmul of exactly the same shape, (N x d) @ (d x N), timed in the same
run (best of interleaved rounds).  Target: >= 60% of that GEMM.

Also reported: a square GEMM (the machine's float64 peak as NumPy sees it), the
empirical NTK Gram (gates of width m, flops 2 N^2 (d + m)), and the thread
settings, since on a shared 2-core machine both pools matter.

Usage::

    python benchmarks/bench_ntk.py            # prints JSON
    python -c "from benchmarks.bench_ntk import run; print(run())"
"""

from __future__ import annotations

import json
import os

import numba
import numpy as np

from theorylab._kernels import ntk as kntk

from ._timing import interleaved

__all__ = ["run"]


def _interleaved(fns, rounds):
    """Best time of each function over ``rounds`` alternating rounds, and all the times.

    On a shared machine the load changes from second to second; alternating the
    candidates inside each round exposes them to the same conditions.
    """
    times = interleaved(fns, rounds, warmup=1)  # warm-up: compilation or cache load
    return {name: min(v) for name, v in times.items()}, times


def run(N=4096, d=256, m=1024, square=2048, rounds=15, seed=0):
    """Measure and return a dict of timings, GFLOP/s and fractions of GEMM throughput."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, d))
    nx = kntk.row_norms(X)
    A = rng.standard_normal((square, square))
    W0 = rng.standard_normal((m, d))
    b0 = np.abs(rng.standard_normal(m))
    G = kntk.gates(X, W0, b0, True)
    t, per_round = _interleaved({
        "gram": lambda: kntk.arccos_gram(X, X, nx, nx),
        "gemm": lambda: X @ X.T,
        "square": lambda: A @ A,
        "emp": lambda: kntk.empirical_gram(X, G, X, G),
        "emp_gemm": lambda: (X @ X.T, G @ G.T),
    }, rounds)
    t_gram, t_gemm, t_square, t_emp, t_emp_gemm = (t[k] for k in ("gram", "gemm", "square",
                                                                  "emp", "emp_gemm"))

    flops = 2.0 * N * N * d
    flops_emp = 2.0 * N * N * (d + m)
    out = {
        "N": N, "d": d, "m": m,
        "gram_seconds": t_gram,
        "gram_gflops": flops / t_gram / 1e9,
        "gemm_same_shape_seconds": t_gemm,
        "gemm_same_shape_gflops": flops / t_gemm / 1e9,
        "fraction_of_gemm": t_gemm / t_gram,
        # Same-round ratios: robust to load changing between rounds.
        "fraction_of_gemm_median_round": float(np.median(np.array(per_round["gemm"])
                                                         / np.array(per_round["gram"]))),
        "elementwise_seconds": max(0.0, t_gram - t_gemm),
        "gemm_square_gflops": 2.0 * square ** 3 / t_square / 1e9,
        "fraction_of_square_gemm": (flops / t_gram) / (2.0 * square ** 3 / t_square),
        "empirical_gram_gflops": flops_emp / t_emp / 1e9,
        "empirical_fraction_of_its_gemms": t_emp_gemm / t_emp,
        "numba_threads": numba.get_num_threads(),
        "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                               "NUMBA_NUM_THREADS", "OMP_WAIT_POLICY",
                                               "NUMBA_THREADING_LAYER")},
        "cpus": os.cpu_count(),
        "target_fraction": 0.6,
    }
    out["meets_target"] = out["fraction_of_gemm"] >= out["target_fraction"]
    return out


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
