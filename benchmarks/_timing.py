"""Timing helpers shared by the benchmark modules."""

from __future__ import annotations

import statistics
import time

import numpy as np

__all__ = ["median_time", "time_stats", "interleaved", "gemm_gflops", "torch_or_none",
           "jax_peers_or_none", "uptime_load"]


def time_stats(fn, repeats=5, warmup=2):
    """``(median, best)`` wall time of ``fn()`` over ``repeats`` calls after ``warmup`` calls.

    The median is what a user sees on this machine as it is; the best is the
    least disturbed call, the machine's capability (timeit's advice), which is
    the steadier basis for a ratio on a shared VM whose speed drifts by tens of
    percent between calls.
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times)


def interleaved(fns, repeats, warmup=3):
    """Seconds of every call of each function, the functions timed round-robin.

    Round-robin timing exposes every implementation to the same background load,
    so the ratios stay meaningful on a busy shared machine (sequential medians were
    seen to swing by 2x between runs).  Returns ``{name: [seconds per round]}``.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    return times


def median_time(fn, repeats=5, warmup=2):
    """Median wall time of ``fn()`` over ``repeats`` calls after ``warmup`` calls."""
    return time_stats(fn, repeats, warmup)[0]


def gemm_gflops(m, k, n, dtype=np.float64, repeats=5):
    """This machine's matrix-multiply throughput (GFLOP/s) for an (m x k) @ (k x n) product."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((m, k)).astype(dtype)
    B = rng.standard_normal((k, n)).astype(dtype)
    t = median_time(lambda: A @ B, repeats)
    return 2.0 * m * k * n / t / 1e9


def torch_or_none():
    """The torch module, or None when it is not installed (benchmarks then skip it)."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def jax_peers_or_none():
    """``benchmarks._peers_jax`` (which switches on jax_enable_x64), or None without JAX."""
    try:
        from . import _peers_jax
    except ImportError:
        return None
    return _peers_jax


def uptime_load():
    """1-minute load average: a loaded machine makes every ratio noisier."""
    try:
        import os

        return os.getloadavg()[0]
    except OSError:  # pragma: no cover
        return float("nan")
